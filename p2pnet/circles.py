"""A member's circles: keys, replicas and the envelope <-> op pipeline (no networking here).

For each circle the member belongs to, this holds the epoch keys (from the keystore), the
replica (causal DAG + folded state, backed by the encrypted state cache) and its topics:
one per epoch key held (`sync.envelope.epoch_topic`). Incoming envelopes that passed the
gate and were stored are opened here: decrypted with the epoch key, decoded and verified
as signed ops, checked to belong to the topic's circle, and ingested. Ops the member
authors are sealed with the circle's current epoch, on that epoch's topic, stored (the
control API's actions in a worker thread) and folded, one author step per circle at a
time (`Circle.authoring`), so our own chain of ops never forks.

Crash safety: envelopes are stored before they are processed, and each replica's snapshot
records the envelope-store seq it has processed; on start, anything stored after that
seq is processed again (duplicates are harmless: the DAG drops them). A snapshot's cursor
stays below every write still in flight (`storing`): its envelopes are processed only
after it returns.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import trio

from kith.identity.crypto import RandomBytes, random_bytes
from kith.identity.errors import KithError, LocalProtocolError, Malformed, RemoteProtocolError, StorageError, UsageError
from kith.identity.keyring import CircleKeys
from kith.identity.keys import MemberIdentity
from kith.p2pnet.keyfile import Keystore
from kith.p2pnet.statecache import StateCache
from kith.p2pnet.store import EnvelopeStore
from kith.sync.content import ContentReader, seal_content
from kith.sync.envelope import (
    Envelope,
    Kind,
    circle_handle,
    epoch_hints,
    epoch_id,
    epoch_topic,
    is_marker,
    open_envelope,
    relay_key,
    seal,
    topic_of_epoch_key,
)
from kith.sync.kinds import CONTENT_KINDS
from kith.sync.kinds.circle import charter_body, genesis_op
from kith.sync.ops import Op, SignedOp
from kith.sync.replica import CircleReplica, IngestResult

log = logging.getLogger("kith.circles")

MAX_HELD_CLOSES = 256
"""Closes dated in the future held per circle; more are dropped (and counted): they stay
stored, and are read again at the next start."""
HELD_KINDS = ("proposal.close", "alloc.close", "alloc.draw")
"""Ops that end something at a claimed time (a vote, a period, a reveal window): one dated
in our future waits until our clock reaches it, so a lying clock cannot end it early."""


@dataclass
class Circle:
    keys: CircleKeys
    replica: CircleReplica
    handle: bytes
    """`sync.envelope.circle_handle`: what relay tokens and the status name the circle by
    (it never travels in an envelope)."""
    unsaved_ops: int = 0
    reader: ContentReader | None = None
    waiting: dict[bytes, bytes] = field(default_factory=dict)
    """op id -> envelope id of ops in the causal buffer (their envelopes must be re-read
    after a restart, because the buffer itself is not persisted)."""
    held: dict[bytes, tuple[int, bytes]] = field(default_factory=dict)
    """op id -> (claimed time, envelope id) of ``proposal.close`` ops dated in our future:
    stored, but folded only once our clock reaches their time (`MemberCircles.due_held`),
    so a member whose clock lies cannot close a vote early here."""
    authoring: trio.Lock = field(default_factory=trio.Lock, repr=False, compare=False)
    """Our author turn in this circle, held by `MemberCircles.author_many_in_thread` from
    reading our chain's head until its ops are folded (its write runs in a worker thread
    meanwhile), and by whatever authors synchronously while another task might hold it."""

    @property
    def id(self) -> bytes:
        return self.keys.circle_id

    def topics(self) -> dict[bytes, bytes]:
        """epoch topic -> epoch id, for every epoch key we hold."""
        return {topic_of_epoch_key(key): epoch for epoch, key in self.keys.epochs.items()}

    @property
    def current_topic(self) -> bytes:
        return topic_of_epoch_key(self.keys.current_key)


@dataclass
class Processed:
    """What processing a batch of envelopes did, per circle."""

    applied: dict[bytes, list[SignedOp]] = field(default_factory=dict)
    rejected: dict[bytes, list[tuple[bytes, str]]] = field(default_factory=dict)
    missing: dict[bytes, frozenset[bytes]] = field(default_factory=dict)
    waiting_keys: dict[bytes, list[SignedOp]] = field(default_factory=dict)
    """Key ops left waiting for their parents: the keys they carry may be what we need to
    open those parents (a share comes after the ops sealed with the key it shares)."""
    over_share: bool = False
    """The sender had more than its share of a causal buffer waiting (`sync.dag`)."""
    arrived: set[bytes] = field(default_factory=set)
    """Ids of the ops this batch's envelopes carried (any other op applied had been waiting
    for a parent this batch brought)."""


class MemberCircles:
    def __init__(
        self,
        keystore: Keystore,
        store: EnvelopeStore,
        cache: StateCache,
        *,
        clock: Callable[[], float],
        rand: RandomBytes = random_bytes,
    ) -> None:
        identity = keystore.data.identity
        if identity is None:
            raise UsageError("this home belongs to a relay and has no member identity")
        self.identity: MemberIdentity = identity
        self.keystore = keystore
        self.store = store
        self.cache = cache
        self.clock = clock
        self.rand = rand
        self.circles: dict[bytes, Circle] = {}
        self.by_topic: dict[bytes, Circle] = {}
        self.on_stored: Callable[[list[Envelope]], None] | None = None
        """Called with the envelopes of ops we authored as soon as they are stored, before
        they are folded (the node indexes and gossips them). Every stored op must be
        offered to peers: a later op of ours cites it as a parent, and an op that is
        stored but never offered (say, one our own fold rejects) would leave every later
        op of ours waiting for it on every other node."""
        self.counters: Counter[str] = Counter()
        self.private_opener: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None
        """Set by the lifecycle: opens private requests this member may read."""
        self._write_floors: list[int] = []
        """`storing`: the store's max seq when each write in flight began."""
        self.write_error: StorageError | None = None
        """Set when a write failed half-way (e.g. the disk filled up between storing an
        envelope and caching its op): the replicas may lack ops the store holds, so nothing
        more is folded, authored or snapshotted until `reopen` rebuilds them."""

    # --- opening ------------------------------------------------------------------

    def open_all(self) -> None:
        for circle_id, raw in self.keystore.data.circles.items():
            try:
                keys = CircleKeys.from_map(circle_id, raw)
            except Malformed as exc:
                log.error("skipping circle %s: its keys are unreadable (%s)", circle_id.hex()[:8], exc)
                continue
            self._open(keys)

    def reopen(self) -> None:
        """Rebuild every replica from the state cache and the store, as a restart would;
        clears `write_error` when it works (raises `StorageError` and keeps it otherwise)."""
        previous = (self.circles, self.by_topic)
        self.circles, self.by_topic = {}, {}
        self.write_error = None
        try:
            self.open_all()
        except StorageError as exc:
            self.circles, self.by_topic = previous
            self.write_error = exc
            raise

    def _ingest(self, circle: Circle, ops: list[SignedOp], source: str = "self") -> IngestResult:
        try:
            return circle.replica.ingest_many(ops, source)
        except StorageError as exc:
            # The DAG may have taken ops the state never folded: this replica is unsure now.
            self.write_error = exc
            raise

    def _open(self, keys: CircleKeys) -> Circle:
        replica, cursor = CircleReplica.open(self.cache, keys.circle_id)
        circle = Circle(keys, replica, circle_handle(keys.circle_id))
        self.circles[keys.circle_id] = circle
        self.index_topics(circle)
        # Catch up with envelopes stored after the snapshot (e.g. before a crash), in arrival
        # order across the circle's epoch topics (so parents mostly come before children).
        for batch in _chunks(self.store.iter_since(cursor, topics=list(circle.topics())), 1000):
            envelopes = [Envelope.decode(data) for data in batch]
            # Grants and private messages are not ops (the lifecycle replays them by kind).
            envelopes = [e for e in envelopes if not _marker_of(circle, e)]
            for topic in dict.fromkeys(e.topic for e in envelopes):
                self.process(topic, [e for e in envelopes if e.topic == topic])
        return circle

    def index_topics(self, circle: Circle) -> list[bytes]:
        """Route the topics of every epoch key the circle holds to it; returns those new here."""
        new = [topic for topic in circle.topics() if topic not in self.by_topic]
        for topic in new:
            self.by_topic[topic] = circle
        return new

    def gate_keys(self) -> Iterable[tuple[bytes, bytes, bytes, list[tuple[Kind, bytes]]]]:
        """(topic, epoch id, relay key, marker hints) for every epoch key we hold."""
        for circle in self.circles.values():
            for epoch, key in circle.keys.epochs.items():
                rk = relay_key(key)
                yield epoch_topic(rk), epoch, rk, epoch_hints(key)

    def topics(self) -> list[bytes]:
        return list(self.by_topic)

    def get(self, circle_ref: str) -> Circle:
        """A circle by id (or an id prefix of 4+ hex digits), by name, or by a unique name prefix."""
        ref = circle_ref.strip().lower()
        circles = list(self.circles.values())
        for pick in (
            lambda c: c.id.hex() == ref,
            lambda c: c.keys.label.lower() == ref,
            lambda c: len(ref) >= 4 and c.id.hex().startswith(ref),
            lambda c: bool(ref) and c.keys.label.lower().startswith(ref),
        ):
            matches = [c for c in circles if pick(c)]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise UsageError(f"{circle_ref!r} matches several circles; use more of its name or id")
        raise UsageError(f"you are not in a circle called {circle_ref!r}; 'kith circles' lists yours")

    # --- creating -----------------------------------------------------------------

    def create_circle(
        self, name: str, description: str = "", *, confirm_joins: bool = False
    ) -> tuple[Circle, Envelope]:
        now = int(self.clock())
        epoch_key = self.rand(32)
        signed = genesis_op(
            self.identity, name=name, description=description, salt=self.rand(16), ts=now, epoch=epoch_id(epoch_key),
            charter=charter_body(confirm_joins=confirm_joins),
        )  # fmt: skip
        genesis = SignedOp.decode(signed.data)
        first = epoch_id(epoch_key)
        keys = CircleKeys(genesis.op.circle, name, {first: epoch_key}, first, {first: self.rand(32)})
        self.keystore.data.circles[keys.circle_id] = keys.to_map()
        self.keystore.save()
        circle = self._open(keys)
        envelope = seal(genesis.data, epoch_key=epoch_key, ts=now, rand=self.rand)
        self.store.add_batch([envelope])
        self.process(envelope.topic, [envelope])
        return circle, envelope

    def join_with_keys(
        self,
        circle_id: bytes,
        label: str,
        epochs: dict[bytes, bytes],
        current: bytes,
        contents: dict[bytes, bytes],
    ) -> Circle:
        """Start following a circle whose keys a welcome delivered."""
        if circle_id in self.circles:
            circle = self.circles[circle_id]
            for epoch, key in epochs.items():
                circle.keys.add_epoch(epoch, key, make_current=epoch == current, content=contents.get(epoch))
            self.keystore.data.circles[circle_id] = circle.keys.to_map()
            self.keystore.save()
            self.index_topics(circle)
            return circle
        keys = CircleKeys(circle_id, label, dict(epochs), current, dict(contents))
        self.keystore.data.circles[circle_id] = keys.to_map()
        self.keystore.save()
        return self._open(keys)

    # --- authoring ----------------------------------------------------------------

    def author(self, circle: Circle, kind: str, body: dict[str, Any]) -> tuple[Envelope, IngestResult]:
        """Sign, seal (current epoch), store and fold a new op; returns its envelope."""
        envelopes, result = self.author_many(circle, [(kind, body)])
        return envelopes[0], result

    def author_many(
        self, circle: Circle, items: list[tuple[str, dict[str, Any]]], *, seal_epoch: bytes | None = None
    ) -> tuple[list[Envelope], IngestResult]:
        """Author several ops in a row and store them in one durable transaction, written on
        the calling thread (the node's own duties, run from synchronous code: key acks,
        shares, rotations, closes). The control API's actions use `author_many_in_thread`.

        They are sealed with the current epoch, or with ``seal_epoch`` (key shares go to
        members who lack the current key, so they are sealed with one the members hold).
        Refused while another task's author step of the circle is in flight: it would build
        on the chain head that step is about to move (`busy`)."""
        if self.busy(circle):
            raise LocalProtocolError("authoring in a circle whose author step another task holds")
        signed_ops, envelopes = self._build(circle, items, seal_epoch)
        self.store.add_batch(envelopes)
        return envelopes, self._stored(circle, signed_ops, envelopes)

    async def author_many_in_thread(
        self, circle: Circle, items: list[tuple[str, dict[str, Any]]], *, seal_epoch: bytes | None = None
    ) -> tuple[list[Envelope], IngestResult]:
        """`author_many` with the durable write in a worker thread, so its fsync does not
        stall the trio loop; when it returns the ops are stored, offered and folded.

        The whole step holds the circle's author turn (`Circle.authoring`), from reading
        the chain head to the fold that moves it: two actions at once in one circle would
        otherwise both build on the same head and fork our own chain. Once the write has
        started the rest is shielded: a cancelled caller must not leave a stored op unfolded
        (our next op would reuse its number)."""
        async with circle.authoring:
            signed_ops, envelopes = self._build(circle, items, seal_epoch)
            with trio.CancelScope(shield=True), self.storing():
                await self.store.add_batch_in_thread(envelopes)
                result = self._stored(circle, signed_ops, envelopes)
        return envelopes, result

    async def author_in_thread(self, circle: Circle, kind: str, body: dict[str, Any]) -> tuple[Envelope, IngestResult]:
        """`author` with the write in a worker thread (`author_many_in_thread`)."""
        envelopes, result = await self.author_many_in_thread(circle, [(kind, body)])
        return envelopes[0], result

    def busy(self, circle: Circle) -> bool:
        """Does another task hold the circle's author turn (its write in a worker thread)?
        Then synchronous authoring in this circle must wait for it (`Lifecycle` does)."""
        owner = circle.authoring.statistics().owner
        return owner is not None and owner is not trio.lowlevel.current_task()

    @contextmanager
    def storing(self) -> Iterator[None]:
        """Around a write whose envelopes are processed only after it returns (in a worker
        thread, other tasks run meanwhile): snapshots taken in between keep their cursor
        below it, so a restart still processes what the write stored."""
        floor = self.store.max_seq()
        self._write_floors.append(floor)
        try:
            yield
        finally:
            self._write_floors.remove(floor)

    def _build(
        self, circle: Circle, items: list[tuple[str, dict[str, Any]]], seal_epoch: bytes | None
    ) -> tuple[list[SignedOp], list[Envelope]]:
        """Sign and seal ops on our chain's head (each sits on the one before); nothing stored."""
        if self.write_error is not None:
            raise StorageError(f"{self.write_error} (kith picks up where it stopped once it can write)")
        state = circle.replica.state
        if state.info.get("circle") is None:
            raise UsageError("this circle's history has not arrived yet; connect to a peer or relay and try again")
        if self.identity.member_id not in state.members:
            raise UsageError("you are not a member of this circle (yet, or any more)")
        current = state.info.get("epoch")
        key_ops = all(kind in ("key.rotate", "key.share", "key.ack") for kind, _ in items)
        if not key_ops and (
            state.info.get("rotation_due") or (current is not None and current not in circle.keys.epochs)
        ):
            # Someone left and the key has not been replaced yet (or we lack the new one):
            # sealing now could let the person who left read this. Wait for the rotation.
            raise UsageError("waiting for the circle's new key (someone left); try again in a moment")
        now = int(self.clock())
        epoch_key = circle.keys.current_key if seal_epoch is None else circle.keys.epochs[seal_epoch]
        signed_ops: list[SignedOp] = []
        envelopes: list[Envelope] = []
        me = self.identity.member_id
        cite = [op_id for kind, body in items for op_id in state.citations_for(kind, body)]
        parents, lamport, seq = circle.replica.next_op(me, cite=cite)
        for kind, body in items:
            try:
                body = self._seal_content(circle, kind, body)
                made = SignedOp.create(Op(circle.id, me, parents, lamport, now, kind, body, seq=seq), self.identity)
                # Round-trip, so the op folds here exactly as it will on every other node.
                signed = SignedOp.decode(made.data)
            except RemoteProtocolError as exc:
                raise UsageError(f"cannot {kind}: {exc}") from exc
            # The next op sits on this one (which already cites every head we had).
            parents, lamport, seq = (signed.id,), signed.op.lamport + 1, seq + 1
            signed_ops.append(signed)
            envelopes.append(seal(signed.data, epoch_key=epoch_key, ts=now, rand=self.rand))
        return signed_ops, envelopes

    def _stored(self, circle: Circle, signed_ops: list[SignedOp], envelopes: list[Envelope]) -> IngestResult:
        """Ops of ours, just stored: offer them to peers, then fold them."""
        if self.on_stored is not None:
            self.on_stored(envelopes)
        result = self._ingest(circle, signed_ops)
        circle.unsaved_ops += len(result.applied)
        return result

    # --- processing ---------------------------------------------------------------

    def process(self, topic: bytes, envelopes: list[Envelope], source: str = "store") -> Processed:
        """Open stored envelopes of one topic and fold their ops (``source``: the peer that
        sent them, whose share of the causal buffer they count against)."""
        processed = Processed()
        circle = self.by_topic.get(topic)
        if circle is None or not envelopes:
            return processed
        ops: dict[bytes, SignedOp] = {}
        envelope_of: dict[bytes, bytes] = {}
        for envelope in envelopes:
            key = circle.keys.epochs.get(envelope.epoch)
            if key is None:
                self.counters["no key for epoch"] += 1
                continue
            try:
                signed = SignedOp.decode(open_envelope(envelope, key))
            except RemoteProtocolError as exc:
                self.counters[f"unreadable op: {type(exc).__name__}"] += 1
                continue
            if signed.op.circle != circle.id:
                self.counters["op for another circle"] += 1
                continue
            if signed.op.kind in HELD_KINDS and signed.op.ts > self.clock():
                if signed.id not in circle.held and len(circle.held) >= MAX_HELD_CLOSES:
                    self.counters["dropped: too many closes dated in the future"] += 1
                else:
                    circle.held[signed.id] = (signed.op.ts, envelope.id)
                    self.counters["held: a close dated in the future"] += 1
                continue
            circle.held.pop(signed.id, None)
            ops[signed.id] = signed
            envelope_of[signed.id] = envelope.id
        if not ops:
            return processed
        processed.arrived.update(ops)
        result = self._ingest(circle, list(ops.values()), source)
        circle.unsaved_ops += len(result.applied)
        processed.over_share = result.over_share
        for op_id in result.buffered:
            circle.waiting[op_id] = envelope_of[op_id]
            if ops[op_id].op.kind in ("key.rotate", "key.share"):
                processed.waiting_keys.setdefault(circle.id, []).append(ops[op_id])
        if result.applied:
            processed.applied[circle.id] = list(result.applied)
        if result.rejected:
            processed.rejected[circle.id] = list(result.rejected)
        if result.missing:
            processed.missing[circle.id] = result.missing
        for _op_id, reason in result.dropped:
            self.counters[f"dropped: {reason}"] += 1
        return processed

    def due_held(self, circle: Circle) -> list[bytes]:
        """Envelope ids of held closes whose time has come (they are folded again)."""
        now = self.clock()
        return [envelope for _op, (ts, envelope) in sorted(circle.held.items()) if ts <= now]

    def _seal_content(self, circle: Circle, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """Replace a plaintext ``content`` map with its blob, sealed with the current content key."""
        fields = body.get("content")
        if not isinstance(fields, dict):
            return body
        spec = CONTENT_KINDS.get(kind)
        if spec is None:
            raise UsageError(f"{kind} carries no sealed content")
        validate = spec[1]
        try:
            validate(fields)
        except RemoteProtocolError as exc:
            raise UsageError(f"cannot {kind}: {exc}") from exc
        key = circle.keys.current_content_key
        if key is None:
            raise UsageError("waiting for the circle's current content key; try again in a moment")
        blob = seal_content(
            fields, circle=circle.id, author=self.identity.member_id, kind=kind, epoch=circle.keys.current, key=key,
            rand=self.rand,
        )  # fmt: skip
        return {**body, "content": blob}

    def reader(self, circle: Circle) -> ContentReader:
        """Opens what people said in this circle, with the content keys we hold."""
        if circle.reader is None:
            circle.reader = ContentReader(circle.id, circle.keys.contents, private_opener=self.private_opener)
        return circle.reader

    def save_keys(self, circle: Circle) -> None:
        """Write a circle's keys to the keystore (atomically, before anything relies on them)."""
        self.keystore.data.circles[circle.id] = circle.keys.to_map()
        self.keystore.save()

    def save_snapshots(self, *, force: bool = False, min_ops: int = 500) -> int:
        """Snapshot circles with enough new ops (or all, with ``force``); returns how many.

        The cursor saved with a snapshot is the envelope-store seq processed so far, but
        never past the envelope of an op still waiting for its parents: those envelopes
        are read again on the next start.
        """
        if self.write_error is not None:
            return 0  # a snapshot of an unsure replica would make its gaps permanent
        # Never past an envelope stored by a write whose envelopes are not processed yet.
        latest = min([self.store.max_seq(), *self._write_floors])
        saved = 0
        for circle in self.circles.values():
            if circle.unsaved_ops and (force or circle.unsaved_ops >= min_ops):
                circle.waiting = {o: e for o, e in circle.waiting.items() if circle.replica.dag.is_buffered(o)}
                cursor = latest
                unread = [*circle.waiting.values(), *(envelope for _ts, envelope in circle.held.values())]
                if unread:
                    cursor = min(cursor, self.store.min_seq_of(unread) - 1)
                try:
                    circle.replica.save(cursor)
                except KithError as exc:
                    log.error("could not save the state of circle %s: %s", circle.id.hex()[:8], exc)
                    continue
                circle.unsaved_ops = 0
                saved += 1
        return saved


def _marker_of(circle: Circle, envelope: Envelope) -> bool:
    key = circle.keys.epochs.get(envelope.epoch)
    return key is not None and is_marker(envelope, key)


def _chunks(items: Iterable[bytes], size: int) -> Iterable[list[bytes]]:
    batch: list[bytes] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
