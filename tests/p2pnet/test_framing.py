"""Frames and buffered reads over a stream that hands bytes over in arbitrary pieces.

The stream here is a stand-in for a libp2p stream with yamux's read semantics (a read returns
what has arrived, up to the size asked, and waits only when nothing has); the real streams are
exercised by every gossip and sync test in this folder.
"""

from __future__ import annotations

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st
from libp2p.network.stream.exceptions import StreamEOF

from kith.identity.errors import Oversized
from kith.p2pnet.framing import READ_CHUNK, BufferedStream, StreamClosed, read_frame, write_frame


class PiecewiseStream:
    """Delivers `data` in the given pieces: one piece arrives per read that finds nothing buffered."""

    def __init__(self, data: bytes, cuts: list[int]) -> None:
        self.pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True) if b > a]
        self.buffered = bytearray()
        self.reads = 0
        self.written = bytearray()
        self.muxed_conn = "the connection"

    async def read(self, n: int | None = None) -> bytes:
        self.reads += 1
        if not self.buffered:
            if not self.pieces:
                raise StreamEOF()
            self.buffered += self.pieces.pop(0)
        size = len(self.buffered) if n is None or n < 0 else min(n, len(self.buffered))
        data = bytes(self.buffered[:size])
        del self.buffered[:size]
        return data

    async def write(self, data: bytes) -> None:
        self.written += data


def _encoded(frames: list[tuple[int, bytes]]) -> bytes:
    out = PiecewiseStream(b"", [])
    for kind, payload in frames:
        trio.run(write_frame, out, kind, payload)
    return bytes(out.written)


frames_strategy = st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=3000)), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(frames=frames_strategy, data=st.data())
def test_buffered_frames_are_read_exactly_however_the_bytes_arrive(
    frames: list[tuple[int, bytes]], data: st.DataObject
) -> None:
    wire = _encoded(frames)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, max(1, len(wire) - 1)), max_size=20))))
    inner = PiecewiseStream(wire, cuts)
    stream = BufferedStream(inner)
    pieces = len(inner.pieces)

    async def read_all() -> list[tuple[int, bytes]]:
        got = [await read_frame(stream, max_size=4000) for _ in frames]
        with pytest.raises(StreamClosed):
            await read_frame(stream, max_size=4000)
        return got

    assert trio.run(read_all) == frames
    # One read of the stream per piece that arrived (and one that found the end), however
    # many reads the frames took: what makes yamux send one window update per burst.
    assert inner.reads == pieces + 1


def test_buffered_reads_take_a_whole_burst_and_serve_small_reads_from_it() -> None:
    inner = PiecewiseStream(b"\x05hello\x03abc", [])
    stream = BufferedStream(inner)

    async def reads() -> list[bytes]:
        return [await stream.read(1), await stream.read(5), await stream.read(1), await stream.read(100)]

    assert trio.run(reads) == [b"\x05", b"hello", b"\x03", b"abc"]
    assert inner.reads == 1
    assert stream.muxed_conn == "the connection"  # everything but read is the stream's own


def test_buffered_stream_never_holds_more_than_one_read() -> None:
    inner = PiecewiseStream(b"x" * (3 * READ_CHUNK), [])
    stream = BufferedStream(inner)

    async def first() -> bytes:
        return await stream.read(1)

    assert trio.run(first) == b"x"
    assert len(inner.buffered) == 2 * READ_CHUNK  # the rest stays in the stream (flow control holds)


def test_a_hostile_length_through_the_buffer_is_refused_before_reading_its_body() -> None:
    inner = PiecewiseStream(b"\xff\xff\xff\xff" + b"\x00" * 10, [])

    async def read() -> None:
        await read_frame(BufferedStream(inner), max_size=1000)

    with pytest.raises(Oversized):
        trio.run(read)
