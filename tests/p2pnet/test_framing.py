"""Frames and buffered reads over a stream that hands bytes over in arbitrary pieces.

The stream here is a stand-in for a libp2p stream with yamux's read semantics (a read returns
what has arrived, up to the size asked, and waits only when nothing has); the real streams are
exercised by every gossip and sync test in this folder.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.lowlevel
from hypothesis import given, settings
from hypothesis import strategies as st
from libp2p.network.stream.exceptions import StreamEOF
from libp2p.pubsub.pb import rpc_pb2

from kith.identity.errors import Oversized
from kith.identity.keys import NetworkKey
from kith.p2pnet.framing import READ_CHUNK, BufferedStream, StreamClosed, read_frame, write_frame
from kith.p2pnet.netstack import open_netstack


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


class FramedByWindowStream:
    """Writes the way py-libp2p 0.8's yamux does: in frames of at most `frame` bytes, with a
    checkpoint between frames (where its per-frame lock is free and another writer may go)."""

    def __init__(self, frame: int = 1000) -> None:
        self.frame = frame
        self.written = bytearray()

    async def write(self, data: bytes) -> None:
        for start in range(0, len(data), self.frame):
            self.written += data[start : start + self.frame]
            await trio.lowlevel.checkpoint()


def _rpcs(data: bytes) -> list[Any]:
    """The varint-prefixed RPCs in ``data`` (DecodeError if the bytes are not whole RPCs)."""
    out = []
    while data:
        size, used = decode_varint(data)
        rpc = rpc_pb2.RPC()
        rpc.ParseFromString(data[used : used + size])
        out.append(rpc)
        data = data[used + size :]
    return out


def decode_varint(data: bytes) -> tuple[int, int]:
    value = shift = 0
    for used, byte in enumerate(data, 1):
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, used
        shift += 7
    raise ValueError("truncated varint")


@pytest.mark.trio
async def test_gossip_messages_written_to_one_stream_at_once_stay_whole() -> None:
    """Gossipsub writes one peer's stream from several tasks (its send queue, the flush of
    messages held for a peer that just subscribed, control messages); a message split into
    frames must not have another's frames between them (the receiver would read garbage)."""
    async with open_netstack(NetworkKey.generate(), ["/ip4/127.0.0.1/tcp/0"]) as stack:
        pubsub = stack.pubsub
        stream = FramedByWindowStream()
        sent = [rpc_pb2.RPC(publish=[rpc_pb2.Message(data=bytes([n]) * 5000, topicIDs=["t"])]) for n in range(6)]
        async with trio.open_nursery() as nursery:
            for rpc in sent:
                nursery.start_soon(pubsub.write_msg, stream, rpc)
        received = _rpcs(bytes(stream.written))
        assert sorted(r.publish[0].data for r in received) == sorted(r.publish[0].data for r in sent)
