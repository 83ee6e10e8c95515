"""Control-API lines the fuzzers found (tests/fuzz/fuzz_control.py): the node must answer
them with a JSON-RPC error and keep serving, never let an exception out of the line handler."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio

from kith.identity import codec
from kith.p2pnet.control import PARSE_ERROR, ControlServer, unix_path


async def _store(params: dict[str, Any]) -> Any:
    """Like every action method: the parameters end up in canonical CBOR (an op body)."""
    return {"bytes": len(codec.encode(params))}


async def _exchange(stream: trio.SocketStream, payload: bytes) -> Any:
    await stream.send_all(payload)
    data = b""
    with trio.fail_after(30):  # a liveness bound: a busy machine must not fail the test
        while not data.endswith(b"\n"):
            chunk = await stream.receive_some(65536)
            assert chunk, "the node closed the connection"
            data += chunk
    return json.loads(data)


async def _serve_and_send(path: Path, lines: list[bytes]) -> list[Any]:
    server = ControlServer(path, {"store": _store})
    replies = []
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
        with unix_path(path) as address:
            await sock.connect(address)
        stream = trio.SocketStream(sock)
        for line in lines:
            replies.append(await _exchange(stream, line + b"\n"))
        nursery.cancel_scope.cancel()
    return replies


GOOD = b'{"jsonrpc":"2.0","id":9,"method":"store","params":{"text":"\\ud83d\\ude00 fine"}}'


@pytest.mark.trio
async def test_json_nested_too_deep_is_a_parse_error_and_the_node_serves_on(tmp_path: Path) -> None:
    # json.loads raises RecursionError (not ValueError) past ~1000 levels; it used to escape
    # the line handler and take the node's control server (and so the node) down.
    deep, good = await _serve_and_send(tmp_path / "node.sock", [b"[" * 100_000, GOOD])
    assert deep["error"]["code"] == PARSE_ERROR
    assert good["result"] == {"bytes": len(codec.encode({"text": "\U0001f600 fine"}))}


@pytest.mark.trio
async def test_unpaired_surrogate_escape_is_a_parse_error_not_a_crash(tmp_path: Path) -> None:
    # "\udcff" is what `kith post CIRCLE $'\xff'` sends (argv bytes decoded with
    # surrogateescape). The string reached cbor2, whose UnicodeEncodeError killed the node.
    lone = b'{"jsonrpc":"2.0","id":1,"method":"store","params":{"text":"\\udcff"}}'
    batch = b'[{"jsonrpc":"2.0","id":2,"method":"store","params":{"\\ud800":1}}]'
    first, second, good = await _serve_and_send(tmp_path / "node.sock", [lone, batch, GOOD])
    assert first["error"]["code"] == PARSE_ERROR and second["error"]["code"] == PARSE_ERROR
    assert "surrogate" in first["error"]["message"]
    assert good["id"] == 9 and "result" in good


def test_a_peer_id_is_checked_before_it_is_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    """py-libp2p's base58 decoding is quadratic: a 70,000-character "peer id" (a control API
    parameter) held the node's loop for seconds. Nothing that long, or outside base58's
    alphabet, reaches the decoder."""
    from libp2p.peer.id import ID

    from kith.identity.keys import NetworkKey
    from kith.p2pnet.netstack import MAX_PEER_ID_CHARS, NetError, parse_peer_id

    real = ID.from_base58
    decoded: list[str] = []

    def recording(text: str) -> ID:
        decoded.append(text)
        return real(text)

    monkeypatch.setattr(ID, "from_base58", staticmethod(recording))
    for junk in ["x" * 70_000, "1" * (MAX_PEER_ID_CHARS + 1), "", "\u202e\u0000", "0OIl", "12D3Koo W"]:
        with pytest.raises(NetError, match="not a peer id"):
            parse_peer_id(junk)
    assert decoded == []
    from libp2p.crypto.ed25519 import create_new_key_pair

    real_id = ID.from_pubkey(create_new_key_pair(NetworkKey.generate().seed).public_key).to_base58()
    assert parse_peer_id(real_id).to_base58() == real_id
    assert decoded == [real_id]
