"""The one client of a node's control API: a sans-IO codec and two thin transports.

Theory of operation: `RpcCodec` owns the protocol (newline-delimited JSON-RPC 2.0,
docs/API.md) and no socket. `request` turns a call into one line and remembers its id;
`receive` turns one line from the node into a `Reply` (for a call we made), an `Event` (a
notification after ``subscribe``) or None (anything else: a stale reply, a line that is
not ours to fix); `result` turns a `Reply` into the call's result or raises `NodeError`
with the node's own sentence. The transports only move lines:

- `NodeClient`, blocking, for the command line, the bench and scripts: one call at a time;
- `NodeConnection`, asyncio, for the terminal client (Textual is asyncio): many calls in
  flight, replies matched by id, events to a callback in arrival order. When the connection
  drops, every pending call fails with `NodeGone` and the callback receives
  ``{"type": "disconnected"}``: the client decides what to tell the person (the node is the
  only source of truth, so nothing is lost).

A reply that never comes is not a failure we can report as one: `OutcomeUnknown` says the
request may or may not have been done.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kith.identity.errors import KithError, UsageError
from kith.p2pnet.control import unix_path

MAX_REPLY_BYTES = 64 * 1024 * 1024
CALL_TIMEOUT_S = 130.0
"""A little over the node's own 120 s request limit, so the node's answer arrives first."""

EventCallback = Callable[[dict[str, Any]], None]


class NodeNotRunning(UsageError):
    def __init__(self, home: Path) -> None:
        super().__init__(
            f"no kith node is running for {home}; start one with 'kith node' (or open the client with 'kith')"
        )


class NodeError(KithError):
    """The node refused a request; the message is the node's, meant for the user."""

    def __init__(self, message: str, code: int, kind: str | None) -> None:
        super().__init__(message)
        self.code = code
        self.kind = kind


class NodeGone(KithError):
    """The connection to the node closed (the node stopped or crashed)."""


QUERIES = frozenset(
    {"status", "whoami", "circles", "views", "state_hash", "invites", "joins", "requests", "member.card", "subscribe"}
)
"""Methods that change nothing: a lost answer to one of them is simply an error."""


class OutcomeUnknown(KithError):
    """The request reached the node, but no answer came back: it may or may not have been done.

    A post the node stored and acknowledged just as it was killed must not look failed
    (the person would post it twice), nor look done: the truth is that we do not know."""

    def __init__(self, method: str, why: str) -> None:
        if method in QUERIES:
            message = f"{why} before it answered (did it stop?)"
        else:
            message = (
                f"{why} before it answered, so whether '{method}' was done is unknown: check the circle "
                "(e.g. 'kith feed CIRCLE') once the node runs again, before doing it again"
            )
        super().__init__(message)
        self.method = method


# --- the protocol, without I/O --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    """The node's answer to request ``id`` (None: it could not read a request at all)."""

    id: int | None
    message: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Event:
    """A notification (after ``subscribe``): ``params`` holds its ``type`` and fields."""

    params: dict[str, Any]


class RpcCodec:
    """Calls as lines, lines as replies and events; no socket, no clock."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self.pending: set[int] = set()

    def request(self, method: str, params: dict[str, Any]) -> tuple[int, bytes]:
        """One request line (with its ``\\n``); `UsageError` if some text is not Unicode."""
        request_id = next(self._ids)
        request = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        try:
            # Strict: a string that is not Unicode text (a lone surrogate, from bytes that
            # were not UTF-8) is refused here, in one line, rather than by the node.
            line = json.dumps(request, ensure_ascii=False).encode("utf-8") + b"\n"
        except UnicodeEncodeError:
            raise UsageError("some of the text given is not UTF-8 text; nothing was sent") from None
        self.pending.add(request_id)
        return request_id, line

    def forget(self, request_id: int) -> None:
        """No reply is awaited any more (answered, timed out, or the caller gave up)."""
        self.pending.discard(request_id)

    def receive(self, line: bytes) -> Reply | Event | None:
        """What one line from the node is; None for anything not addressed to a caller."""
        try:
            message = json.loads(line)
        except ValueError:
            return None  # not ours to fix; the node never sends this
        if not isinstance(message, dict):
            return None
        request_id = message.get("id")
        if request_id is None:
            if message.get("method") == "event" and isinstance(message.get("params"), dict):
                return Event(message["params"])
            if isinstance(message.get("error"), dict):
                return Reply(None, message)  # the node could not read a request (it cannot know its id)
            return None
        if type(request_id) is not int or request_id not in self.pending:
            return None  # a stale reply (its caller gave up)
        self.forget(request_id)
        return Reply(request_id, message)

    @staticmethod
    def result(reply: Reply) -> Any:
        """The call's result, or `NodeError` with the node's sentence."""
        error = reply.message.get("error")
        if error is not None:
            if not isinstance(error, dict):
                raise NodeError("request failed", 0, None)
            data: dict[str, Any] = error["data"] if isinstance(error.get("data"), dict) else {}
            message = error.get("message")
            code = error.get("code")
            raise NodeError(
                message if isinstance(message, str) else "request failed",
                code if type(code) is int else 0,
                data.get("kind") if isinstance(data.get("kind"), str) else None,
            )
        return reply.message.get("result")


# --- blocking transport ---------------------------------------------------------------------


class NodeClient:
    """The command line's client: one call at a time over a blocking socket."""

    def __init__(self, socket_path: Path, *, timeout: float = CALL_TIMEOUT_S) -> None:
        self.path = socket_path
        self._codec = RpcCodec()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            with unix_path(socket_path) as address:
                self._sock.connect(address)
        except (FileNotFoundError, ConnectionRefusedError):
            self._sock.close()
            raise NodeNotRunning(socket_path.parent) from None
        self._reader = self._sock.makefile("rb")

    def close(self) -> None:
        self._reader.close()
        self._sock.close()

    def peer_pid(self) -> int | None:
        """The node's process id, from the kernel (SO_PEERCRED; None where unsupported)."""
        option = getattr(socket, "SO_PEERCRED", None)
        if option is None:
            return None
        try:
            raw = self._sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
        except OSError:
            return None
        pid = struct.unpack("3i", raw)[0]
        return pid if pid > 0 else None

    def __enter__(self) -> NodeClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def call(self, method: str, **params: Any) -> Any:
        request_id, line = self._codec.request(method, params)
        try:
            self._sock.sendall(line)
        except OSError as exc:
            self._codec.forget(request_id)
            raise KithError(f"lost the connection to the node: {exc.strerror or exc}") from None
        try:
            return self._codec.result(self._wait_reply(method, request_id))
        finally:
            self._codec.forget(request_id)

    def _wait_reply(self, method: str, request_id: int) -> Reply:
        try:
            while True:
                line = self._reader.readline(MAX_REPLY_BYTES)
                if not line:
                    raise OutcomeUnknown(method, "the node closed the connection")
                got = self._codec.receive(line)
                if isinstance(got, Reply) and got.id in (request_id, None):
                    return got  # events and stale replies are skipped
        except TimeoutError:
            raise OutcomeUnknown(method, "the node did not answer in time") from None
        except OSError as exc:
            raise OutcomeUnknown(method, f"lost the connection to the node ({exc.strerror or exc})") from None


# --- asyncio transport ----------------------------------------------------------------------


class NodeConnection:
    """The terminal client's connection: requests and (after `subscribe`) the node's events."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._codec = RpcCodec()
        self._waiting: dict[int, asyncio.Future[Reply]] = {}
        self._on_event: EventCallback | None = None
        self._closed = False
        self._pump = asyncio.create_task(self._read_loop(), name="kith-node-reader")

    @classmethod
    async def open(cls, socket_path: Path) -> NodeConnection:
        try:
            with unix_path(socket_path) as address:
                reader, writer = await asyncio.open_unix_connection(address, limit=MAX_REPLY_BYTES)
        except (FileNotFoundError, ConnectionRefusedError):
            raise NodeNotRunning(socket_path.parent) from None
        return cls(reader, writer)

    @property
    def closed(self) -> bool:
        return self._closed

    async def call(self, method: str, **params: Any) -> Any:
        """Send one request and wait for its reply; raises `NodeError` with the node's message."""
        if self._closed:
            raise NodeGone("not connected to the node")
        request_id, line = self._codec.request(method, params)
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        try:
            self._writer.write(line)
            await self._writer.drain()
            reply = await asyncio.wait_for(future, CALL_TIMEOUT_S)
        except (ConnectionError, OSError) as exc:
            raise NodeGone(f"lost the connection to the node: {exc}") from None
        except TimeoutError:
            raise OutcomeUnknown(method, "the node did not answer in time") from None
        finally:
            self._waiting.pop(request_id, None)
            self._codec.forget(request_id)
        return self._codec.result(reply)

    async def subscribe(self, events: list[str], on_event: EventCallback) -> None:
        """Receive the node's notifications (``[]``: every event) through ``on_event``."""
        self._on_event = on_event
        await self.call("subscribe", events=events)

    def _deliver(self, got: Reply | Event | None) -> None:
        if isinstance(got, Event):
            if self._on_event is not None:
                self._on_event(got.params)
            return
        if got is None:
            return
        if got.id is not None:
            future = self._waiting.get(got.id)
        elif len(self._waiting) == 1:
            # The node could not read a request: only when one call waits do we know whose.
            future = next(iter(self._waiting.values()))
        else:
            return
        if future is not None and not future.done():
            future.set_result(got)

    async def _read_loop(self) -> None:
        try:
            while True:
                line = await self._reader.readline()
                if not line:
                    break
                self._deliver(self._codec.receive(line))
        except (ConnectionError, OSError, ValueError, asyncio.LimitOverrunError):
            pass
        finally:
            self._closed = True
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(NodeGone("the node closed the connection (did it stop?)"))
            if self._on_event is not None:
                self._on_event({"type": "disconnected"})

    async def close(self) -> None:
        self._on_event = None
        self._closed = True
        self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()
        self._pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._pump
