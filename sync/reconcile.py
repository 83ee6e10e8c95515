"""Range-based set reconciliation with difference sketches, sans-IO (docs/RECONCILE.md).

Theory of operation
-------------------
Two nodes each hold a set of items ``(ts, id)`` for a topic and must learn, cheaply,
which ids the other lacks. A `ReconcileSession` is a pure state machine: bytes in,
bytes out (h11 style). The initiator calls `start` and sends the result; from then on
each side feeds what it receives to `receive` and sends back what it returns, until
`receive` returns None or `done` is true. Nothing here blocks, reads a clock or draws
randomness: the initiator's per-session salt is passed in.

Every message is a list of ranges tiling the whole ``(ts, id)`` order, each with a
payload (Negentropy's framing). A side answers each range of the peer's message:

* ``Fingerprint`` / ``Estimate`` (count, fingerprint, and for Estimate 128 tug-of-war
  counters): equal fingerprints end the range (``Skip``). Otherwise one-sided ranges end
  at once (``NeedAll`` / ``HaveAll``), small ones are listed (``IdList``), and a range
  with an estimate gets a ``Sketch`` sized from it. Without an estimate, or if the sketch
  would be too big, the range is split 16 ways into sub-ranges (with estimates when
  large): classic Negentropy, which always ends in id lists.
* ``IdList``: the exact difference, answered with ``IdListReply`` (a bitmap of the ids
  we lack and the number of ours the peer lacks).
* ``Sketch``: subtract our own sketch and peel. Success gives both directions of the
  difference at once, answered with ``SketchResult``: the keys we need, our keys the peer
  needs, and the count and id sum of what we hold in common. The sketch's sender checks
  that sum against its own items before answering ``Skip``, so short-key collisions or a
  lying decoder can never produce a wrong "in sync". If peeling fails we answer with a
  sketch twice the size (once), then fall back to splitting.

The common case is therefore two round trips: Estimate -> Sketch -> SketchResult ->
Skip, and each side can push its missing envelopes right after its second message (see
`take_sendable`). In-sync sets end after one: Estimate -> Skip.

Results: `have_ids` (full ids we hold that the peer lacks) is always exact once `done`.
What we lack is known as full ids (`need_ids`) when the peer listed them, as salted
sketch keys (`need_keys`) after a sketch, or as a range and a count when the peer sends
a whole range; `need_count` is exact and `expects` tells whether an incoming envelope is
one of them. Committed results survive a later error, so an adapter can still send them.

Everything a peer controls is bounded: message size, ranges per message, id list and
sketch sizes (`sync.reconcile_wire`), and rounds (`max_rounds`). A message that is not a
valid answer to what we sent raises `UnexpectedRange`; a session that runs too long
raises `RoundLimitExceeded`.
"""

from __future__ import annotations

import enum
from array import array
from dataclasses import dataclass

from identity.errors import LocalProtocolError
from sync.reconcile_index import (
    INFINITY,
    ItemIndex,
    fingerprint,
    item_key,
)
from sync.reconcile_sketch import (
    Sketch,
    ams_residues,
    cells_for_estimate,
    cells_of,
    decode_ams,
    difference_energy,
    encode_ams,
    peel,
    salt_multiplier,
    sketch_key,
    sketch_values,
    table_for_cells,
)
from sync.reconcile_wire import (
    MAX_MESSAGE_BYTES,
    MAX_RANGES,
    MAX_SKETCH_CELLS,
    SALT_BYTES,
    Estimate,
    Fingerprint,
    HaveAll,
    IdList,
    IdListReply,
    Message,
    NeedAll,
    Payload,
    Range,
    RoundLimitExceeded,
    SketchRange,
    SketchResult,
    Skip,
    UnexpectedRange,
    decode_message,
    encode_message,
    pack_keys,
    payload_size,
)

__all__ = [
    "DEFAULT_MAX_ROUNDS",
    "ItemIndex",
    "ReconcileSession",
    "ReconcileStats",
    "RoundLimitExceeded",
    "UnexpectedRange",
]

DEFAULT_MAX_ROUNDS = 12
IDLIST_ITEMS = 32
"""A range with at most this many of our items is answered with our id list (<= 1 KiB)."""
START_IDLIST_ITEMS = 16
"""The initiator lists a set this small outright: one round trip, whatever the difference."""
ESTIMATE_MIN_ITEMS = 256
"""Sub-ranges at least this big carry an estimator, so the next answer can be a sketch."""
SPLIT_PARTS = 16
DEFER_COST = 70
"""Reserved per unanswered range: a Fingerprint answer always fits (bound + count + fingerprint)."""
_HEADER_SLACK = 32
_MOD = 1 << 256


@dataclass(slots=True)
class ReconcileStats:
    messages_sent: int = 0
    messages_received: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    sketches_sent: int = 0
    sketch_failures: int = 0
    """Sketches we could not peel, and decoded results that did not verify."""


class _Kind(enum.Enum):
    START = "start"
    TERMINAL = "terminal"
    SUMMARY = "summary"
    IDLIST = "idlist"
    SKETCH = "sketch"
    RESULT = "result"


@dataclass(slots=True)
class _Snapshot:
    """Our items of a range when we sketched it: the verification must use the same ones."""

    keys: list[bytes]
    values: array[int]
    """Cell values of ``keys`` (the sketch key is ``value >> 16``)."""
    total: int


@dataclass(slots=True)
class _Sent:
    """One range of the last message we sent (or will send), with what we need to check its answer."""

    lower: bytes
    upper: bytes
    kind: _Kind
    payload: Payload
    count: int = 0
    ids: list[bytes] | None = None
    snapshot: _Snapshot | None = None
    tentative: tuple[list[bytes], list[int]] | None = None
    confirmed: bool = False


_SKIP = Skip()
_ALLOWED: dict[_Kind, tuple[type[Payload], ...]] = {
    _Kind.START: (Fingerprint, Estimate, IdList),
    _Kind.TERMINAL: (),
    _Kind.SUMMARY: (Fingerprint, Estimate, IdList, SketchRange, NeedAll),
    _Kind.IDLIST: (Fingerprint, Estimate),
    _Kind.SKETCH: (Fingerprint, Estimate, IdList, NeedAll),
    _Kind.RESULT: (Fingerprint, Estimate, IdList, NeedAll),
}
"""Payloads that may answer part of a range we sent, by what we sent."""


class _Reply:
    """The answer being built: entries in order, and a byte and range budget.

    Every unanswered incoming range keeps `DEFER_COST` bytes and one range in reserve, so
    a range whose best answer no longer fits can always be *deferred*: answered with our
    own summary of it, to be taken up in a later round. The first range that needs real
    work is never deferred (it gets a compact answer instead), so every message makes
    progress and two sides cannot bounce the same range back and forth forever.
    """

    def __init__(self, pending: int, limit: int, max_ranges: int) -> None:
        self.entries: list[_Sent] = []
        self.size = _HEADER_SLACK
        self.pending = pending
        self.limit = limit
        self.max_ranges = max_ranges
        self.progressed = False

    def room(self) -> int:
        return self.limit - self.size - self.pending * DEFER_COST

    def fits(self, size: int, ranges: int = 1) -> bool:
        return size <= self.room() and ranges <= self.max_ranges - len(self.entries) - self.pending

    @property
    def must_progress(self) -> bool:
        return not self.progressed

    def add(self, entry: _Sent) -> None:
        if isinstance(entry.payload, Skip) and self.entries and isinstance(self.entries[-1].payload, Skip):
            self.entries[-1].upper = entry.upper
            return
        self.entries.append(entry)
        self.size += payload_size(entry.payload)


class ReconcileSession:
    """One reconciliation of one topic with one peer; see the module docstring."""

    def __init__(
        self,
        index: ItemIndex,
        *,
        initiator: bool,
        salt: bytes | None = None,
        max_rounds: int = DEFAULT_MAX_ROUNDS,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        if initiator and (type(salt) is not bytes or len(salt) != SALT_BYTES):
            raise LocalProtocolError(f"the initiator needs a fresh random {SALT_BYTES}-byte salt")
        if not initiator and salt is not None:
            raise LocalProtocolError("the responder learns the salt from the first message")
        if max_rounds < 1 or not 4096 <= max_message_bytes <= MAX_MESSAGE_BYTES:
            raise LocalProtocolError("max_rounds >= 1 and 4 KiB <= max_message_bytes <= 256 KiB")
        self.index = index
        self.initiator = initiator
        self.salt = salt
        self.max_rounds = max_rounds
        self.max_message_bytes = max_message_bytes
        self.done = False
        self.have_ids: set[bytes] = set()
        self.need_ids: set[bytes] = set()
        self.need_keys: set[int] = set()
        self.need_ranges: list[tuple[bytes, bytes, int, frozenset[bytes]]] = []
        self.stats = ReconcileStats()
        self._multiplier = salt_multiplier(salt) if salt is not None else None
        self._max_ranges = min(MAX_RANGES, max_message_bytes // (2 * DEFER_COST))
        self._sent: list[_Sent] = [] if initiator else [_Sent(b"", INFINITY, _Kind.START, _SKIP)]
        self._sendable: list[bytes] = []
        self._offered: set[bytes] = set()
        self._started = False
        self._broken = False

    # --- public API -------------------------------------------------------------------

    @property
    def need_count(self) -> int:
        """How many items the peer will send us (exact once `done`)."""
        return len(self.need_ids) + len(self.need_keys) + sum(count for *_, count, _ex in self.need_ranges)

    @property
    def rounds(self) -> int:
        return max(self.stats.messages_sent, self.stats.messages_received)

    def start(self) -> bytes:
        """The initiator's first message: one range over everything."""
        if not self.initiator or self._started:
            raise LocalProtocolError("only the initiator starts, once")
        self._started = True
        count, total = self.index.count_and_sum()
        if count == 0:
            entry = _Sent(b"", INFINITY, _Kind.SUMMARY, Fingerprint(0, fingerprint(0, 0)))
        elif count <= START_IDLIST_ITEMS:
            ids = [key[8:] for key in self.index.item_keys()]
            entry = _Sent(b"", INFINITY, _Kind.IDLIST, IdList(b"".join(ids)), ids=ids)
        else:
            entry = _Sent(b"", INFINITY, _Kind.SUMMARY, self._estimate(b"", INFINITY, count, total), count=count)
        self._sent = [entry]
        return self._send(Message((Range(INFINITY, entry.payload),), salt=self.salt))

    def receive(self, data: bytes) -> bytes | None:
        """Process the peer's message; the reply to send, or None when the session is over.

        Raises a `RemoteProtocolError` subclass for anything the peer got wrong; the
        session is then unusable (committed results stay readable).
        """
        if self.done or self._broken or (self.initiator and not self._started):
            raise LocalProtocolError("receive() on a session that is finished, broken or not started")
        self._broken = True
        reply = self._receive(data)
        self._broken = False
        return reply

    def take_sendable(self) -> list[bytes]:
        """Ids to push to the peer now (each returned once).

        Includes decoded sketch results before the peer confirms them: they are ours and
        the peer almost surely lacks them, and a rare unconfirmed one costs only a
        duplicate the peer ignores. `have_ids` holds only confirmed ones.
        """
        out, self._sendable = self._sendable, []
        return out

    def expects(self, ts: int, item_id: bytes) -> bool:
        """Whether the peer told us it will send this item."""
        if item_id in self.need_ids:
            return True
        if self.need_keys and self._multiplier is not None and sketch_key(item_id, self._multiplier) in self.need_keys:
            return True
        if self.need_ranges:
            key = item_key(ts, item_id)
            for lower, upper, _count, excluded in self.need_ranges:
                if lower <= key < upper and item_id not in excluded:
                    return True
        return False

    # --- the exchange -------------------------------------------------------------------

    def _send(self, message: Message) -> bytes:
        data = encode_message(message)
        if len(data) > self.max_message_bytes:
            raise LocalProtocolError("a reply outgrew its budget")
        self.stats.messages_sent += 1
        self.stats.bytes_sent += len(data)
        return data

    def _receive(self, data: bytes) -> bytes | None:
        self.stats.messages_received += 1
        self.stats.bytes_received += len(data)
        if self.stats.messages_received > self.max_rounds:
            raise RoundLimitExceeded(f"the peer kept reconciling past {self.max_rounds} rounds")
        first = self._multiplier is None
        message = decode_message(data, first=first)
        if first:
            assert message.salt is not None
            self.salt = message.salt
            self._multiplier = salt_multiplier(message.salt)
        spans = message.spans()
        if len(spans) * DEFER_COST + _HEADER_SLACK > self.max_message_bytes:
            raise UnexpectedRange("more ranges than an answer within this session's message size can cover")
        reply = _Reply(len(spans), self.max_message_bytes, self._max_ranges)
        sent = self._sent
        at = 0
        for lower, upper, payload in spans:
            while sent[at].upper <= lower:
                at += 1
            if isinstance(payload, Skip):
                scan = at
                while scan < len(sent) and sent[scan].lower < upper:
                    self._on_skip(sent[scan], lower, upper)
                    scan += 1
                reply.pending -= 1
                reply.add(_Sent(lower, upper, _Kind.TERMINAL, _SKIP))
                continue
            mine = sent[at]
            if not (mine.lower <= lower and upper <= mine.upper):
                raise UnexpectedRange("a range crosses the bounds we sent")
            self._check_allowed(mine, payload, exact=mine.lower == lower and mine.upper == upper)
            if mine.kind is _Kind.RESULT:
                mine.tentative = None
            reply.pending -= 1
            for entry in self._answer(mine, lower, upper, payload, reply):
                reply.add(entry)
            if not payload.TERMINAL:
                reply.progressed = True
        for mine in sent:
            if mine.kind is _Kind.RESULT and mine.confirmed and mine.tentative is not None:
                ours, theirs = mine.tentative
                self._commit_have(ours)
                self.need_keys.update(theirs)
        self._sent = reply.entries
        if all(payload.TERMINAL for *_, payload in spans):
            self.done = True
            return None
        out = self._send(Message(tuple(Range(entry.upper, entry.payload) for entry in reply.entries)))
        if all(entry.payload.TERMINAL for entry in reply.entries):
            self.done = True
        return out

    def _on_skip(self, mine: _Sent, lower: bytes, upper: bytes) -> None:
        if mine.kind in (_Kind.IDLIST, _Kind.SKETCH):
            raise UnexpectedRange("a Skip where an answer was due")
        if mine.kind is _Kind.RESULT:
            if not (lower <= mine.lower and mine.upper <= upper):
                raise UnexpectedRange("a sketch result confirmed only in part")
            mine.confirmed = True

    def _check_allowed(self, mine: _Sent, payload: Payload, *, exact: bool) -> None:
        allowed = _ALLOWED[mine.kind]
        if isinstance(payload, allowed):
            return
        if exact:
            if mine.kind is _Kind.SUMMARY and isinstance(payload, HaveAll) and mine.count == 0:
                return
            if mine.kind is _Kind.IDLIST and isinstance(payload, IdListReply):
                return
            if mine.kind is _Kind.SKETCH and isinstance(payload, SketchResult | SketchRange):
                return
        raise UnexpectedRange(f"{type(payload).__name__} does not answer what we sent for that range")

    def _answer(self, mine: _Sent, lower: bytes, upper: bytes, payload: Payload, reply: _Reply) -> list[_Sent]:
        skip = [_Sent(lower, upper, _Kind.TERMINAL, _SKIP)]
        if isinstance(payload, Fingerprint):
            return self._answer_summary(lower, upper, payload.count, payload.fingerprint, None, reply)
        if isinstance(payload, Estimate):
            return self._answer_summary(lower, upper, payload.count, payload.fingerprint, payload.ams, reply)
        if isinstance(payload, IdList):
            return self._answer_idlist(lower, upper, payload)
        if isinstance(payload, IdListReply):
            self._accept_idlist_reply(mine, payload)
            return skip
        if isinstance(payload, HaveAll):
            self.need_ranges.append((lower, upper, payload.count, frozenset()))
            return skip
        if isinstance(payload, NeedAll):
            self._commit_have([key[8:] for key in self.index.item_keys(lower, upper)])
            return skip
        if isinstance(payload, SketchRange):
            return self._answer_sketch(mine, lower, upper, payload, reply)
        if isinstance(payload, SketchResult):
            return self._verify_result(mine, lower, upper, payload, reply)
        raise LocalProtocolError(f"no answer for {type(payload).__name__}")

    # --- answers ----------------------------------------------------------------------

    def _estimate(self, lower: bytes, upper: bytes, count: int, total: int) -> Estimate:
        _count, populations = self.index.population_counts(lower, upper)
        return Estimate(count, fingerprint(total, count), encode_ams(ams_residues(count, populations)))

    def _summary(self, lower: bytes, upper: bytes, reply: _Reply) -> _Sent:
        """Our Fingerprint (or Estimate, for big ranges when it fits) of a range.

        Also the answer that *defers* a range: the peer compares it with its own and
        takes the range up again.
        """
        count, total = self.index.count_and_sum(lower, upper)
        payload: Payload = Fingerprint(count, fingerprint(total, count))
        if count >= ESTIMATE_MIN_ITEMS:
            estimate = self._estimate(lower, upper, count, total)
            if reply.fits(payload_size(estimate)):
                payload = estimate
        return _Sent(lower, upper, _Kind.SUMMARY, payload, count=count)

    def _split(self, lower: bytes, upper: bytes, reply: _Reply) -> list[_Sent]:
        """Classic Negentropy: sub-ranges of nearly equal count, each with its summary.

        A small range is listed instead, which ends it in one more message. Sub-ranges
        carry estimators when big and when they fit, fingerprints otherwise; if even that
        does not fit, the range is deferred (never the first one of a message: a split
        with fingerprints is at most ~1 KiB, always within its room).
        """
        keys = self.index.item_keys(lower, upper)
        if 0 < len(keys) <= IDLIST_ITEMS:
            ids = [key[8:] for key in keys]
            listed = _Sent(lower, upper, _Kind.IDLIST, IdList(b"".join(ids)), ids=ids)
            if reply.must_progress or reply.fits(payload_size(listed.payload)):
                return [listed]
            return [self._summary(lower, upper, reply)]
        bounds = self.index.split_bounds(lower, upper, SPLIT_PARTS)
        edges = [lower, *bounds, upper]
        parts = [self._summary(low, high, reply) for low, high in zip(edges, edges[1:], strict=False)]
        if not reply.fits(sum(payload_size(part.payload) for part in parts), len(parts)):
            for part in parts:
                if isinstance(part.payload, Estimate):
                    part.payload = Fingerprint(part.payload.count, part.payload.fingerprint)
            if not reply.must_progress and not reply.fits(sum(payload_size(p.payload) for p in parts), len(parts)):
                return [self._summary(lower, upper, reply)]
        return parts

    def _answer_summary(
        self, lower: bytes, upper: bytes, their_count: int, their_fp: bytes, their_ams: bytes | None, reply: _Reply
    ) -> list[_Sent]:
        count, total = self.index.count_and_sum(lower, upper)
        if count == their_count and fingerprint(total, count) == their_fp:
            return [_Sent(lower, upper, _Kind.TERMINAL, _SKIP)]
        if count == 0:
            if their_count == 0:
                raise UnexpectedRange("an empty range with the wrong fingerprint")
            self.need_ranges.append((lower, upper, their_count, frozenset()))
            return [_Sent(lower, upper, _Kind.TERMINAL, NeedAll())]
        if their_count == 0:
            self._commit_have([key[8:] for key in self.index.item_keys(lower, upper)])
            return [_Sent(lower, upper, _Kind.TERMINAL, HaveAll(count))]
        if count <= IDLIST_ITEMS:
            return self._split(lower, upper, reply)  # lists the ids (or defers if they do not fit)
        if their_count <= IDLIST_ITEMS:
            # The peer's list is the cheaper one: echo our summary and it will list its ids.
            return [_Sent(lower, upper, _Kind.SUMMARY, Fingerprint(count, fingerprint(total, count)), count=count)]
        if their_ams is not None:
            _count, populations = self.index.population_counts(lower, upper)
            energy = difference_energy(decode_ams(their_ams), ams_residues(count, populations))
            first = table_for_cells(cells_for_estimate(energy, abs(count - their_count), count + their_count))
            size = cells_of(first) * 8 + 64
            if cells_of(first) <= MAX_SKETCH_CELLS:
                if reply.fits(size):
                    return [self._sketch(lower, upper, first, self._snapshot(lower, upper))]
                if not reply.must_progress and size <= self.max_message_bytes // 2:
                    return [self._summary(lower, upper, reply)]  # it will fit once fewer ranges are open
        return self._split(lower, upper, reply)

    def _snapshot(self, lower: bytes, upper: bytes) -> _Snapshot:
        assert self._multiplier is not None
        keys = self.index.item_keys(lower, upper)
        _count, total = self.index.count_and_sum(lower, upper)
        return _Snapshot(keys, sketch_values(keys, self._multiplier), total)

    def _sketch(self, lower: bytes, upper: bytes, first: int, snapshot: _Snapshot) -> _Sent:
        sketch = Sketch.build(snapshot.values, first)
        self.stats.sketches_sent += 1
        payload = SketchRange(len(snapshot.keys), sketch.to_bytes())
        return _Sent(lower, upper, _Kind.SKETCH, payload, snapshot=snapshot)

    def _answer_idlist(self, lower: bytes, upper: bytes, payload: IdList) -> list[_Sent]:
        theirs = payload.id_list()
        ours = [key[8:] for key in self.index.item_keys(lower, upper)]
        our_set = set(ours)
        their_set = set(theirs)
        bitmap = bytearray((len(theirs) + 7) // 8)
        for position, item_id in enumerate(theirs):
            if item_id not in our_set:
                bitmap[position >> 3] |= 1 << (position & 7)
                self.need_ids.add(item_id)
        extra = [item_id for item_id in ours if item_id not in their_set]
        self._commit_have(extra)
        return [_Sent(lower, upper, _Kind.TERMINAL, IdListReply(len(extra), bytes(bitmap)))]

    def _accept_idlist_reply(self, mine: _Sent, payload: IdListReply) -> None:
        ids = mine.ids or []
        if len(payload.bitmap) != (len(ids) + 7) // 8:
            raise UnexpectedRange("the bitmap does not match the id list we sent")
        if len(ids) % 8 and payload.bitmap[-1] >> (len(ids) % 8):
            raise UnexpectedRange("the bitmap marks ids we never sent")
        bitmap = payload.bitmap
        self._commit_have([item_id for at, item_id in enumerate(ids) if bitmap[at >> 3] >> (at & 7) & 1])
        if payload.extra:
            self.need_ranges.append((mine.lower, mine.upper, payload.extra, frozenset(ids)))

    def _answer_sketch(
        self, mine: _Sent, lower: bytes, upper: bytes, payload: SketchRange, reply: _Reply
    ) -> list[_Sent]:
        theirs = Sketch.from_bytes(payload.cells)
        snapshot = self._snapshot(lower, upper)
        found = peel(theirs.xor(Sketch.build(snapshot.values, theirs.first)))
        decoded = None if found is None else _classify(found, snapshot, payload.count)
        if decoded is not None:
            mine_at, their_keys = decoded
            our_ids = [snapshot.keys[i][8:] for i in mine_at]
            common_sum = (snapshot.total - sum(int.from_bytes(x, "little") for x in our_ids)) % _MOD
            result = SketchResult(
                pack_keys(their_keys),
                pack_keys([snapshot.values[i] >> 16 for i in mine_at]),
                len(snapshot.keys) - len(mine_at),
                common_sum.to_bytes(32, "little"),
            )
            if not reply.fits(payload_size(result)):
                return self._split(lower, upper, reply) if reply.must_progress else [self._summary(lower, upper, reply)]
            self._offer(our_ids)
            return [_Sent(lower, upper, _Kind.RESULT, result, tentative=(our_ids, their_keys))]
        self.stats.sketch_failures += 1
        if mine.kind is not _Kind.SKETCH:
            first = table_for_cells(2 * cells_of(theirs.first))
            if cells_of(first) <= MAX_SKETCH_CELLS and reply.fits(cells_of(first) * 8 + 64):
                return [self._sketch(lower, upper, first, snapshot)]
        return self._split(lower, upper, reply)

    def _verify_result(
        self, mine: _Sent, lower: bytes, upper: bytes, payload: SketchResult, reply: _Reply
    ) -> list[_Sent]:
        snapshot = mine.snapshot
        assert snapshot is not None
        need = payload.need_keys()
        wanted = set(need)
        offered = set(payload.have_keys())
        found: dict[int, int] = {}
        ok = True
        for position, value in enumerate(snapshot.values):
            key = value >> 16
            if key in wanted:
                if key in found:
                    ok = False
                    break
                found[key] = position
            elif key in offered:
                ok = False
                break
        if ok and len(found) == len(need) and len(snapshot.keys) - len(need) == payload.common_count:
            their_ids = [snapshot.keys[position][8:] for position in found.values()]
            common = (snapshot.total - sum(int.from_bytes(x, "little") for x in their_ids)) % _MOD
            if common.to_bytes(32, "little") == payload.common_sum:
                self._commit_have(their_ids)
                self.need_keys.update(offered)
                return [_Sent(lower, upper, _Kind.TERMINAL, _SKIP)]
        self.stats.sketch_failures += 1
        return self._split(lower, upper, reply)

    # --- results ----------------------------------------------------------------------

    def _offer(self, ids: list[bytes]) -> None:
        for item_id in ids:
            if item_id not in self._offered:
                self._offered.add(item_id)
                self._sendable.append(item_id)

    def _commit_have(self, ids: list[bytes]) -> None:
        self.have_ids.update(ids)
        self._offer(ids)


def _classify(found: set[int], snapshot: _Snapshot, their_count: int) -> tuple[list[int], list[int]] | None:
    """Split peeled keys into (positions of our items, keys of theirs), or None if inconsistent."""
    mine_at = [position for position, value in enumerate(snapshot.values) if value >> 16 in found]
    mine_keys = {snapshot.values[position] >> 16 for position in mine_at}
    if len(mine_keys) != len(mine_at):
        return None
    their_keys = [key for key in found if key not in mine_keys]
    if len(their_keys) - len(mine_at) != their_count - len(snapshot.keys):
        return None
    return mine_at, their_keys
