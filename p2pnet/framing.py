"""Length-prefixed frames over a libp2p stream, with a size cap and typed errors.

A frame is ``u32 big-endian length || u8 kind || payload`` where length counts the kind
byte and the payload. Reads loop until the frame is complete (py-libp2p's own
``read_exactly`` gives up after 100 partial reads on healthy streams).
"""

from __future__ import annotations

import struct
from typing import Any

from libp2p.network.stream.exceptions import StreamError

from kith.identity.errors import Malformed, Oversized

_LENGTH = struct.Struct(">I")


class StreamClosed(Exception):
    """The peer closed or reset the stream, or the connection died."""


async def read_exact(stream: Any, count: int) -> bytes:
    buffer = bytearray()
    while len(buffer) < count:
        try:
            chunk = await stream.read(count - len(buffer))
        except StreamError as exc:  # StreamEOF, StreamReset, StreamClosed
            raise StreamClosed(str(exc) or type(exc).__name__) from None
        if not chunk:
            raise StreamClosed("end of stream")
        buffer += chunk
    return bytes(buffer)


async def write_frame(stream: Any, kind: int, payload: bytes) -> None:
    try:
        # One write: header and body leave together.
        await stream.write(_LENGTH.pack(len(payload) + 1) + bytes([kind]) + payload)
    except StreamError as exc:
        raise StreamClosed(str(exc) or type(exc).__name__) from None


async def read_frame(stream: Any, *, max_size: int) -> tuple[int, bytes]:
    """The next (kind, payload); `Oversized` / `Malformed` for a hostile length, `StreamClosed` at EOF."""
    (length,) = _LENGTH.unpack(await read_exact(stream, _LENGTH.size))
    if length == 0:
        raise Malformed("empty frame")
    if length > max_size + 1:
        raise Oversized(f"frame of {length} bytes exceeds the {max_size}-byte limit")
    body = await read_exact(stream, length)
    return body[0], body[1:]


async def close_quietly(stream: Any, *, reset: bool = False) -> None:
    try:
        if reset:
            await stream.reset()
        else:
            await stream.close()
    except Exception:  # noqa: BLE001, S110 - closing a dead stream may raise anything; it is closed either way
        pass
