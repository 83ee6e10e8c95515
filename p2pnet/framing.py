"""Length-prefixed frames over a libp2p stream, with a size cap and typed errors.

A frame is ``u32 big-endian length || u8 kind || payload`` where length counts the kind
byte and the payload. Reads loop until the frame is complete (py-libp2p's own
``read_exactly`` gives up after 100 partial reads on healthy streams).

`BufferedStream` reads a libp2p stream in large pieces: py-libp2p 0.8's yamux sends the peer a
window update after *every* read, and its pubsub reads each RPC's length one byte at a time, so
reading small pieces cost one extra encrypted frame and system call each way per piece.
`WriteTurns` keeps a message's bytes together when several tasks write one stream.
"""

from __future__ import annotations

import struct
import weakref
from typing import Any

import trio
from libp2p.network.stream.exceptions import StreamError

from kith.identity.errors import Malformed, Oversized

_LENGTH = struct.Struct(">I")


class StreamClosed(Exception):
    """The peer closed or reset the stream, or the connection died."""


READ_CHUNK = 64 * 1024
"""Bytes asked of the stream per read: yamux's largest frame, so one read takes whatever has
arrived (a read returns what is buffered, up to this, without waiting for more)."""


class BufferedStream:
    """A libp2p stream whose reads are served from one read of up to `READ_CHUNK` bytes.

    py-libp2p's yamux answers every read that returns data with a WINDOW_UPDATE frame (its
    ``_auto_tune_and_send_window_update``; the ``PY_YAMUX_RELEASE_ON_READ`` switch does not stop
    the partial-slack branch), each one sealed by noise and written with its own system call,
    and the peer must open and parse it. Gossipsub reads an RPC as one read per byte of its
    varint length and one for the body, and sync frames as two reads: on a relay forwarding to
    twenty members those updates were a sixth of its CPU in the soak. Reading what has arrived
    in one piece makes it one update per burst. At most `READ_CHUNK` bytes wait here, and only
    while a reader is part-way through a message; everything else (write, close, reset,
    ``muxed_conn``) is the stream's own.
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._buffer = bytearray()

    async def read(self, n: int | None = None) -> bytes:
        if not self._buffer:
            chunk = await self._stream.read(READ_CHUNK)
            if not chunk:
                return b""
            self._buffer += chunk
        if n is None or n < 0 or n >= len(self._buffer):
            data = bytes(self._buffer)
            self._buffer.clear()
        else:
            data = bytes(self._buffer[:n])
            del self._buffer[:n]
        return data

    @property
    def buffered(self) -> int:
        """Bytes read from the stream and not yet taken: a reader with none would wait."""
        return len(self._buffer)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class WriteTurns:
    """One whole message at a time per stream.

    py-libp2p 0.8's yamux takes its write lock per frame, not per write: a message longer
    than the send window left (or than a 64 KiB frame) goes out in pieces, and another task
    writing to the same stream meanwhile puts its bytes between them. Its gossipsub writes
    one peer's stream from several tasks (the per-peer send queue, the flush of messages
    held for a peer that just subscribed, control messages), so under load a receiver read
    a length prefix from the middle of a message: "an RPC which is not protobuf", and the
    gossip stream was dropped (in a default soak, 1-12 times on every node, clustered right
    after reconnections, when the held messages are flushed). Each stream gets a lock, held
    for the whole message; a stream that is gone takes its lock with it.
    """

    def __init__(self) -> None:
        self._locks: weakref.WeakKeyDictionary[Any, trio.Lock] = weakref.WeakKeyDictionary()

    def of(self, stream: Any) -> trio.Lock:
        lock = self._locks.get(stream)
        if lock is None:
            lock = self._locks[stream] = trio.Lock()
        return lock


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


def encode_frame(kind: int, payload: bytes) -> bytes:
    return _LENGTH.pack(len(payload) + 1) + bytes([kind]) + payload


async def write_frames(stream: Any, data: bytes) -> None:
    """Write one or more encoded frames in one write (`StreamClosed` if the stream is gone)."""
    try:
        await stream.write(data)
    except StreamError as exc:
        raise StreamClosed(str(exc) or type(exc).__name__) from None


async def write_frame(stream: Any, kind: int, payload: bytes) -> None:
    # One write: header and body leave together.
    await write_frames(stream, encode_frame(kind, payload))


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
