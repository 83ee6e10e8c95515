"""The membership commands as people use them: real `kith` processes, real nodes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from bench.cluster import PASSPHRASE, NodeProcess, make_home, passphrase_file, wait_for

from kith.identity.keystore import HEADER_BYTES
from kith.p2pnet.keyfile import Keystore

pytestmark = pytest.mark.slow
KITH = str(Path(sys.executable).with_name("kith"))


def kith(home: Path, secret: Path, *args: str, check: bool = True, text: str | None = None) -> Any:
    """Run `kith`; ``text`` is what the command reads on stdin (member-written text never goes in argv)."""
    env = {**os.environ, "KITH_INSECURE_TEST_KDF": "1"}
    stdin = {"stdin": subprocess.DEVNULL} if text is None else {"input": text}
    result = subprocess.run(
        [KITH, "--home", str(home), "--passphrase-file", str(secret), "--json", *args],
        capture_output=True, text=True, env=env, timeout=120, **stdin,
    )  # fmt: skip
    if check:
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout) if result.stdout.strip() else None
    return result


def test_invite_join_verify_backup_restore_and_panic(tmp_path: Path) -> None:
    secret = passphrase_file(tmp_path)
    alice = NodeProcess(make_home(tmp_path, "alice"), secret).start()
    bob = NodeProcess(make_home(tmp_path, "bob"), secret).start()
    restored = None
    try:
        circle = kith(alice.home.root, secret, "circle", "create", "Riverside")["id"]
        invite = kith(alice.home.root, secret, "invite", "Riverside", "--uses", "1", "--expires", "1h")
        assert invite["code"].startswith("KITH-INVITE:") and "█" in invite["qr"]
        kith(bob.home.root, secret, "connect", alice.address)
        joined = kith(bob.home.root, secret, "join", invite["code"], "--wait", "30")
        assert joined["status"] == "joined"
        # The code is used up now: a second person is refused, with the reason.
        carol = NodeProcess(make_home(tmp_path, "carol"), secret).start()
        try:
            kith(carol.home.root, secret, "connect", alice.address)
            refused = kith(carol.home.root, secret, "join", invite["code"], "--wait", "30", check=False)
            assert refused.returncode == 1 and "used up" in refused.stderr
        finally:
            carol.stop()
        # Safety numbers match on both sides; verifying marks the member in listings.
        bob_id = kith(bob.home.root, secret, "whoami")["member_id"]
        alice_id = kith(alice.home.root, secret, "whoami")["member_id"]
        wait_for(lambda: kith(alice.home.root, secret, "members", circle) is not None)
        on_alice = kith(alice.home.root, secret, "safety", circle, bob_id[:8])
        on_bob = kith(bob.home.root, secret, "safety", circle, alice_id[:8])
        assert on_alice["safety_number"] == on_bob["safety_number"] and not on_alice["verified"]
        kith(alice.home.root, secret, "verify", circle, bob_id[:8], "--yes")
        members = kith(alice.home.root, secret, "members", circle)  # a list: --json prints only the members
        assert {m["id"]: m["verified"] for m in members} == {alice_id: False, bob_id: True}
        kith(bob.home.root, secret, "post", circle, text="hello from bob\n")

        # Backup, then restore on a "new device": the history comes back from the network.
        backup = tmp_path / "bob.kithbackup"
        kith(bob.home.root, secret, "backup", str(backup), "--backup-passphrase-file", str(secret))
        assert PASSPHRASE.encode() not in backup.read_bytes()
        new_home = tmp_path / "bob-new-device"
        result = kith(new_home, secret, "restore", str(backup), "--backup-passphrase-file", str(secret))
        assert result["circles"] == 1 and result["relays"] >= 1
        bob.stop()
        restored = NodeProcess(bob.home.__class__(new_home), secret).start()
        wait_for(lambda: _feed_has(restored, circle, "hello from bob"), timeout=60)

        # Panic: the home is gone, and no file anywhere under the test's directory holds any
        # key of the wiped device or any piece of its encrypted keystore (a wipe that only
        # moved or renamed files would leave them here). That no byte is left in the file
        # system's free blocks either is tests/p2pnet/test_panic_disk.py's job.
        sealed = (new_home / "keystore.kith").read_bytes()
        keystore = Keystore.unlock(new_home / "keystore.kith", PASSPHRASE)
        secrets = [keystore.data.storage_key, keystore.data.network.seed]
        assert keystore.data.identity is not None
        secrets += [keystore.data.identity.sign_seed, keystore.data.identity.dh_secret]
        for entry in keystore.data.circles.values():
            secrets += list(entry["epochs"].values()) + list(entry["contents"].values())
        secrets += [sealed[offset : offset + 32] for offset in range(HEADER_BYTES, len(sealed) - 32, 32)]
        panic = kith(new_home, secret, "panic", "--yes")
        assert panic["destroyed"] and panic["kinds"]["keystore"] >= 1 and panic["left"] == 0
        restored.proc.wait(timeout=30)  # type: ignore[union-attr]
        assert not new_home.exists()
        for path in tmp_path.rglob("*"):
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                assert not any(s in data for s in secrets), path
    finally:
        for node in (alice, bob, restored):
            if node is not None:
                node.stop()


def _feed_has(node: NodeProcess, circle: str, text: str) -> bool:
    try:
        views = node.call("views", circle=circle)
    except Exception:  # noqa: BLE001 - the circle has not arrived yet
        return False
    return any(item["text"] == text for item in views["feed"])
