"""The one control API client (kith.tui.rpc): the sans-IO codec, then both transports on a
real Unix socket against a scripted node."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kith.identity.errors import UsageError
from kith.tui.rpc import Event, NodeClient, NodeConnection, NodeError, NodeGone, OutcomeUnknown, Reply, RpcCodec


def test_a_request_is_one_line_and_its_reply_is_matched_by_id() -> None:
    codec = RpcCodec()
    first, line = codec.request("post", {"circle": "c", "text": "héllo"})
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {
        "jsonrpc": "2.0",
        "id": first,
        "method": "post",
        "params": {"circle": "c", "text": "héllo"},
    }
    second, _ = codec.request("status", {})
    assert second != first
    reply = codec.receive(json.dumps({"jsonrpc": "2.0", "id": second, "result": {"ok": 1}}).encode())
    assert reply == Reply(second, {"jsonrpc": "2.0", "id": second, "result": {"ok": 1}})
    assert codec.result(reply) == {"ok": 1}
    # The same id again is stale: its caller was answered.
    assert codec.receive(json.dumps({"jsonrpc": "2.0", "id": second, "result": 2}).encode()) is None
    codec.forget(first)  # a caller that gave up
    assert codec.receive(json.dumps({"jsonrpc": "2.0", "id": first, "result": 3}).encode()) is None


def test_text_that_is_not_unicode_is_refused_before_sending() -> None:
    with pytest.raises(UsageError, match="not UTF-8 text"):
        RpcCodec().request("post", {"text": "\ud800"})


def test_errors_events_and_garbage() -> None:
    codec = RpcCodec()
    request_id, _ = codec.request("post", {})
    error = {"code": 1, "message": "the text is too long", "data": {"kind": "Refused"}}
    reply = codec.receive(json.dumps({"jsonrpc": "2.0", "id": request_id, "error": error}).encode())
    assert isinstance(reply, Reply)
    with pytest.raises(NodeError) as caught:
        codec.result(reply)
    assert (str(caught.value), caught.value.code, caught.value.kind) == ("the text is too long", 1, "Refused")
    event = codec.receive(b'{"jsonrpc": "2.0", "method": "event", "params": {"type": "ops"}}')
    assert event == Event({"type": "ops"})
    unreadable = codec.receive(b'{"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "parse error"}}')
    assert isinstance(unreadable, Reply) and unreadable.id is None
    for line in [b"{", b"[]", b"7", b'{"id": true}', b'{"id": "1"}', b'{"method": "event", "params": 1}']:
        assert codec.receive(line) is None


@given(st.binary(max_size=200) | st.from_regex(rb"\{.*\}", fullmatch=True))
def test_any_line_from_the_node_is_an_answer_or_ignored(line: bytes) -> None:
    codec = RpcCodec()
    codec.request("status", {})
    got = codec.receive(line)
    if isinstance(got, Reply):
        try:
            codec.result(got)
        except NodeError:
            pass
    else:
        assert got is None or isinstance(got, Event)


# --- both transports against a scripted node -----------------------------------------------


def _serve(path: Path, script: list[bytes], *, close_after: bool = True) -> threading.Thread:
    """A node that answers the first request with ``script`` (``{id}`` filled in), then closes."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    server.settimeout(10)

    def run() -> None:
        with server:
            conn, _ = server.accept()
            with conn, conn.makefile("rb") as reader:
                request = json.loads(reader.readline())
                for line in script:
                    conn.sendall(line.replace(b"{id}", str(request["id"]).encode()) + b"\n")
                if not close_after:
                    reader.readline()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


SCRIPT = [
    b'{"jsonrpc": "2.0", "method": "event", "params": {"type": "peer"}}',
    b'{"jsonrpc": "2.0", "id": 999, "result": "stale"}',
    b"not json",
    b'{"jsonrpc": "2.0", "id": {id}, "result": {"peer": "p"}}',
]


def test_blocking_client_skips_events_and_stale_replies(tmp_path: Path) -> None:
    thread = _serve(tmp_path / "node.sock", SCRIPT)
    with NodeClient(tmp_path / "node.sock", timeout=10) as client:
        assert client.call("connect", address="/ip4/1.2.3.4") == {"peer": "p"}
    thread.join(10)


def test_blocking_client_reports_a_lost_answer_as_unknown(tmp_path: Path) -> None:
    thread = _serve(tmp_path / "node.sock", [])
    with NodeClient(tmp_path / "node.sock", timeout=10) as client, pytest.raises(OutcomeUnknown, match="unknown"):
        client.call("post", circle="c", text="hi")
    thread.join(10)


def test_async_connection_delivers_events_and_replies(tmp_path: Path) -> None:
    thread = _serve(tmp_path / "node.sock", SCRIPT)

    async def main() -> tuple[Any, list[dict[str, Any]]]:
        events: list[dict[str, Any]] = []
        connection = await NodeConnection.open(tmp_path / "node.sock")
        connection._on_event = events.append  # as subscribe sets it, without a subscribe reply
        result = await asyncio.wait_for(connection.call("connect", address="x"), 10)
        await asyncio.wait_for(connection._pump, 10)  # the scripted node closes: the pump ends
        with pytest.raises(NodeGone):
            await connection.call("status")
        return result, events

    result, events = asyncio.run(main())
    assert result == {"peer": "p"}
    assert events == [{"type": "peer"}, {"type": "disconnected"}]
    thread.join(10)


def test_async_connection_fails_pending_calls_when_the_node_goes(tmp_path: Path) -> None:
    thread = _serve(tmp_path / "node.sock", [])

    async def main() -> None:
        connection = await NodeConnection.open(tmp_path / "node.sock")
        with pytest.raises(NodeGone):
            await asyncio.wait_for(connection.call("post", circle="c", text="hi"), 10)
        await connection.close()

    asyncio.run(main())
    thread.join(10)
