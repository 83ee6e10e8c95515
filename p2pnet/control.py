"""The control API: JSON-RPC 2.0, one JSON value per line, over a Unix socket (mode 0600).

The terminal client and the CLI are its only clients. A request names a method and passes
its parameters by name; the node answers with a result or an error object. Clients that
call ``subscribe`` also receive notifications (``{"method": "event", "params": {...}}``)
for new ops, state changes and peers.

Every line from a client is untrusted: its size is capped, its JSON parsed strictly, and a
bad request gets a JSON-RPC error, never a crash. A slow subscriber does not slow the
node: its notification queue is bounded and what overflows is dropped and counted (the
client re-reads state when it sees the ``dropped`` counter move).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket as stdlib_socket
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from kith.identity.errors import KithError, LocalProtocolError, UsageError

log = logging.getLogger("kith.control")

MAX_LINE_BYTES = 1024 * 1024
MAX_CLIENTS = 64
NOTIFY_QUEUE = 1000
REQUEST_TIMEOUT_S = 120

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
APP_ERROR = 1
"""kith-level failure (bad input, not a member, ...): ``data.kind`` names the error class."""

Handler = Callable[[dict[str, Any]], Awaitable[Any]]


class RpcError(KithError):
    """An error to return to the client as a JSON-RPC error object."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.data = data


class NodeAlreadyRunning(UsageError):
    pass


@dataclass(eq=False)
class _Client:
    stream: trio.SocketStream
    send_lock: trio.Lock = field(default_factory=trio.Lock)
    events: set[str] | None = None
    queue_send: trio.MemorySendChannel[dict[str, Any]] | None = None
    dropped: int = 0


class ControlServer:
    def __init__(self, path: Path, methods: dict[str, Handler]) -> None:
        self.path = path
        self.methods = methods
        self._clients: set[_Client] = set()
        self.stats = {"requests": 0, "errors": 0, "bad_lines": 0, "dropped_events": 0, "clients": 0}

    # --- listening ----------------------------------------------------------------

    def _bind(self) -> trio.socket.SocketType:
        if self.path.exists() or self.path.is_symlink():
            if socket_in_use(self.path):
                raise NodeAlreadyRunning(f"a kith node is already running for {self.path.parent}")
            self.path.unlink()  # stale socket of a node that died
        sock = stdlib_socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
        old_umask = os.umask(0o177)  # the socket file is created 0600: only this user connects
        try:
            with unix_path(self.path) as address:
                sock.bind(address)
        except OSError:
            sock.close()
            raise
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)
        sock.listen(MAX_CLIENTS)
        return trio.socket.from_stdlib_socket(sock)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        sock = self._bind()
        listener = trio.SocketListener(sock)
        try:
            async with trio.open_nursery() as nursery:
                task_status.started()
                while True:
                    stream = await listener.accept()
                    if len(self._clients) >= MAX_CLIENTS:
                        await stream.aclose()
                        continue
                    nursery.start_soon(self._serve_client, stream)
        finally:
            with trio.CancelScope(shield=True):
                await listener.aclose()
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass

    # --- notifications ------------------------------------------------------------

    def notify(self, event: str, payload: dict[str, Any]) -> None:
        """Queue an event for every subscribed client; never blocks."""
        message = {"jsonrpc": "2.0", "method": "event", "params": {"type": event, **payload}}
        for client in list(self._clients):
            if client.queue_send is None or client.events is None:
                continue
            if client.events and event not in client.events:
                continue
            try:
                client.queue_send.send_nowait(message)
            except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                client.dropped += 1
                self.stats["dropped_events"] += 1

    async def _pump_events(self, client: _Client, receive: trio.MemoryReceiveChannel[dict[str, Any]]) -> None:
        async for message in receive:
            message["params"]["dropped"] = client.dropped
            await self._send(client, message)

    # --- one client ---------------------------------------------------------------

    async def _serve_client(self, stream: trio.SocketStream) -> None:
        client = _Client(stream)
        self._clients.add(client)
        self.stats["clients"] = len(self._clients)
        try:
            async with trio.open_nursery() as nursery:
                send, receive = trio.open_memory_channel[dict[str, Any]](NOTIFY_QUEUE)
                client.queue_send = send
                nursery.start_soon(self._pump_events_quietly, client, receive)
                try:
                    async for line in _read_lines(stream):
                        reply = await self._handle_line(client, line)
                        if reply is not None:
                            await self._send(client, reply)
                except (trio.BrokenResourceError, trio.ClosedResourceError, _LineTooLong, OSError):
                    pass  # the client went away or misbehaved: drop it, the node carries on
                finally:
                    send.close()
                    nursery.cancel_scope.cancel()
        finally:
            self._clients.discard(client)
            self.stats["clients"] = len(self._clients)
            with trio.CancelScope(shield=True):
                await stream.aclose()

    async def _pump_events_quietly(self, client: _Client, receive: trio.MemoryReceiveChannel[dict[str, Any]]) -> None:
        try:
            await self._pump_events(client, receive)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass

    async def _send(self, client: _Client, message: Any) -> None:
        data = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
        async with client.send_lock:
            with trio.move_on_after(30):  # a client that stops reading is cut off, not waited on
                await client.stream.send_all(data)
                return
        raise trio.BrokenResourceError("client stopped reading")

    async def _handle_line(self, client: _Client, line: bytes) -> Any:
        try:
            request = json.loads(line)
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: "[[[[..." nested too deep
            self.stats["bad_lines"] += 1
            return _error(None, PARSE_ERROR, "parse error: not valid JSON")
        if b"\\u" in line and not _is_unicode_text(request):
            self.stats["bad_lines"] += 1
            return _error(None, PARSE_ERROR, "parse error: a string has an unpaired surrogate escape")
        if isinstance(request, list):
            if not request:
                return _error(None, INVALID_REQUEST, "empty batch")
            replies = [await self._handle_one(client, item) for item in request[:100]]
            return [r for r in replies if r is not None] or None
        return await self._handle_one(client, request)

    async def _handle_one(self, client: _Client, request: Any) -> Any:
        request_id = request.get("id") if isinstance(request, dict) else None
        if (
            not isinstance(request, dict)
            or request.get("jsonrpc") != "2.0"
            or not isinstance(request.get("method"), str)
            or not (request_id is None or isinstance(request_id, (str, int)) and not isinstance(request_id, bool))
        ):
            self.stats["bad_lines"] += 1
            return _error(
                request_id if isinstance(request_id, (str, int)) else None, INVALID_REQUEST, "invalid request"
            )
        is_notification = "id" not in request
        params = request.get("params", {})
        if not isinstance(params, dict):
            return None if is_notification else _error(request_id, INVALID_PARAMS, "params must be an object")
        method = request["method"]
        self.stats["requests"] += 1
        try:
            if method == "subscribe":
                result = self._subscribe(client, params)
            else:
                handler = self.methods.get(method)
                if handler is None:
                    raise RpcError(METHOD_NOT_FOUND, f"unknown method {method!r}")
                with trio.fail_after(REQUEST_TIMEOUT_S):
                    result = await handler(params)
        except RpcError as exc:
            self.stats["errors"] += 1
            return None if is_notification else _error(request_id, exc.code, str(exc), exc.data)
        except trio.TooSlowError:
            self.stats["errors"] += 1
            return None if is_notification else _error(request_id, INTERNAL_ERROR, "the node took too long to answer")
        except Exception as exc:  # noqa: BLE001
            self.stats["errors"] += 1
            if isinstance(exc, KithError) and not isinstance(exc, LocalProtocolError):
                reply = _error(request_id, APP_ERROR, str(exc), {"kind": type(exc).__name__})
            else:
                # A bug in kith, met before anything was written (handlers validate first
                # and write last): say so loudly in the log, answer this request, and keep
                # the node up for the members relying on it. Tests fail on this reply.
                log.exception("request %r failed on a kith bug", method)
                reply = _error(request_id, INTERNAL_ERROR, "internal error in kith (the node log has the details)")
            return None if is_notification else reply
        if is_notification:
            return None
        return {"jsonrpc": "2.0", "id": request_id, "result": result}

    def _subscribe(self, client: _Client, params: dict[str, Any]) -> dict[str, Any]:
        events = params.get("events", [])
        if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
            raise RpcError(INVALID_PARAMS, "events must be a list of event names")
        client.events = set(events)
        return {"subscribed": sorted(client.events) or ["*"]}


def _is_unicode_text(value: Any) -> bool:
    """False if a string in ``value`` holds a lone surrogate (JSON's "\\ud800" escape).

    Such strings are not text: UTF-8 encoders (CBOR, our replies) refuse them, so they
    must not get past the parser.
    """
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, RecursionError):
        return False
    return True


def _error(request_id: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


class _LineTooLong(Exception):
    pass


async def _read_lines(stream: trio.SocketStream):
    buffer = bytearray()
    while True:
        chunk = await stream.receive_some(65536)
        if not chunk:
            return
        buffer += chunk
        while True:
            newline = buffer.find(b"\n")
            if newline < 0:
                break
            line = bytes(buffer[:newline])
            del buffer[: newline + 1]
            if line.strip():
                yield line
        if len(buffer) > MAX_LINE_BYTES:
            raise _LineTooLong()


@contextlib.contextmanager
def unix_path(path: Path) -> Iterator[str]:
    """An address for ``path`` that fits the ~104-byte limit of Unix socket addresses.

    Long paths (deep home directories) are reached through ``/proc/self/fd/N``, an open
    handle on the directory, where the platform has it.
    """
    if len(os.fsencode(path)) < 100 or not os.path.isdir("/proc/self/fd"):
        yield str(path)
        return
    fd = os.open(path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


def socket_in_use(path: Path) -> bool:
    """True if a node is listening on ``path``."""
    probe = stdlib_socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
    try:
        with unix_path(path) as address:
            probe.connect(address)
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ECONNREFUSED, errno.ENOTSOCK):
            log.debug("control socket probe failed: %s", exc)
        return False
    finally:
        probe.close()
    return True


__all__ = ["ControlServer", "RpcError", "NodeAlreadyRunning", "socket_in_use", "LocalProtocolError"]
