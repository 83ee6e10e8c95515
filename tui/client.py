"""An asyncio client of a node's control API, for the terminal client (Textual is asyncio).

One connection carries requests and, after `subscribe`, the node's event notifications.
Replies are matched to requests by id, so many calls can be in flight at once; events go
to a callback in arrival order. When the connection drops, every pending call fails with
`NodeGone` and the callback receives ``{"type": "disconnected"}``: the client decides
what to tell the person (the node is the only source of truth, so nothing is lost).

The blocking CLI client (tui/rpc.py) speaks the same protocol (docs/API.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kith.identity.errors import KithError
from kith.p2pnet.control import unix_path
from kith.tui.rpc import NodeError, NodeNotRunning

MAX_LINE_BYTES = 64 * 1024 * 1024
CALL_TIMEOUT_S = 130.0
"""A little over the node's own 120 s request limit, so the node's answer arrives first."""

EventCallback = Callable[[dict[str, Any]], None]


class NodeGone(KithError):
    """The connection to the node closed (the node stopped or crashed)."""


class NodeConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._on_event: EventCallback | None = None
        self._closed = False
        self._pump = asyncio.create_task(self._read_loop(), name="kith-node-reader")

    @classmethod
    async def open(cls, socket_path: Path) -> NodeConnection:
        try:
            with unix_path(socket_path) as address:
                reader, writer = await asyncio.open_unix_connection(address, limit=MAX_LINE_BYTES)
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
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        line = json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}) + "\n"
        try:
            self._writer.write(line.encode())
            await self._writer.drain()
            reply = await asyncio.wait_for(future, CALL_TIMEOUT_S)
        except (ConnectionError, OSError) as exc:
            raise NodeGone(f"lost the connection to the node: {exc}") from None
        except TimeoutError:
            raise KithError("the node did not answer in time") from None
        finally:
            self._pending.pop(request_id, None)
        if "error" in reply:
            error = reply["error"]
            data = error.get("data") or {}
            raise NodeError(error.get("message", "request failed"), error.get("code", 0), data.get("kind"))
        return reply.get("result")

    async def subscribe(self, events: list[str], on_event: EventCallback) -> None:
        """Receive the node's notifications (``[]``: every event) through ``on_event``."""
        self._on_event = on_event
        await self.call("subscribe", events=events)

    async def _read_loop(self) -> None:
        try:
            while True:
                line = await self._reader.readline()
                if not line:
                    break
                try:
                    message = json.loads(line)
                except ValueError:
                    continue  # not ours to fix; the node never sends this
                if not isinstance(message, dict):
                    continue
                if "id" in message and message["id"] is not None:
                    future = self._pending.get(message["id"])
                    if future is not None and not future.done():
                        future.set_result(message)
                elif message.get("method") == "event" and self._on_event is not None:
                    params = message.get("params")
                    if isinstance(params, dict):
                        self._on_event(params)
        except (ConnectionError, OSError, ValueError, asyncio.LimitOverrunError):
            pass
        finally:
            self._closed = True
            for future in self._pending.values():
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
