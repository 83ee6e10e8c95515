"""A sync session writes the frames that are ready together in one write.

Each write on a libp2p stream is a yamux frame sealed by noise, sent with its own system call
and answered by the peer's window update, so a session over many topics (a relay and a member
share every epoch of every circle) wrote four frames a topic, one at a time, and sessions were
a fifth of a relay's CPU in the soak. The frames are unchanged (PROTOCOL.md section 8): this
counts writes on a pair of in-memory streams with libp2p's read/write interface.
"""

from __future__ import annotations

import hashlib

import pytest
import trio

from kith.p2pnet.syncproto import AcceptResult, SyncPeer, run_initiator, run_responder
from kith.sync.envelope import Envelope
from kith.sync.reconcile import ItemIndex

pytestmark = pytest.mark.trio

TOPICS = 20


class HalfStream:
    """One side of a byte pipe with the read/write/close of a libp2p stream; counts writes."""

    def __init__(self, send: trio.MemorySendChannel[bytes], receive: trio.MemoryReceiveChannel[bytes]) -> None:
        self._send, self._receive = send, receive
        self._buffer = bytearray()
        self.writes: list[bytes] = []

    async def write(self, data: bytes) -> None:
        self.writes.append(data)
        await self._send.send(data)

    async def read(self, n: int | None = None) -> bytes:
        if not self._buffer:
            try:
                self._buffer += await self._receive.receive()
            except trio.EndOfChannel:
                return b""
        size = len(self._buffer) if n is None or n < 0 else min(n, len(self._buffer))
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    async def close(self) -> None:
        await self._send.aclose()

    async def reset(self) -> None:
        await self._send.aclose()


def _pipe() -> tuple[HalfStream, HalfStream]:
    a_send, b_receive = trio.open_memory_channel[bytes](1000)
    b_send, a_receive = trio.open_memory_channel[bytes](1000)
    return HalfStream(a_send, a_receive), HalfStream(b_send, b_receive)


def _frames(writes: list[bytes]) -> int:
    data, count = b"".join(writes), 0
    while data:
        data = data[4 + int.from_bytes(data[:4], "big") :]
        count += 1
    return count


def _host(name: str, topics: dict[bytes, ItemIndex]) -> SyncPeer:
    async def accept(topic: bytes, envelopes: list[Envelope], peer: str) -> AcceptResult:
        return AcceptResult()

    keys = {topic: [hashlib.sha256(b"key" + topic).digest()] for topic in topics}
    return SyncPeer(name, lambda: keys, lambda topic: topics[topic], lambda ids: {}, accept)


async def test_a_session_over_many_topics_writes_each_burst_of_frames_at_once() -> None:
    topics = {hashlib.sha256(bytes([i])).digest(): ItemIndex([(1_700_000_000 + i, bytes(32))]) for i in range(TOPICS)}
    left, right = _pipe()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_responder, _host("responder", topics), right, "initiator")
            stats = await run_initiator(_host("initiator", topics), left, "responder")
    assert stats.error is None and len(stats.shared_topics) == TOPICS
    sent, answered = _frames(left.writes), _frames(right.writes)
    assert sent >= 2 * TOPICS and answered >= 2 * TOPICS  # a RECON and a DONE a topic, each way
    # HELLO and PROVE go alone (each waits for the peer's); then one write per burst: the
    # initiator's RECONs, the responder's answers, the initiator's DONEs and BYE, the last BYE.
    assert [_frames([w]) for w in left.writes] == [1, 1, TOPICS, TOPICS + 1]
    assert [_frames([w]) for w in right.writes] == [1, 1, 2 * TOPICS, 1]
