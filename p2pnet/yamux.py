"""py-libp2p's yamux, with a reader that never waits on the socket.

py-libp2p 0.8's yamux answers some frames from the task that reads the connection: the ACK
of a stream the peer opened, the RST of a duplicate one, the reply to a ping. Each answer is
written in that task, so while the socket's send buffer is full the connection is not read
at all. When both ends are sending hard (a partition's backlog crossing both ways as it
heals) both buffers fill, each end's reader waits for room to answer the other, and neither
reads again: a wedged connection that both ends still list as connected. Every stream opened
on it times out, gossip to that peer queues and is dropped, and TCP never gives up, because
both kernels are still acknowledging. A default soak showed a relay and a member unable to
open a stream to each other for five minutes (docs/RELIABILITY.md).

`KithYamux` queues the reader's answers and writes them from a task of their own, so the
reader only ever waits for bytes to arrive: the peer's data is always taken in (bounded by
each stream's receive window, as before), and the peer can always make progress. Frames
written by anyone else wait until the queued answers are out, so a stream's ACK still goes
before the data its handler writes. The queue is bounded (`MAX_ANSWERS`): a peer that opens
streams or pings faster than it reads our answers meets the old back-pressure, on its own
connection only.

Closing a connection says GO_AWAY first, and py-libp2p waits for the socket to take it while
holding the lock the reader needs: to a peer that has stopped reading, forever, so a node
could fail to drop a peer it had blocked (likely, not shown, what the soak's partition check
met when it found two relays still connected 10 s after the cut). `KithYamux` gives GO_AWAY
`GO_AWAY_WAIT_S` and then closes without it.

**Window updates per half window, not per read.** py-libp2p's yamux sends a WINDOW_UPDATE
for nearly every read of a stream (whenever some of the window is used up, less than half
of it), where go-yamux waits until half the window has been read. Gossip arrives as many
small reads, so each gossip message a relay sent a member came back as an update frame: a
write for the member, a wake-up and a read for the relay, per message and member (a
relay's own updates were 8 % of its py-spy samples). `KithYamuxStream` follows go-yamux:
one update once half the window is used up, with py-libp2p's window auto-tuning as before.
The sender keeps at least half a window (128 KiB, more once tuned) in hand, so nothing
waits on it.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import libp2p.stream_muxer.yamux.yamux as _yamux_module
import trio
from libp2p.stream_muxer.muxer_multistream import MuxerMultistream
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID, TYPE_GO_AWAY, Yamux, YamuxStream

MAX_ANSWERS = 4096
"""Answers (12-byte frames) the reader may queue while the socket is full."""
GO_AWAY_WAIT_S = 1.0
"""How long a closing connection waits for the socket to take its GO_AWAY."""


class KithYamuxStream(YamuxStream):
    """A yamux stream that credits what was read once half its window is used up (see the
    module docstring)."""

    async def _auto_tune_and_send_window_update(self, *, bytes_read: int = 0) -> None:
        increment = 0
        async with self.window_lock:
            buffered = len(self.conn.stream_buffers.get(self.stream_id, b""))
            # Read but not yet credited to the peer (what it can no longer send).
            used = self.target_recv_window - (self.recv_window + buffered)
            if used > 0 and used >= self._grow_threshold():
                increment = self._grow_to_delta(buffered) + self._apply_autotune_epoch(buffered)
        if increment > 0:
            await self.send_window_update(increment, skip_lock=True)


# py-libp2p's yamux makes its streams by this module-level name (in `Yamux.open_stream` and
# its reader), for our connections and for any other yamux in the process alike.
_yamux_module.YamuxStream = KithYamuxStream  # type: ignore[misc]


class KithYamux(Yamux):
    """Yamux whose connection reader never blocks on a write (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reader: trio.lowlevel.Task | None = None
        self._answers: deque[bytes] = deque()
        self._answered = trio.Event()
        self._answered.set()
        self._answering = False

    async def handle_incoming(self) -> None:
        self._reader = trio.lowlevel.current_task()
        await super().handle_incoming()

    async def _write_frame(self, data: bytes) -> None:
        if data[1:2] == bytes([TYPE_GO_AWAY]):
            # The last frame before the socket closes: not worth waiting for.
            with trio.move_on_after(GO_AWAY_WAIT_S):
                await Yamux._write_frame(self, data)
            return
        if trio.lowlevel.current_task() is self._reader and self._nursery is not None:
            while len(self._answers) >= MAX_ANSWERS:
                await self._answered.wait()
            self._queue_answer(data)
            return
        while self._answers:
            await self._answered.wait()
        await super()._write_frame(data)

    def _queue_answer(self, data: bytes) -> None:
        if not self._answers:
            self._answered = trio.Event()
        self._answers.append(data)
        if not self._answering:
            assert self._nursery is not None  # noqa: S101 - checked by the caller
            self._answering = True
            self._nursery.start_soon(self._send_answers)

    async def _send_answers(self) -> None:
        try:
            while self._answers:
                await Yamux._write_frame(self, self._answers[0])
                self._answers.popleft()
        except Exception:  # noqa: BLE001, S110 - the connection broke; the reader finds out and cleans up
            pass
        finally:
            self._answering = False
            self._answers.clear()
            self._answered.set()


class KithMuxerMultistream(MuxerMultistream):
    """The muxer negotiation, making `KithYamux` connections. py-libp2p 0.8's own builds its
    `Yamux` by name whatever class ``muxer_opt`` gives for the yamux protocol, so the option
    alone left every connection on py-libp2p's yamux."""

    async def new_conn(self, conn: Any, peer_id: Any) -> Any:
        protocol, transport_class = await self._selector.select(conn, conn.is_initiator, self.negotiate_timeout)
        muxed: Any
        if protocol == PROTOCOL_ID:
            muxed = KithYamux(conn, peer_id, is_initiator=conn.is_initiator)
        else:
            muxed = transport_class(conn, peer_id)
        return self._annotate_connection(muxed, conn, protocol)
