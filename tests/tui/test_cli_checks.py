"""Issue 14: what can be known locally is refused before anything is signed, in one line.

Real `kith` processes against two real nodes (alice created the circle, bob joined with an
invite). A refused action must leave no op behind: the circle's op count and `kith
rejected` are the same before and after, on both nodes.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bench.cluster import NodeProcess, make_home, passphrase_file, wait_for

pytestmark = pytest.mark.slow
KITH = str(Path(sys.executable).with_name("kith"))


def run(home: Path, secret: Path, *args: str, text: str | bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "KITH_INSECURE_TEST_KDF": "1"}
    stdin: dict[str, Any] = {"stdin": subprocess.DEVNULL} if text is None else {"input": text}
    if isinstance(text, str):
        stdin["input"] = text.encode()
    return subprocess.run(
        [KITH, "--home", str(home), "--passphrase-file", str(secret), *args],
        capture_output=True, env=env, timeout=120, **stdin,
    )  # fmt: skip


def ok(home: Path, secret: Path, *args: str, text: str | None = None) -> Any:
    result = run(home, secret, "--json", *args, text=text)
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout) if result.stdout.strip() else None


def one_line(result: subprocess.CompletedProcess[bytes]) -> str:
    """The command's only stderr line (minus the test KDF's warning)."""
    lines = [line for line in result.stderr.decode().splitlines() if not line.startswith("kith: warning:")]
    assert len(lines) == 1, lines
    return lines[0]


class World:
    def __init__(self, root: Path) -> None:
        self.secret = passphrase_file(root)
        self.alice = NodeProcess(make_home(root, "alice"), self.secret).start()
        self.bob = NodeProcess(make_home(root, "bob"), self.secret).start()
        self.a, self.b = self.alice.home.root, self.bob.home.root
        self.circle = ok(self.a, self.secret, "circle", "create", "Riverside")["id"]
        code = ok(self.a, self.secret, "invite", "Riverside", "--no-qr")["code"]
        ok(self.b, self.secret, "connect", self.alice.address)
        assert ok(self.b, self.secret, "join", code, "--wait", "60")["status"] == "joined"
        self.bob_id = self.bob.call("whoami")["member_id"]
        wait_for(lambda: self.names(self.alice) == {"alice", "bob"}, timeout=60)

    def names(self, node: NodeProcess) -> set[str]:
        return {m["name"] for m in node.call("views", circle=self.circle)["members"]}

    def ops(self) -> tuple[int, int]:
        return tuple(n.call("state_hash", circle=self.circle)["ops"] for n in (self.alice, self.bob))  # type: ignore[return-value]

    def settle(self) -> None:
        """Wait until both nodes hold the same ops."""
        wait_for(lambda: len(set(self.hashes())) == 1, timeout=60)

    def hashes(self) -> list[str]:
        return [n.call("state_hash", circle=self.circle)["state_hash"] for n in (self.alice, self.bob)]

    def stop(self) -> None:
        self.alice.stop()
        self.bob.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    built = World(tmp_path_factory.mktemp("checks"))
    try:
        yield built
    finally:
        built.stop()


def test_typos_and_overreach_are_refused_before_signing(world: World) -> None:
    a, b, s = world.a, world.b, world.secret
    bobs = ok(b, s, "post", "Riverside", text="bob's words\n")["id"]
    contribution = ok(b, s, "contribute", "Riverside", "5", "EUR")["id"]
    world.settle()
    before = world.ops()
    refused = {
        # (who, argv, stdin): the one line expected
        (a, ("contribute", "Riverside", "5", "€"), None): "'€' is not a currency code: use EUR",
        (a, ("contribute", "Riverside", "5", "EURO"), None): "'EURO' is not a currency code: use EUR",
        (a, ("contribute", "Riverside", "5", "US D"), None): "'US D' is not a currency code: use USD",
        (a, ("contribute", "Riverside", "5", "XYZ"), None): "three-letter ISO 4217 code",
        (a, ("contribute", "Riverside", "-5", "EUR"), None): "amount '-5' is negative",
        (a, ("contribute", "Riverside", "1000000000000", "EUR"), None): "more than 10,000,000 EUR",
        (a, ("contribute", "Riverside", "10000000.01", "EUR"), None): "more than 10,000,000 EUR",
        (a, ("contribute", "Riverside", "1.234", "EUR"), None): "too many decimals: EUR takes at most 2",
        (a, ("contribute", "Riverside", "0", "EUR"), None): "amount '0' is zero",
        (a, ("propose", "Riverside", "spend", "Rent", "--amount", "50", "--currency", "EURO",
             "--recipient", "bob", "--purpose", "rent"), None): "'EURO' is not a currency code: use EUR",
        (a, ("edit", "Riverside", bobs[:8]), "not mine\n"): "you can only edit your own messages; that one is bob's",
        (a, ("delete", "Riverside", bobs[:8]), None): "you can only delete your own messages",
        (b, ("receipt", "Riverside", contribution[:8]), None): "'kith member grant CIRCLE YOUR-NAME treasurer'",
        (b, ("member", "grant", "Riverside", "bob", "organizer"), None): "only an organizer may",
        (b, ("profile", "Riverside", "--name", "n" * 65), None): "the display name is too long: at most 64 characters",
        (b, ("pledge", "Riverside", "money", "--amount", "-5", "--unit", "EUR"), "help\n"): "more than zero",
        (a, ("invite", "Riverside", "--expires", "0m"), None): "--expires 0m is no time at all",
        (a, ("invite", "Riverside", "--expires", "400d"), None): "--expires 400d is too long: at most 366d",
        (a, ("post", "Riverside"), "a \x1b[31mred\x1b[0m word\n"): "contains control or invisible characters",
    }  # fmt: skip
    for (home, argv, text), expected in refused.items():
        result = run(home, s, *argv, text=text)
        assert result.returncode == 1, (argv, result.stderr)
        assert expected in one_line(result), (argv, result.stderr)
    assert world.ops() == before, "a refused action signed an op"
    assert ok(a, s, "rejected", "Riverside") == [] and ok(b, s, "rejected", "Riverside") == []


def test_the_creator_is_treasurer_and_roles_take_names(world: World) -> None:
    a, s = world.a, world.secret
    members = ok(a, s, "members", "Riverside")
    assert isinstance(members, list), "members --json prints the members, not the whole circle"
    assert {m["name"]: m["roles"] for m in members} == {"alice": ["organizer", "treasurer"], "bob": []}
    assert isinstance(ok(a, s, "rejected", "Riverside"), list)
    contribution = ok(world.b, s, "contribute", "Riverside", "7.50", "EUR")["id"]
    pending = lambda: world.alice.call("views", circle=world.circle)["fund"]["pending"]  # noqa: E731
    wait_for(lambda: any(e["op"] == contribution for e in pending()))
    assert ok(a, s, "receipt", "Riverside", contribution[:8])["rejected"] is None
    # grant and revoke take a name (as listings show it) or an id prefix, and are in --help.
    help_text = run(a, s, "member", "--help").stdout.decode()
    assert "grant" in help_text and "revoke" in help_text
    ok(a, s, "member", "grant", "Riverside", "Bob", "treasurer")
    ok(a, s, "member", "revoke", "Riverside", world.bob_id[:8], "treasurer")
    unknown = run(a, s, "member", "grant", "Riverside", "nobody", "treasurer")
    assert unknown.returncode == 1 and "no member named 'nobody'" in one_line(unknown)


def test_names_from_init_and_verified_marks(world: World) -> None:
    a, s = world.a, world.secret
    # bob never ran `kith profile`: the circle shows the name he chose at init, on both nodes.
    assert world.names(world.alice) == world.names(world.bob) == {"alice", "bob"}
    listing = run(a, s, "members", "Riverside").stdout.decode()
    assert "bob · member · unverified" in listing and "alice · organizer,treasurer · you" in listing
    ok(a, s, "verify", "Riverside", world.bob_id[:8], "--yes")
    assert "bob · member · verified" in run(a, s, "members", "Riverside").stdout.decode()


def test_bytes_that_are_not_text_are_refused_at_once(world: World, tmp_path: Path) -> None:
    a, s = world.a, world.secret
    before = world.ops()
    # A hang (the node once waited 130 s on such a post) fails on run()'s timeout.
    post = run(a, s, "post", "Riverside", text=b"\xff\xfe not utf-8\n")
    assert post.returncode == 1 and "not UTF-8 text; nothing was sent" in one_line(post)
    raw = subprocess.run(
        [os.fsencode(KITH), b"--home", os.fsencode(a), b"--passphrase-file", os.fsencode(s), b"post", b"Riverside",
         b"--cw", b"\xff\xfe"],
        input=b"hello\n", capture_output=True, timeout=60, env={**os.environ, "KITH_INSECURE_TEST_KDF": "1"},
    )  # fmt: skip
    assert raw.returncode == 2 and "is not UTF-8 text; nothing was done" in one_line(raw)  # type: ignore[arg-type]
    escape = run(a, s, "circle", "create", "\x1b[31mRed")
    assert escape.returncode == 2 and "holds a control character" in one_line(escape)
    assert "\x1b" not in escape.stderr.decode()
    assert world.ops() == before
    assert [c["name"] for c in ok(a, s, "circles")] == ["Riverside"], "no empty circle is left behind"
    # init with a name that is not text: one line, and no half-made home.
    home = tmp_path / "newcomer"
    init = subprocess.run(
        [os.fsencode(KITH), b"--home", os.fsencode(home), b"--passphrase-file", os.fsencode(s), b"init", b"--name",
         b"Ri\xffver"],
        capture_output=True, timeout=60, env={**os.environ, "KITH_INSECURE_TEST_KDF": "1"},
    )  # fmt: skip
    assert init.returncode == 2 and "not UTF-8 text" in one_line(init)  # type: ignore[arg-type]
    assert not home.exists()


def test_usage_and_internal_errors_are_one_line_with_the_promised_codes(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    a, s = world.a, world.secret
    for argv in (("post",), ("bogus",), ("contribute", "Riverside", "5"), ("checkin", "Riverside", "fine")):
        result = run(a, s, *argv)
        assert result.returncode == 2, argv
        assert "--help" in one_line(result), argv
    # A bug inside a command: one line, exit code 1 (the README promises 1, 2 or 3).
    from kith.tui import cli
    from kith.tui.commands import identity_cmds

    def broken(ctx: Any, args: Any) -> int:
        raise RuntimeError("a bug")

    monkeypatch.setattr(identity_cmds, "cmd_whoami", broken)
    monkeypatch.setenv("KITH_HOME", str(tmp_path / "h"))
    assert cli.main(["whoami"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("kith: internal error (RuntimeError)")


def test_a_post_whose_answer_is_lost_is_reported_as_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The node read the request (and may have stored and shared the post) but died before
    answering: the command must say the outcome is unknown and how to check, not "failed"."""
    from kith.p2pnet.home import Home
    from kith.tui import cli

    home = Home(tmp_path / "h")
    home.ensure()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(home.socket))
    listener.listen(1)
    got: list[bytes] = []

    def node_killed_after_reading() -> None:
        conn, _ = listener.accept()
        got.append(conn.makefile("rb").readline())
        conn.close()  # like kill -9 between storing the post and answering

    thread = threading.Thread(target=node_killed_after_reading, daemon=True)
    thread.start()
    try:
        code = cli.main(["--home", str(home.root), "post", "Riverside", "--text-arg", "rent is due"])
    finally:
        listener.close()
    thread.join(timeout=10)
    assert b'"method": "post"' in got[0]
    err = [line for line in capsys.readouterr().err.splitlines() if "warning" not in line]
    assert code == 1 and len(err) == 1
    assert "whether 'post' was done is unknown" in err[0] and "kith feed CIRCLE" in err[0]
    assert "fail" not in err[0]


def test_panic_warn_removes_the_seized_identity_and_reports_what_it_destroyed(world: World) -> None:
    """Runs last: bob's device is seized. His node warns the circle with his keys; the circle
    stops trusting those keys (he is removed, the circle key replaced) and the report counts
    every file it destroyed."""
    s = world.secret
    inventory = [p for p in world.b.rglob("*") if not p.is_dir()]
    result = run(world.b, s, "--json", "panic", "--yes", "--warn")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["home_removed"] and not world.b.exists()
    assert report["files"] == len(inventory) > 0 and report["kinds"]["keystore"] >= 1 and report["left"] == 0
    assert report["warned"] == [world.circle]
    wait_for(lambda: world.names(world.alice) == {"alice"}, timeout=60)
    text = run(world.a, s, "members", "Riverside").stdout.decode()
    assert "bob" not in text
