"""Gossip: the fast, lossy path. One gossipsub topic per circle; messages are envelope batches.

Gossip is only an accelerator. py-libp2p's queues drop under bursts and peers come and
go, so nothing depends on a gossip message arriving: reconciliation (syncproto.py)
guarantees completeness. What gossip must never do is let garbage in: every message is
checked by `Gate` in the validator before libp2p forwards it, and a message with one bad
envelope is refused whole (the forwarder is counted).

Batching matters: each gossip message costs ~1 ms of CPU per node in py-libp2p, so the
publisher gathers what is queued (up to `MAX_BATCH_ENVELOPES` or `MAX_BATCH_BYTES`, for at
most `BATCH_WINDOW_S`) into one message.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import trio

from kith.identity import codec
from kith.identity.errors import RemoteProtocolError
from kith.p2pnet.gate import Gate, Verdict
from kith.p2pnet.netstack import NetStack
from kith.p2pnet.ratelimit import KeyedLimiter
from kith.sync.envelope import Envelope
from kith.sync.limits import MAX_ENVELOPE_BYTES

log = logging.getLogger("kith.gossip")

TOPIC_PREFIX = "kith/1/"
MAX_BATCH_ENVELOPES = 64
MAX_BATCH_BYTES = 256 * 1024
BATCH_WINDOW_S = 0.002
PUBLISH_QUEUE = 10_000
BACKLOG_HIGH_WATER = 256
"""Pause publishing while some peer's outbound queue is this long (it holds 1024)."""

PASSED_ON_IDS = 4096
"""Envelope ids of the latest gossip messages we passed on (`GossipService._validate`): what
we received but have not stored yet counts as held too. A partition's backlog is a few
hundred."""

JUNK_WEIGHT = 0.2
"""Penalty per junk envelope (see `Verdict.JUNK`): a flood gets its sender banned within
seconds; a relay that forwards a little junk someone pushed into it is not."""

OnEnvelopes = Callable[[bytes, list[Envelope], str], Awaitable[None]]
IsKnown = Callable[[bytes, Envelope], bool]
"""Does the node hold this envelope of this topic already (stored and indexed)?"""


def topic_name(topic: bytes) -> str:
    return TOPIC_PREFIX + topic.hex()


def topic_from_name(name: str) -> bytes | None:
    """The topic a gossip topic name stands for, or None if it is not one of ours."""
    if not name.startswith(TOPIC_PREFIX) or len(name) != len(TOPIC_PREFIX) + 64:
        return None
    try:
        return bytes.fromhex(name[len(TOPIC_PREFIX) :])
    except ValueError:
        return None


def encode_batch(envelopes: list[bytes]) -> bytes:
    return codec.encode(envelopes)


def decode_batch(data: bytes) -> list[bytes]:
    raw = codec.decode(data, max_size=MAX_BATCH_BYTES + MAX_ENVELOPE_BYTES + 64, what="gossip batch")
    if type(raw) is not list or not 1 <= len(raw) <= MAX_BATCH_ENVELOPES:
        raise RemoteProtocolError("gossip batch must be a list of 1 to 64 envelopes")
    if not all(type(item) is bytes for item in raw):
        raise RemoteProtocolError("gossip batch items must be byte strings")
    return raw


@dataclass
class GossipStats:
    published_messages: int = 0
    published_envelopes: int = 0
    received_messages: int = 0
    received_envelopes: int = 0
    rejected_messages: Counter[str] = field(default_factory=Counter)
    dropped_publishes: int = 0
    held_back: int = 0
    """Messages taken in but not passed on: every envelope in them was ours already."""


class GossipService:
    def __init__(
        self,
        net: NetStack,
        gate: Gate,
        on_envelopes: OnEnvelopes,
        *,
        peer_limiter: KeyedLimiter | None = None,
        clock: Callable[[], float] = time.time,
        on_misbehaviour: Callable[..., None] | None = None,
        is_known: IsKnown | None = None,
    ) -> None:
        self.net = net
        self.gate = gate
        self.on_envelopes = on_envelopes
        self.is_known = is_known
        self._me = net.peer_id
        self.peer_limiter = peer_limiter
        self.clock = clock
        self.on_misbehaviour = on_misbehaviour or (lambda peer, reason, weight=1.0: None)
        self.stats = GossipStats()
        self._checked: OrderedDict[bytes, tuple[str, list[Envelope]]] = OrderedDict()
        """Validated messages by content hash: the peer that forwarded it, its envelopes."""
        self._published: OrderedDict[bytes, None] = OrderedDict()
        """Content hashes of our own recent publishes (gossip names no origin to skip by)."""
        self._passed_on: OrderedDict[bytes, None] = OrderedDict()
        """Ids of envelopes in messages we recently passed on (`PASSED_ON_IDS`)."""
        self._send, self._receive = trio.open_memory_channel[tuple[bytes, bytes]](PUBLISH_QUEUE)
        self._loops: dict[bytes, trio.CancelScope] = {}
        """The receive loop of each subscribed topic (at most one per topic)."""
        self._wanted: set[bytes] = set()
        """The topics the node serves: what the subscriptions are brought in line with."""
        self._settling = trio.Lock()

    # --- receiving ----------------------------------------------------------------

    def _validate(self, topic: bytes, forwarder: str, data: bytes) -> bool:
        if self.peer_limiter is not None and not self.peer_limiter.allow(forwarder, self.clock()):
            self.stats.rejected_messages["peer over rate limit"] += 1
            return False
        try:
            items = decode_batch(data)
        except RemoteProtocolError:
            self.stats.rejected_messages["malformed batch"] += 1
            self.on_misbehaviour(forwarder, "malformed gossip")
            return False
        envelopes: list[Envelope] = []
        now = self.clock()
        for item in items:
            envelope = self.gate.parse(item)
            verdict = Verdict.REJECT if envelope is None else self.gate.check(envelope, now=now, topic=topic)
            if envelope is None or verdict is Verdict.REJECT:
                self.stats.rejected_messages["bad envelope"] += 1
                self.on_misbehaviour(forwarder, "invalid envelope in gossip")
                return False
            if verdict is Verdict.JUNK:
                self.stats.rejected_messages["junk envelope"] += 1
                self.on_misbehaviour(forwarder, "junk envelope in gossip", JUNK_WEIGHT)
                return False
            if verdict is Verdict.FULL:
                self.stats.rejected_messages["over quota"] += 1
                return False
            envelopes.append(envelope)
        digest = hashlib.sha256(data).digest()  # the message id (netstack's `_content_id`)
        if forwarder != self._me and all(self._old_news(topic, e) for e in envelopes):
            # Nothing new to us: take it in, do not pass it on. A batch is a message of its
            # own, so the same envelopes batched again by another node (a re-gossip of what
            # reconciliation brought) are "new" to gossipsub's seen-cache: after a partition
            # healed, each node's re-gossip of the backlog crossed the whole mesh. What we
            # hold we passed on when it first came, or chose not to (past the re-gossip
            # budget), or it came before a restart: peers that lack it get it by
            # reconciliation (at connect, every interval, on a missing parent), as they
            # would have if its first gossip had been lost. Our own publishes always go.
            self.net.hold_back(digest)
            self.stats.held_back += 1
        else:
            self._note_passed_on(envelopes)
        self._checked[digest] = (forwarder, envelopes)
        while len(self._checked) > 4096:
            self._checked.popitem(last=False)
        return True

    def _old_news(self, topic: bytes, envelope: Envelope) -> bool:
        """Did we pass this envelope on already (it may not be stored yet), or do we hold it?"""
        return envelope.id in self._passed_on or (self.is_known is not None and self.is_known(topic, envelope))

    def _note_passed_on(self, envelopes: list[Envelope]) -> None:
        for envelope in envelopes:
            self._passed_on[envelope.id] = None
            self._passed_on.move_to_end(envelope.id)
        while len(self._passed_on) > PASSED_ON_IDS:
            self._passed_on.popitem(last=False)

    def join_nowait(self, topic: bytes, nursery: trio.Nursery) -> None:
        """Want a topic's gossip from now on; the subscription follows in a task."""
        self._wanted.add(topic)
        nursery.start_soon(self._settle, topic, nursery)

    def leave_nowait(self, topic: bytes, nursery: trio.Nursery) -> None:
        """Want no more of a topic's gossip; the unsubscription follows in a task."""
        self._wanted.discard(topic)
        nursery.start_soon(self._settle, topic, nursery)

    async def join(self, topic: bytes, nursery: trio.Nursery) -> None:
        """Subscribe to a topic and start delivering its envelopes (returns once subscribed)."""
        self._wanted.add(topic)
        await self._settle(topic, nursery)

    async def leave(self, topic: bytes, nursery: trio.Nursery) -> None:
        self._wanted.discard(topic)
        await self._settle(topic, nursery)

    async def _settle(self, topic: bytes, nursery: trio.Nursery) -> None:
        """Bring the topic's subscription in line with what is wanted *now*.

        Joins and leaves are asked for from synchronous code and run as tasks, which trio
        may start in any order, and each awaits the network part-way through. So the wish
        is recorded first (`_wanted`) and every change is made under one lock against the
        latest wish: a drop followed at once by a serve ends subscribed, the reverse ends
        unsubscribed, and there is never more than one receive loop per topic (two loops,
        one of them orphaned by a leave, read a subscription that was gone and crashed the
        node)."""
        async with self._settling:
            name = topic_name(topic)
            if topic in self._wanted and topic not in self._loops:
                self.net.set_topic_validator(name, lambda forwarder, data: self._validate(topic, forwarder, data))
                await self.net.subscribe(name)
                scope = trio.CancelScope()
                self._loops[topic] = scope
                nursery.start_soon(self._receive_loop, topic, name, scope)
            elif topic not in self._wanted and topic in self._loops:
                # Cancelled before the subscription goes, so the loop never reads a missing one.
                self._loops.pop(topic).cancel()
                await self.net.unsubscribe(name)

    async def _receive_loop(self, topic: bytes, name: str, scope: trio.CancelScope) -> None:
        with scope:
            while True:
                # on_envelopes may return without a checkpoint: notice a leave before reading.
                await trio.lowlevel.checkpoint_if_cancelled()
                data = await self.net.next_message(name)
                digest = hashlib.sha256(data).digest()
                if digest in self._published:
                    self._checked.pop(digest, None)
                    continue  # our own publish, echoed back by the subscription
                checked = self._checked.pop(digest, None)
                if checked is None:  # validated long ago and evicted: nothing to vouch for it
                    self.stats.rejected_messages["validated too long ago"] += 1
                    continue
                forwarder, envelopes = checked
                self.stats.received_messages += 1
                self.stats.received_envelopes += len(envelopes)
                await self.on_envelopes(topic, envelopes, forwarder)

    # --- publishing ---------------------------------------------------------------

    def publish_nowait(self, envelope: Envelope) -> None:
        """Queue an envelope for gossip; if the queue is full it is dropped (and counted):
        reconciliation will deliver it instead."""
        try:
            self._send.send_nowait((envelope.topic, envelope.data))
        except trio.WouldBlock:
            self.stats.dropped_publishes += 1

    async def run_publisher(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        pending: dict[bytes, list[bytes]] = {}
        while True:
            topic, data = await self._receive.receive()
            pending.setdefault(topic, []).append(data)
            with trio.move_on_after(BATCH_WINDOW_S):
                while sum(len(v) for v in pending.values()) < MAX_BATCH_ENVELOPES:
                    topic, data = await self._receive.receive()
                    pending.setdefault(topic, []).append(data)
            while True:  # drain whatever else is already queued, without waiting
                try:
                    topic, data = self._receive.receive_nowait()
                except trio.WouldBlock:
                    break
                pending.setdefault(topic, []).append(data)
            for topic, items in pending.items():
                await self._publish_batches(topic, items)
            pending.clear()

    async def _publish_batches(self, topic: bytes, items: list[bytes]) -> None:
        batch: list[bytes] = []
        size = 0
        for data in items:
            if batch and (len(batch) >= MAX_BATCH_ENVELOPES or size + len(data) > MAX_BATCH_BYTES):
                await self._publish_one(topic, batch)
                batch, size = [], 0
            batch.append(data)
            size += len(data)
        if batch:
            await self._publish_one(topic, batch)

    async def _publish_one(self, topic: bytes, batch: list[bytes]) -> None:
        # Back-pressure: a peer whose queue is long would drop what we add; wait (at most
        # half a second, then publish anyway: a stuck peer must not stall every circle).
        with trio.move_on_after(0.5):
            await self.net.wait_for_room(BACKLOG_HIGH_WATER)
        data = encode_batch(batch)
        self._published[hashlib.sha256(data).digest()] = None
        while len(self._published) > 4096:
            self._published.popitem(last=False)
        try:
            await self.net.publish(topic_name(topic), data)
        except Exception as exc:  # noqa: BLE001 - libp2p publish failures must not stop the node
            log.warning("gossip publish failed: %r", exc)
            self.stats.dropped_publishes += len(batch)
            return
        self.stats.published_messages += 1
        self.stats.published_envelopes += len(batch)
