"""Sync-stream frames: `p2pnet.framing.read_frame` over a stream that hands out the fuzz
bytes in chunks, then each payload as `syncproto` decodes it (canonical CBOR, a map).

The first byte picks the chunk size the fake stream returns (1..255, or whatever was
asked for), so partial reads are exercised. The fake stream never blocks, so each read is
driven to completion without an event loop.

Oracle: only `Malformed`/`Oversized` (`RemoteProtocolError`) and `StreamClosed` at the end.
"""

from __future__ import annotations

from typing import Any

from kith.identity import codec
from kith.identity.errors import RemoteProtocolError
from kith.p2pnet.framing import StreamClosed, read_frame
from kith.p2pnet.syncproto import MAX_FRAME_BYTES


class FakeStream:
    def __init__(self, data: bytes, step: int) -> None:
        self.data = data
        self.at = 0
        self.step = step

    async def read(self, n: int) -> bytes:
        size = n if self.step == 0 else min(n, self.step)
        out = self.data[self.at : self.at + size]
        self.at += len(out)
        return out


def run_to_completion(coro: Any) -> Any:
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise AssertionError("read_frame waited on a stream that never blocks")


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    stream = FakeStream(data[1:], data[0])
    for _ in range(64):
        try:
            kind, payload = run_to_completion(read_frame(stream, max_size=MAX_FRAME_BYTES))
        except (RemoteProtocolError, StreamClosed):
            return
        if not 0 <= kind <= 255 or len(payload) > MAX_FRAME_BYTES:
            raise AssertionError("read_frame returned an impossible frame")
        try:
            codec.decode(payload, max_size=MAX_FRAME_BYTES, what="sync frame")
        except RemoteProtocolError:
            pass
