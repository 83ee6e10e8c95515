"""kith's yamux: a connection whose both ends are sending hard must not wedge.

Two real yamux sessions over a real loopback TCP connection with small socket buffers, so
the kernel's buffers fill as they would between two busy nodes after a partition heals.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.id import ID
from libp2p.stream_muxer.yamux.yamux import FLAG_ACK, FLAG_SYN, TYPE_DATA, TYPE_PING, TYPE_WINDOW_UPDATE

from kith.p2pnet.yamux import KithYamux

pytestmark = pytest.mark.trio

BUFFER = 4096
"""Socket buffer size asked for (the kernel doubles it): a few frames fill it."""


class _Wire:
    """The secure-connection side yamux writes to and reads from: a plain socket here (Noise
    adds encryption, not buffering)."""

    def __init__(self, stream: trio.SocketStream, initiator: bool) -> None:
        self.stream = stream
        self.is_initiator = initiator

    async def read(self, n: int | None = None) -> bytes:
        return await self.stream.receive_some(n or 65536)

    async def write(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def close(self) -> None:
        await self.stream.aclose()

    def get_remote_address(self) -> Any:
        return None


def _small_buffers(sock: Any) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)


@asynccontextmanager
async def _pair(muxer: type[Any]) -> AsyncIterator[tuple[Any, Any]]:
    listener = trio.socket.socket()
    _small_buffers(listener)
    await listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = trio.socket.socket()
    _small_buffers(client)
    await client.connect(listener.getsockname())
    server, _ = await listener.accept()
    listener.close()
    peer = ID.from_pubkey(create_new_key_pair().public_key)
    a = muxer(_Wire(trio.SocketStream(client), True), peer)
    b = muxer(_Wire(trio.SocketStream(server), False), peer)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(a.start)
            nursery.start_soon(b.start)
            await a.event_started.wait()
            await b.event_started.wait()
            yield a, b
            nursery.cancel_scope.cancel()
    finally:
        client.close()
        server.close()


async def _drain(stream: Any, total: int) -> None:
    got = 0
    while got < total:
        chunk = await stream.read(65536)
        assert chunk, "the stream ended early"
        got += len(chunk)


async def _send(stream: Any, total: int) -> None:
    piece = b"x" * 60_000
    for _ in range(total // len(piece)):
        await stream.write(piece)


async def _open_many(muxer: Any, count: int) -> None:
    """Streams opened one after another: each SYN asks the other end's reader to answer."""
    for _ in range(count):
        stream = await muxer.open_stream()
        await stream.close()
        await trio.lowlevel.checkpoint()


async def _accept_all(muxer: Any) -> None:
    while True:
        stream = await muxer.accept_stream()
        await stream.close()


async def test_both_ends_sending_and_opening_streams_at_once_does_not_wedge() -> None:
    """py-libp2p's own yamux answers a SYN (and a ping) from its reader task, waiting for
    room in the socket: with both ends' buffers full of data, both readers waited on each
    other for good (the soak's relay and member that could not open a stream to each other
    for five minutes while connected). kith's reader never waits on the socket."""
    total = 4 * 60_000 * 10
    with trio.fail_after(60):
        async with _pair(KithYamux) as (a, b):
            a_out = await a.open_stream()
            b_out = await b.open_stream()
            a_in = await b.accept_stream()
            b_in = await a.accept_stream()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_accept_all, a)
                nursery.start_soon(_accept_all, b)
                for _ in range(3):
                    # Three rounds: every one begins with both ends' buffers full.
                    async with trio.open_nursery() as round_:
                        round_.start_soon(_send, a_out, total)
                        round_.start_soon(_send, b_out, total)
                        round_.start_soon(_drain, a_in, total)
                        round_.start_soon(_drain, b_in, total)
                        round_.start_soon(_open_many, a, 40)
                        round_.start_soon(_open_many, b, 40)
                nursery.cancel_scope.cancel()


class _GatedWire:
    """A wire whose incoming bytes the test feeds and whose writes wait for ``open``."""

    def __init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel[bytes](100)
        self.open = trio.Event()
        self.frames: list[tuple[int, int, int]] = []
        self.is_initiator = False

    async def feed(self, data: bytes) -> None:
        await self._send.send(data)

    async def read(self, n: int | None = None) -> bytes:
        return await self._receive.receive()

    async def write(self, data: bytes) -> None:
        await self.open.wait()
        _version, kind, flags, stream_id, _length = struct.unpack(">BBHII", data[:12])
        self.frames.append((kind, flags, stream_id))

    async def close(self) -> None:
        pass

    def get_remote_address(self) -> Any:
        return None


def _syn(stream_id: int) -> bytes:
    return struct.pack(">BBHII", 0, TYPE_WINDOW_UPDATE, FLAG_SYN, stream_id, 0)


async def test_the_reader_keeps_reading_while_the_socket_is_full_and_an_ack_precedes_the_streams_data() -> None:
    wire = _GatedWire()
    muxer = KithYamux(wire, ID.from_pubkey(create_new_key_pair().public_key))
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(muxer.start)
            await muxer.event_started.wait()
            # The peer opens two streams while nothing we write can leave: the reader must
            # take in the second SYN although the first one's ACK is still waiting.
            await wire.feed(_syn(1))
            first = await muxer.accept_stream()
            await wire.feed(_syn(3))
            second = await muxer.accept_stream()
            # Our handler answers on the first stream: its data waits behind the ACK.
            nursery.start_soon(first.write, b"hello")
            await trio.testing.wait_all_tasks_blocked()
            wire.open.set()
            await trio.testing.wait_all_tasks_blocked()
            ours = [(kind, flags, sid) for kind, flags, sid in wire.frames if kind != TYPE_PING]
            assert ours[:2] == [(TYPE_WINDOW_UPDATE, FLAG_ACK, 1), (TYPE_WINDOW_UPDATE, FLAG_ACK, 3)]
            assert (TYPE_DATA, 0, 1) in ours[2:]
            assert second.stream_id == 3
            nursery.cancel_scope.cancel()


async def test_closing_a_connection_to_a_peer_that_does_not_read_does_not_hang() -> None:
    """py-libp2p waits for room in the socket to say GO_AWAY before it closes, holding the
    lock its reader needs; to a peer that has stopped reading that wait has no end."""
    wire = _GatedWire()  # never opened: nothing written ever leaves
    closed = trio.Event()

    async def close() -> None:
        closed.set()

    wire.close = close  # type: ignore[method-assign]
    muxer = KithYamux(wire, ID.from_pubkey(create_new_key_pair().public_key))
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(muxer.start)
            await muxer.event_started.wait()
            await muxer.close()
            assert closed.is_set()
            assert muxer.is_closed
            nursery.cancel_scope.cancel()


async def test_the_nodes_connections_use_kiths_yamux() -> None:
    """py-libp2p builds its own Yamux by name whatever muxer_opt says: the node must
    replace the negotiation, or none of the above reaches a real connection."""
    from kith.identity.keys import NetworkKey
    from kith.p2pnet.netstack import open_netstack

    with trio.fail_after(30):
        async with (
            open_netstack(NetworkKey.generate(), ["/ip4/127.0.0.1/tcp/0"]) as a,
            open_netstack(NetworkKey.generate(), ["/ip4/127.0.0.1/tcp/0"]) as b,
        ):
            await b.connect(a.listen_addresses()[0])
            for node in (a, b):
                (conn,) = node.host.get_network().get_connections()
                assert type(conn.muxed_conn) is KithYamux
                assert conn.get_negotiated_muxer_protocol() == "/yamux/1.0.0"


async def test_a_stream_read_message_by_message_sends_window_updates_per_half_window_not_per_read() -> None:
    """py-libp2p answered nearly every read with a WINDOW_UPDATE: each gossip message a relay
    sent a member came back as a frame, a wake-up and a read for the relay. Now an update
    goes once half the window is read (go-yamux's rule), and the sender never waits."""
    messages, size = 400, 1000
    with trio.fail_after(30):
        async with _pair(KithYamux) as (a, b):
            updates: list[int] = []
            write_frame = b._write_frame

            async def counting(data: bytes) -> None:
                kind, flags = data[1], struct.unpack(">H", data[2:4])[0]
                if kind == TYPE_WINDOW_UPDATE and not flags & (FLAG_SYN | FLAG_ACK):
                    updates.append(struct.unpack(">I", data[8:12])[0])
                await write_frame(data)

            b._write_frame = counting
            sender = await a.open_stream()
            receiver = await b.accept_stream()
            assert type(sender).__name__ == type(receiver).__name__ == "KithYamuxStream"
            for _ in range(messages):
                await sender.write(b"m" * size)
                assert await receiver.read(65536) == b"m" * size  # one message per read
            # 400 kB read in 400 reads: an update per 128 KiB (half the 256 KiB window),
            # fewer once the window has grown; py-libp2p's own sent about 200.
            assert 1 <= len(updates) <= messages * size // (128 * 1024)
            assert sender.send_window >= 128 * 1024
