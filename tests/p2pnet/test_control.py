"""The control API server: JSON-RPC over a private Unix socket, robust to bad clients."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import trio

from kith.identity.errors import Malformed, UsageError
from kith.p2pnet.control import ControlServer, NodeAlreadyRunning, RpcError, unix_path


async def _echo(params: dict[str, Any]) -> Any:
    return {"echo": params}


async def _fails(params: dict[str, Any]) -> Any:
    raise Malformed("amount must be a whole number")


async def _custom(params: dict[str, Any]) -> Any:
    raise RpcError(-32602, "missing text")


METHODS = {"echo": _echo, "fails": _fails, "custom": _custom}


async def _connect(path: Path) -> trio.SocketStream:
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    with unix_path(path) as address:
        await sock.connect(address)
    return trio.SocketStream(sock)


async def _exchange(stream: trio.SocketStream, payload: bytes) -> Any:
    await stream.send_all(payload)
    data = b""
    with trio.fail_after(30):  # a liveness bound: a busy machine must not fail the test
        while not data.endswith(b"\n"):
            data += await stream.receive_some(65536)
    return json.loads(data)


@pytest.fixture
def sock_path(tmp_path: Path) -> Path:
    return tmp_path / "node.sock"


@pytest.mark.trio
async def test_requests_errors_and_permissions(sock_path: Path) -> None:
    server = ControlServer(sock_path, METHODS)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        assert stat.S_IMODE(os.stat(sock_path).st_mode) == 0o600
        stream = await _connect(sock_path)
        ok = await _exchange(stream, b'{"jsonrpc":"2.0","id":1,"method":"echo","params":{"a":1}}\n')
        assert ok == {"jsonrpc": "2.0", "id": 1, "result": {"echo": {"a": 1}}}
        app = await _exchange(stream, b'{"jsonrpc":"2.0","id":2,"method":"fails","params":{}}\n')
        assert app["error"]["code"] == 1 and app["error"]["data"]["kind"] == "Malformed"
        assert "whole number" in app["error"]["message"]
        custom = await _exchange(stream, b'{"jsonrpc":"2.0","id":3,"method":"custom"}\n')
        assert custom["error"]["code"] == -32602
        unknown = await _exchange(stream, b'{"jsonrpc":"2.0","id":4,"method":"nope"}\n')
        assert unknown["error"]["code"] == -32601
        for bad, code in [
            (b"{not json\n", -32700),
            (b'{"id":5,"method":"echo"}\n', -32600),
            (b'{"jsonrpc":"2.0","id":6,"method":"echo","params":[1]}\n', -32602),
            (b'{"jsonrpc":"2.0","id":{"x":1},"method":"echo"}\n', -32600),
            (b"[]\n", -32600),
            (b"\xff\xfe\n", -32700),
        ]:
            reply = await _exchange(stream, bad)
            assert reply["error"]["code"] == code, bad
        batch = await _exchange(
            stream, b'[{"jsonrpc":"2.0","id":7,"method":"echo"},{"jsonrpc":"2.0","method":"echo"}]\n'
        )
        assert [r["id"] for r in batch] == [7]
        await stream.aclose()
        nursery.cancel_scope.cancel()
    assert not sock_path.exists()  # noqa: ASYNC240 - one stat of a local path, after the server stopped


@pytest.mark.trio
async def test_oversized_line_disconnects_only_that_client(sock_path: Path) -> None:
    server = ControlServer(sock_path, METHODS)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        hostile = await _connect(sock_path)
        with trio.fail_after(10):
            try:
                await hostile.send_all(b"x" * (2 * 1024 * 1024))
                while await hostile.receive_some(1024):
                    pass
            except trio.BrokenResourceError:
                pass
        good = await _connect(sock_path)
        assert (await _exchange(good, b'{"jsonrpc":"2.0","id":1,"method":"echo"}\n'))["result"] == {"echo": {}}
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_notifications_reach_subscribers(sock_path: Path) -> None:
    server = ControlServer(sock_path, METHODS)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        stream = await _connect(sock_path)
        sub = await _exchange(stream, b'{"jsonrpc":"2.0","id":1,"method":"subscribe","params":{"events":["op"]}}\n')
        assert sub["result"] == {"subscribed": ["op"]}
        server.notify("peer", {"x": 1})  # not subscribed: filtered out
        server.notify("op", {"id": "ab"})
        event = await _exchange(stream, b"")
        assert event["method"] == "event" and event["params"] == {"type": "op", "id": "ab", "dropped": 0}
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_second_server_refuses_and_stale_socket_is_replaced(sock_path: Path) -> None:
    server = ControlServer(sock_path, METHODS)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        with pytest.raises(NodeAlreadyRunning):
            await nursery.start(ControlServer(sock_path, METHODS).serve)
        nursery.cancel_scope.cancel()
    import socket

    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(sock_path))
    stale.close()  # a socket file nobody listens on, as a killed node leaves behind
    async with trio.open_nursery() as nursery:
        await nursery.start(ControlServer(sock_path, METHODS).serve)
        nursery.cancel_scope.cancel()
    assert isinstance(NodeAlreadyRunning("x"), UsageError)


def test_long_paths_still_work(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    path = deep / "node.sock"

    async def main() -> None:
        server = ControlServer(path, METHODS)
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            stream = await _connect(path)
            assert (await _exchange(stream, b'{"jsonrpc":"2.0","id":1,"method":"echo"}\n'))["id"] == 1
            nursery.cancel_scope.cancel()

    trio.run(main)
