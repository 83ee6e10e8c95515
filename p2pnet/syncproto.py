"""``/kith/sync/3``: range-based reconciliation of envelope sets, then the missing envelopes.

The protocol logic is the sans-IO `sync.reconcile.ReconcileSession`; this module is the
thin adapter that carries its messages over a libp2p stream and moves envelopes:

    initiator                                  responder
    HELLO {v: 3, n: nonce}            ->
                                      <-       HELLO {v: 3, n: nonce}
    PROVE {p: [access tags]}          ->
                                      <-       PROVE {p: [access tags]}
    RECON {t, m} per shared topic     ->
                                      <-       RECON {t, m}          (as many rounds as needed)
    ENVS {t, [envelope...]} ...       <->      ENVS ...              (what the other lacks)
    DONE {t}                          <->      DONE {t}
    BYE                               ->
                                      <-       BYE

Nothing about circles is said before PROVE: each side proves, with tags only a holder of
a circle's relay key can make or check (`sync.access`), which circles it follows, and a
topic is shared only when both proved it. A peer without keys learns nothing and is
served nothing; the node then lets gossip of a topic flow only to peers that proved it.

Frames are ``u32 length || u8 kind || CBOR payload`` (see docs/PROTOCOL.md). Each side
reads in one task and writes in another, so two peers pushing envelopes at each other
never deadlock on full windows. Everything is bounded: frame size, topics, rounds,
envelopes per frame, bad envelopes tolerated, and the session's total time.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from kith.identity import codec
from kith.identity.errors import Malformed, RemoteProtocolError
from kith.p2pnet.framing import (
    BufferedStream,
    StreamClosed,
    close_quietly,
    encode_frame,
    read_frame,
    write_frame,
    write_frames,
)
from kith.sync import access
from kith.sync.envelope import Envelope
from kith.sync.limits import MAX_ENVELOPE_BYTES
from kith.sync.reconcile import ItemIndex, ReconcileSession
from kith.sync.reconcile_wire import SALT_BYTES

log = logging.getLogger("kith.sync")

PROTOCOL = "/kith/sync/3"
VERSION = 3
HELLO, RECON, ENVS, DONE, BYE, ERROR, PROVE = 1, 2, 3, 4, 5, 6, 7
MAX_FRAME_BYTES = 1024 * 1024
MAX_TOPICS = 256
ENVELOPES_PER_FRAME = 256
ENVELOPE_BYTES_PER_FRAME = 512 * 1024
WRITE_BYTES = 64 * 1024
"""Frames ready together are written together up to this many bytes (yamux's largest frame)."""
MAX_BAD_ENVELOPES = 64
SESSION_TIMEOUT_S = 300
IDLE_TIMEOUT_S = 30
OUTBOX = 64


class SyncError(RemoteProtocolError):
    """The peer broke the sync protocol; the session is abandoned."""


@dataclass
class AcceptResult:
    new: list[Envelope] = field(default_factory=list)
    duplicates: int = 0
    unverifiable: int = 0
    """Envelopes of an epoch we hold no relay key for yet (not the sender's fault)."""
    rejected: int = 0
    """Envelopes that failed a check: counted against the sender."""
    junk: int = 0
    """Authentic envelopes that do not open (`p2pnet.gate.Verdict.JUNK`): not stored, and
    not enough to end a session (the sender may be a relay passing on what it was given)."""


Accept = Callable[[bytes, list[Envelope], str], Awaitable[AcceptResult]]
"""accept(topic, envelopes, peer): store what is valid and new, and say what happened."""


@dataclass
class SyncStats:
    peer: str
    initiator: bool
    topics: int = 0
    shared_topics: list[bytes] = field(default_factory=list)
    rounds: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    envelopes_sent: int = 0
    envelopes_received: int = 0
    envelopes_new: int = 0
    bad_envelopes: int = 0
    started: float = field(default_factory=time.time)
    finished: float | None = None
    error: str | None = None


class SyncPeer:
    """Everything a session needs from the node."""

    def __init__(
        self,
        peer_id: str,
        proof_keys: Callable[[], dict[bytes, list[bytes]]],
        index_for: Callable[[bytes], ItemIndex],
        load_envelopes: Callable[[list[bytes]], dict[bytes, bytes]],
        accept: Accept,
        on_proved: Callable[[str, list[bytes]], None] = lambda peer, topics: None,
    ) -> None:
        self.peer_id = peer_id
        self.proof_keys = proof_keys
        """topic -> its relay keys, oldest first (what access proofs are made with)."""
        self.index_for = index_for
        self.load_envelopes = load_envelopes
        self.accept = accept
        self.on_proved = on_proved
        """Called once per session with the topics both sides proved."""


class _Session:
    def __init__(self, host: SyncPeer, stream: Any, peer: str, initiator: bool) -> None:
        self.host = host
        self.stream = BufferedStream(stream)
        self.peer = peer
        self.initiator = initiator
        self.stats = SyncStats(peer, initiator)
        self.sessions: dict[bytes, ReconcileSession] = {}
        self.sent_done: set[bytes] = set()
        self.pushed: dict[bytes, set[bytes]] = {}
        self.got_done: set[bytes] = set()
        self.topics: list[bytes] = []
        self.outbox_send, self.outbox_receive = trio.open_memory_channel[tuple[Any, ...]](OUTBOX)
        self.burst: list[tuple[Any, ...]] | None = None
        """What the reader queues while it answers a burst of frames (`reader`), or None."""
        self.finished = trio.Event()

    # --- writing ------------------------------------------------------------------

    def _frame(self, kind: int, payload: Any) -> bytes:
        data = codec.encode(payload)
        self.stats.bytes_sent += len(data) + 5
        return encode_frame(kind, data)

    async def _send(self, kind: int, payload: Any) -> None:
        await write_frames(self.stream, self._frame(kind, payload))

    async def writer(self) -> None:
        """Write what is queued, everything already queued in one write (up to `WRITE_BYTES`).

        A session over many topics makes several small frames at once (a RECON and a DONE per
        topic); each write is a yamux frame, sealed by noise, sent with its own system call
        and answered with a window update. So the reader gathers what it answers to a burst
        of frames into one item (`queue`), the initiator its first RECON of every topic, and
        the writer joins whatever it finds queued. The frames themselves are
        unchanged."""
        pending = bytearray()
        async for item in self.outbox_receive:
            await self._render(item, pending)
            while True:
                try:
                    item = self.outbox_receive.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
                await self._render(item, pending)
            await self._flush(pending)

    async def _flush(self, pending: bytearray) -> None:
        if pending:
            data = bytes(pending)
            pending.clear()
            await write_frames(self.stream, data)

    async def _render(self, item: tuple[Any, ...], pending: bytearray) -> None:
        """Add one outbox item's frames to ``pending``, writing whenever it passes `WRITE_BYTES`."""
        if item[0] == "frame":
            pending += self._frame(item[1], item[2])
        elif item[0] == "burst":
            for each in item[1]:
                await self._render(each, pending)
        else:  # ("envelopes", topic, ids, final): stream them from the store; DONE if final
            topic, ids, final = item[1], item[2], item[3]
            for start in range(0, len(ids), ENVELOPES_PER_FRAME):
                found = self.host.load_envelopes(ids[start : start + ENVELOPES_PER_FRAME])
                batch: list[bytes] = []
                size = 0
                for data in found.values():
                    if batch and size + len(data) > ENVELOPE_BYTES_PER_FRAME:
                        pending += self._frame(ENVS, {"t": topic, "e": batch})
                        await self._flush_if_full(pending)
                        batch, size = [], 0
                    batch.append(data)
                    size += len(data)
                if batch:
                    pending += self._frame(ENVS, {"t": topic, "e": batch})
                    await self._flush_if_full(pending)
                self.stats.envelopes_sent += len(found)
            if final:
                pending += self._frame(DONE, {"t": topic})
        await self._flush_if_full(pending)

    async def _flush_if_full(self, pending: bytearray) -> None:
        if len(pending) >= WRITE_BYTES:
            await self._flush(pending)

    async def queue(self, *item: Any) -> None:
        if self.burst is not None:
            self.burst.append(item)
        else:
            await self.outbox_send.send(item)

    async def _release(self) -> None:
        """Hand the writer what the reader queued while answering the frames it had."""
        burst, self.burst = self.burst, None
        if burst:
            await self.outbox_send.send(("burst", burst))

    # --- reading ------------------------------------------------------------------

    async def _read(self) -> tuple[int, Any]:
        with trio.fail_after(IDLE_TIMEOUT_S):
            kind, payload = await read_frame(self.stream, max_size=MAX_FRAME_BYTES)
        self.stats.bytes_received += len(payload) + 5
        try:
            value = codec.decode(payload, max_size=MAX_FRAME_BYTES, what="sync frame")
        except Malformed as exc:
            raise SyncError(f"undecodable sync frame: {exc}") from exc
        if type(value) is not dict:
            raise SyncError("sync frame payload must be a map")
        return kind, value

    def _topic(self, value: dict[str, Any]) -> bytes:
        topic = value.get("t")
        if type(topic) is not bytes or topic not in self.topics:
            raise SyncError("sync frame names a topic that is not part of this session")
        return topic

    async def _on_recon(self, topic: bytes, message: Any) -> None:
        if type(message) is not bytes:
            raise SyncError("reconciliation message must be bytes")
        session = self.sessions.get(topic)
        if session is None:
            if self.initiator:
                raise SyncError("unexpected reconciliation message")
            session = self.sessions[topic] = ReconcileSession(self.host.index_for(topic), initiator=False)
        reply = session.receive(message)
        self.stats.rounds += 1
        if reply is not None:
            await self.queue("frame", RECON, {"t": topic, "m": reply})
        await self._push(topic, session)

    async def _start_all(self) -> None:
        """The initiator's first RECON of every shared topic, gathered as one burst (one write)."""
        self.burst = []
        for topic in self.topics:
            session = self.sessions[topic] = ReconcileSession(
                self.host.index_for(topic), initiator=True, salt=secrets.token_bytes(SALT_BYTES)
            )
            await self.queue("frame", RECON, {"t": topic, "m": session.start()})
            await self._push(topic, session)
        await self._release()

    async def _push(self, topic: bytes, session: ReconcileSession) -> None:
        """Send what the session says the peer lacks, as early as it knows; DONE at the end."""
        pushed = self.pushed.setdefault(topic, set())
        early = [i for i in session.take_sendable() if i not in pushed]
        pushed.update(early)
        if session.done and topic not in self.sent_done:
            self.sent_done.add(topic)
            rest = sorted(i for i in session.have_ids if i not in pushed)
            pushed.update(rest)
            await self.queue("envelopes", topic, early + rest, True)
        elif early:
            await self.queue("envelopes", topic, early, False)

    async def _on_envelopes(self, topic: bytes, items: Any) -> None:
        if type(items) is not list or len(items) > 4 * ENVELOPES_PER_FRAME:
            raise SyncError("envelope batch is malformed")
        envelopes = []
        for item in items:
            if type(item) is not bytes or len(item) > MAX_ENVELOPE_BYTES:
                self.stats.bad_envelopes += 1
                continue
            try:
                envelopes.append(Envelope.decode(item))
            except RemoteProtocolError:
                self.stats.bad_envelopes += 1
        self.stats.envelopes_received += len(items)
        if envelopes:
            result = await self.host.accept(topic, envelopes, self.peer)
            self.stats.envelopes_new += len(result.new)
            self.stats.bad_envelopes += result.rejected
        if self.stats.bad_envelopes > MAX_BAD_ENVELOPES:
            raise SyncError("peer sent too many invalid envelopes")

    async def reader(self) -> None:
        """Answer frames until BYE. While frames that have arrived wait to be read, what the
        answers queue is gathered (`burst`) and handed to the writer before waiting for more."""
        while True:
            if not self.stream.buffered:
                await self._release()
            kind, value = await self._read()
            if self.burst is None:
                self.burst = []
            if await self._handle(kind, value):
                await self._release()
                return

    async def _handle(self, kind: int, value: dict[str, Any]) -> bool:
        """One frame; True once the session is over (BYE)."""
        if kind == RECON:
            await self._on_recon(self._topic(value), value.get("m"))
        elif kind == ENVS:
            await self._on_envelopes(self._topic(value), value.get("e"))
        elif kind == DONE:
            topic = self._topic(value)
            self.got_done.add(topic)
            if self.initiator and self.got_done >= set(self.topics) and self.sent_done >= set(self.topics):
                await self.queue("frame", BYE, {})
        elif kind == BYE:
            if not self.initiator:
                await self.queue("frame", BYE, {})
            self.finished.set()
            return True
        elif kind == ERROR:
            raise SyncError(f"peer aborted the sync: {str(value.get('reason'))[:200]}")
        else:
            raise SyncError(f"unknown sync frame kind {kind}")
        return False

    # --- the two roles ------------------------------------------------------------

    async def _expect(self, kind: int) -> dict[str, Any]:
        got, value = await self._read()
        if got == ERROR:
            raise SyncError(f"peer aborted the sync: {str(value.get('reason'))[:200]}")
        if got != kind:
            raise SyncError(f"expected sync frame kind {kind}, got {got}")
        return value

    def _tags(self, value: dict[str, Any]) -> list[bytes]:
        tags = value.get("p")
        if (
            type(tags) is not list
            or not 0 < len(tags) <= access.MAX_TAGS
            or not all(type(t) is bytes and len(t) == access.TAG_BYTES for t in tags)
        ):
            raise SyncError("PROVE tags are malformed")
        return tags

    async def hello(self) -> None:
        """Nonces, then access proofs: afterwards ``self.topics`` holds exactly the topics
        both sides proved a key of. Nothing else about circles crosses before this."""
        nonce = secrets.token_bytes(access.NONCE_BYTES)
        if self.initiator:
            await self._send(HELLO, {"v": VERSION, "n": nonce})
        value = await self._expect(HELLO)
        if value.get("v") != VERSION:
            raise SyncError("unsupported sync version")
        theirs = value.get("n")
        if type(theirs) is not bytes or len(theirs) != access.NONCE_BYTES:
            raise SyncError("HELLO nonce is malformed")
        if self.initiator:
            session = access.Session(nonce, theirs, self.host.peer_id, self.peer)
        else:
            await self._send(HELLO, {"v": VERSION, "n": nonce})
            session = access.Session(theirs, nonce, self.peer, self.host.peer_id)
        keys = self.host.proof_keys()
        if self.initiator:
            await self._send(PROVE, {"p": session.prove(keys, initiator=True, rand=secrets.token_bytes)})
            answers = self._tags(await self._expect(PROVE))
            proved = session.match(answers, keys, initiator=False)
        else:
            claims = self._tags(await self._expect(PROVE))
            proved = session.match(claims, keys, initiator=True)
            # Answer under the very key each topic was proved with: the peer holds it.
            mine = {topic: [key] for topic, key in proved.items()}
            await self._send(PROVE, {"p": session.prove(mine, initiator=False, rand=secrets.token_bytes)})
        shared = sorted(proved)[:MAX_TOPICS]
        self.topics = shared
        self.stats.topics = len(shared)
        self.stats.shared_topics = list(shared)
        if shared:
            self.host.on_proved(self.peer, shared)

    async def run(self) -> SyncStats:
        try:
            with trio.fail_after(SESSION_TIMEOUT_S):
                await self.hello()
                if not self.topics:
                    return self.stats
                try:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self.writer)
                        if self.initiator:
                            await self._start_all()
                        await self.reader()
                        # Let the writer flush the final BYE, then stop it.
                        self.outbox_send.close()
                except BaseExceptionGroup as group:
                    raise _first_expected(group) from None
        except trio.TooSlowError:
            self.stats.error = "timed out"
        except (SyncError, RemoteProtocolError) as exc:
            self.stats.error = str(exc)
            with trio.move_on_after(1):
                try:
                    await write_frame(self.stream, ERROR, codec.encode({"reason": str(exc)[:200]}))
                except StreamClosed:
                    pass
        except StreamClosed as exc:
            self.stats.error = f"stream closed: {exc}"
        finally:
            self.stats.finished = time.time()
            await close_quietly(self.stream, reset=self.stats.error is not None)
        return self.stats


_EXPECTED = (SyncError, RemoteProtocolError, StreamClosed, trio.TooSlowError)


def _first_expected(group: BaseExceptionGroup) -> BaseException:
    """The protocol failure inside a nursery's exception group; anything else is a bug."""
    expected, rest = group.split(_EXPECTED)
    if rest is not None or expected is None:
        raise group
    leaf: BaseException = expected
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    return leaf


async def run_initiator(host: SyncPeer, stream: Any, peer: str) -> SyncStats:
    return await _Session(host, stream, peer, initiator=True).run()


async def run_responder(host: SyncPeer, stream: Any, peer: str) -> SyncStats:
    return await _Session(host, stream, peer, initiator=False).run()
