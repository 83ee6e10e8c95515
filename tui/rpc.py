"""A blocking JSON-RPC client of a node's control socket, for the command line.

(The terminal client uses its own asyncio client, tui/client.py; both speak the same
newline-delimited JSON-RPC 2.0 described in docs/API.md.)
"""

from __future__ import annotations

import itertools
import json
import socket
import struct
from pathlib import Path
from typing import Any

from kith.identity.errors import KithError, UsageError
from kith.p2pnet.control import unix_path

MAX_REPLY_BYTES = 64 * 1024 * 1024


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


class NodeClient:
    def __init__(self, socket_path: Path, *, timeout: float = 130.0) -> None:
        self.path = socket_path
        self._ids = itertools.count(1)
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
        request_id = next(self._ids)
        request = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        try:
            # Strict: a string that is not Unicode text (a lone surrogate, from bytes that
            # were not UTF-8) is refused here, in one line, rather than by the node.
            data = json.dumps(request, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise UsageError("some of the text given is not UTF-8 text; nothing was sent") from None
        try:
            self._sock.sendall(data + b"\n")
        except OSError as exc:
            raise KithError(f"lost the connection to the node: {exc.strerror or exc}") from None
        try:
            while True:
                line = self._reader.readline(MAX_REPLY_BYTES)
                if not line:
                    raise OutcomeUnknown(method, "the node closed the connection")
                reply = json.loads(line)
                if reply.get("id") == request_id:
                    break  # skip notifications and stale replies
                if reply.get("id") is None and "error" in reply:
                    break  # the node could not read the request at all (it cannot know its id)
        except TimeoutError:
            raise OutcomeUnknown(method, "the node did not answer in time") from None
        except OSError as exc:
            raise OutcomeUnknown(method, f"lost the connection to the node ({exc.strerror or exc})") from None
        if "error" in reply:
            error = reply["error"]
            error_data = error.get("data") or {}
            raise NodeError(error.get("message", "request failed"), error.get("code", 0), error_data.get("kind"))
        return reply.get("result")
