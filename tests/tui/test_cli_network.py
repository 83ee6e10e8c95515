"""The network as a new user meets it: real `kith` processes on loopback.

`kith join` against an inviter who is not there answers at once with what to do (it does
not sit out its --wait), keeps the request, and gets in once the inviter is back;
`kith status` says whether each circle has a relay it reaches.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from bench.cluster import NodeProcess, make_home, passphrase_file, wait_for

pytestmark = pytest.mark.slow
KITH = str(Path(sys.executable).with_name("kith"))


def kith(home: Path, secret: Path, *args: str, json_out: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KITH_INSECURE_TEST_KDF": "1"}
    flags = ["--json"] if json_out else []
    return subprocess.run(
        [KITH, "--home", str(home), "--passphrase-file", str(secret), *flags, *args],
        capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def ok(home: Path, secret: Path, *args: str) -> Any:
    result = kith(home, secret, *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if result.stdout.strip() else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_join_against_an_inviter_who_is_away_answers_at_once_then_gets_in(tmp_path: Path) -> None:
    secret = passphrase_file(tmp_path)
    listen = f"/ip4/127.0.0.1/tcp/{free_port()}"
    alice = NodeProcess(make_home(tmp_path, "alice"), secret, listen=listen).start()
    bob_home = make_home(tmp_path, "bob")
    # Bob's node retries the saved addresses every half second (the default is 15 s).
    bob_home.config.write_text(json.dumps({"redial_interval_s": 0.5}))
    bob = NodeProcess(bob_home, secret).start()
    try:
        circle = ok(alice.home.root, secret, "circle", "create", "Riverside")["id"]
        status = kith(alice.home.root, secret, "status", json_out=False)
        assert "no relay listed" in status.stdout, status.stdout
        code = ok(alice.home.root, secret, "invite", "Riverside", "--expires", "1h")["code"]
        alice.stop()
        # The inviter is away. A --wait far longer than the subprocess bound: the answer
        # must come from the failed dial, not from the wait running out.
        result = kith(bob.home.root, secret, "join", code, "--wait", "600", json_out=False)
        assert result.returncode == 1
        line = result.stderr.strip()
        assert line.startswith("kith: could not reach the person who invited you"), line
        assert "Your request is saved" in line and "'kith joins'" in line and "\n" not in line
        assert "Traceback" not in result.stderr
        assert len(ok(bob.home.root, secret, "joins")) == 1  # kept, waiting
        # Alice comes back on the same address: bob's node reaches her on its own, and is let in.
        alice = NodeProcess(alice.home, secret, listen=listen).start()
        wait_for(lambda: ok(bob.home.root, secret, "joins") == [], timeout=90)
        assert circle in [c["id"] for c in ok(bob.home.root, secret, "circles")]
    finally:
        bob.stop()
        alice.stop()


def test_an_organizer_attaches_a_relay_and_status_says_it_is_reachable(tmp_path: Path) -> None:
    secret = passphrase_file(tmp_path)
    relay = NodeProcess(make_home(tmp_path, "relay", relay=True), secret, relay=True).start()
    alice = NodeProcess(make_home(tmp_path, "alice"), secret).start()

    def text(*args: str) -> str:
        result = kith(alice.home.root, secret, *args, json_out=False)
        assert result.returncode == 0, result.stderr
        return result.stdout

    try:
        assert "/ip4/0.0.0.0/" not in relay.address and relay.address.startswith("/ip4/127.0.0.1/tcp/")
        ok(alice.home.root, secret, "circle", "create", "Riverside")
        # Junk is refused before anything is signed, in one line.
        peer = relay.address.rsplit("/", 1)[1]
        junk = kith(alice.home.root, secret, "relay", "add", "Riverside", f"/ip4/0.0.0.0/tcp/4747/p2p/{peer}")
        assert junk.returncode == 1 and "not a relay address members can dial" in junk.stderr
        assert junk.stderr.count("\n") == 1 and "Traceback" not in junk.stderr
        assert "relay added" in text("relay", "add", "Riverside", relay.address)
        wait_for(lambda: text("relay", "list", "Riverside").strip().endswith(": reachable"))
        assert f"relay {relay.address}: reachable" in text("status")
        # Once the relay is gone, status says so.
        relay.stop()
        wait_for(lambda: "no relay reachable now" in text("status"))
        assert "relay removed" in text("relay", "remove", "Riverside", relay.address)
        assert "lists no relay" in text("relay", "list", "Riverside")
    finally:
        alice.stop()
        relay.stop()
