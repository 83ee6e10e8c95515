"""Hostile input that is not network garbage: an abusive member, and malformed requests,
invite codes and backup files. Each must be refused with a clear error, and nothing may
stop a node, corrupt a store or leave a half-written home behind."""

from __future__ import annotations

import base64
import json
import socket
from pathlib import Path
from typing import Any

import pytest
from bench.cluster import NodeProcess, make_home, passphrase_file
from bench.soak_abuse import run_abuse

from kith.identity import codec
from kith.identity.crypto import blake2b
from kith.identity.keystore import TEST_KDF, KeystoreData
from kith.p2pnet.actions import ACTIONS, params_of
from kith.p2pnet.control import unix_path
from kith.sync.invites import PREFIX
from kith.tui.cli import EXIT_BAD_PASSPHRASE, main
from kith.tui.rpc import NodeError

pytestmark = pytest.mark.slow


def test_an_abusive_member_neither_stalls_nodes_nor_bends_the_rules() -> None:
    result = run_abuse(fan=300, chain=60, votes=100)
    assert result["converged"]
    # Honest nodes answered all along (a wedged node would leave few, slow samples).
    assert result["status_ms"] and max(result["status_ms"]) < 10_000
    assert result["views_ms"] and max(result["views_ms"]) < 30_000
    # Every forbidden spend was refused, with its reason (by the fold, or by the honest
    # client before signing; the fold's own refusals are tested in tests/sync).
    assert all(reason for reason in result["refused"].values()), result["refused"]
    # Mallory tried to vote 100 times; her node signed the first (a vote is final), once.
    tally = result["tally"]
    assert tally["approve"] + tally["object"] + tally["abstain"] <= 3
    assert result["refused_votes"] == 99
    assert result["at_limit_rejected"] is None
    assert "4000" in result["oversized"] or "long" in result["oversized"]


NASTY: list[Any] = [
    None, True, -1, 0, 2**64, 10**40, 1.5, float("inf"), float("nan"), "", "x" * 70_000, "\u202e\u0000",
    "ff" * 32, "zz", [], [[[]]], {}, {"a": {"b": None}},
]  # fmt: skip
"""Values for every parameter of every method; json.dumps writes inf/nan as Infinity/NaN,
which Python's parser (and so the node's) accepts."""


def _raw(sock_path: Path, lines: list[bytes]) -> list[Any]:
    replies = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock, unix_path(sock_path) as address:
        sock.settimeout(60)
        sock.connect(address)
        reader = sock.makefile("rb")
        for line in lines:
            sock.sendall(line + b"\n")
            while True:  # skip event notifications (one of the requests subscribes)
                reply = json.loads(reader.readline())
                if not (isinstance(reply, dict) and reply.get("method") == "event"):
                    break
            replies.append(reply)
    return replies


def test_malformed_control_requests_get_errors_and_never_stop_the_node(tmp_path: Path) -> None:
    secret = passphrase_file(tmp_path)
    node = NodeProcess(make_home(tmp_path, "target"), secret).start()
    try:
        circle = node.call("circle.create", name="Target")["id"]
        methods: dict[str, list[str]] = {name: [p.name for p in params_of(m.params)] for name, m in ACTIONS.items()}
        methods |= {"views": ["feed_limit", "only"], "state_hash": [], "invite.create": ["uses", "expires_s"],
                    "invite.revoke": ["invite"], "join": ["code"], "approve": ["member", "vouch"],
                    "member.add": ["card", "vouch"], "member.card": ["member"], "verify": ["member"],
                    "propose": ["kind", "title", "amount", "recipient", "member", "charter"],
                    "post_many": ["texts"], "circle.relay_token": ["label", "quota_bytes"], "connect": ["address"],
                    "disconnect": ["peer"], "block": ["peer", "seconds"], "unblock": ["peer"], "sync": ["peer"],
                    "relay.allow": ["token"], "circle.create": ["name", "description"],
                    "subscribe": ["events"]}  # fmt: skip
        lines = []
        for method, params in methods.items():
            for name in ["circle", *params]:
                for value in NASTY:
                    base = {"circle": circle} if name != "circle" else {}
                    request = {"jsonrpc": "2.0", "id": len(lines), "method": method, "params": {**base, name: value}}
                    lines.append(json.dumps(request).encode())
        lines += [b"{", b"[]", b"[1, 2]", b'"just a string"', b"\xff\xfe", b'{"jsonrpc": "2.0", "id": 1}',
                  b'{"jsonrpc": "1.0", "id": 1, "method": "status"}', b'{"jsonrpc": "2.0", "id": [], "method": "x"}',
                  b'{"jsonrpc": "2.0", "id": 1, "method": "status", "params": [1]}', b"[" * 100_000,
                  b'{"jsonrpc": "2.0", "id": 1, "method": "post", "params": {"circle": "\\ud800"}}']  # fmt: skip
        replies = _raw(node.home.socket, lines)
        assert len(replies) == len(lines)
        for reply in replies:
            if isinstance(reply, dict) and "error" in reply:
                assert reply["error"]["code"] != -32603, reply  # never "internal error"
        assert node.proc is not None and node.proc.poll() is None
        assert node.call("status")["mode"] == "member"
        assert node.call("post", circle=circle, text="still answering")["rejected"] is None
    finally:
        node.stop()


def _code(body: Any) -> str:
    raw = codec.encode(body)
    checksum = blake2b(PREFIX.encode() + raw, person=b"kith-code", size=4)
    return PREFIX + base64.b32encode(raw + checksum).decode().rstrip("=")


def test_malformed_invite_codes_are_refused_clearly(tmp_path: Path) -> None:
    secret = passphrase_file(tmp_path)
    alice = NodeProcess(make_home(tmp_path, "alice"), secret).start()
    bob = NodeProcess(make_home(tmp_path, "bob"), secret).start()
    try:
        circle = alice.call("circle.create", name="Invites")["id"]
        good = alice.call("invite.create", circle=circle)["code"]
        payload = good[len(PREFIX) :]
        body = codec.decode(base64.b32decode(payload + "=" * (-len(payload) % 8))[:-4], max_size=8192)
        flipped = good[:40] + ("A" if good[40] != "A" else "B") + good[41:]
        codes = [
            "", "KITH-INVITE:", "hello", good[: len(good) // 2], flipped, good + "AAAA", good.replace("KITH", "KIHT"),
            "KITH-RELAY:" + good[len(PREFIX):], "KITH-INVITE:" + "A" * 9000, "KITH-INVITE:01!!", good + "\u202e",
            _code({"v": 2}), _code([1, 2, 3]), _code({**body, "c": 5}), _code({**body, "a": ["not an address"] * 9}),
            _code({**body, "x": -1}), _code({**body, "s": b"short"}), _code({**body, "x": 1}),
            _code({k: v for k, v in body.items() if k != "c"}), _code({**body, "v": 1}), _code({**body, "v": 3}),
        ]  # fmt: skip
        for code in codes:
            with pytest.raises(NodeError) as refused:
                bob.call("join", code=code)
            message = str(refused.value)
            assert message and "Traceback" not in message and len(message) < 300, message
        assert bob.call("joins") == []
        assert bob.proc is not None and bob.proc.poll() is None
        # A pasted code with spaces and lower case still works.
        bob.call("connect", address=alice.address)
        spaced = " ".join(good[i : i + 8] for i in range(0, len(good), 8)).lower()
        assert bob.call("join", code=spaced)["status"] == "pending"
    finally:
        alice.stop()
        bob.stop()


def test_malformed_backup_files_are_refused_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from kith.identity.keys import MemberIdentity
    from kith.p2pnet.keyfile import write_backup

    secret = passphrase_file(tmp_path)
    good = tmp_path / "good.kithbackup"
    write_backup(good, KeystoreData.generate(MemberIdentity.generate("bee", now=1)), secret.read_text(), TEST_KDF)
    blob = good.read_bytes()
    cases: dict[str, bytes | None] = {
        "empty": b"", "random": bytes(range(256)) * 4, "truncated": blob[: len(blob) // 2],
        "magic": b"KITH-KS\x00" + blob[8:], "header": blob[:20] + bytes([blob[20] ^ 1]) + blob[21:],
        "salt": blob[:19] + bytes([blob[19] ^ 1]) + blob[20:], "body": blob[:-5] + bytes([blob[-5] ^ 1]) + blob[-4:],
        "huge": blob + bytes(17 * 1024 * 1024), "directory": None,
    }  # fmt: skip
    for name, data in cases.items():
        path = tmp_path / f"{name}.kithbackup"
        if data is None:
            path.mkdir()
        else:
            path.write_bytes(data)
        home = tmp_path / f"restored-{name}"
        code = main(["--home", str(home), "--passphrase-file", str(secret), "restore", str(path),
                     "--backup-passphrase-file", str(secret)])  # fmt: skip
        err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("kith: warning:")]
        assert code != 0 and len(err) == 1 and "Traceback" not in err[0], (name, err)
        assert not (home / "keystore.kith").exists(), name
    wrong = tmp_path / "wrong-passphrase"
    wrong.write_text("not the backup's passphrase")
    code = main(["--home", str(tmp_path / "restored-wrong"), "--passphrase-file", str(secret), "restore", str(good),
                 "--backup-passphrase-file", str(wrong)])  # fmt: skip
    assert code == EXIT_BAD_PASSPHRASE
    assert not (tmp_path / "restored-wrong" / "keystore.kith").exists()
