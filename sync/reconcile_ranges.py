"""How one range of the peer's message is answered (docs/RECONCILE.md, section 5).

`RangeAnswers` holds the per-range rules of `sync.reconcile.ReconcileSession`: compare a
summary, list, sketch, decode, verify, split, and *defer* when a reply runs out of room.
Each answer is a list of `Sent` records: the payloads for the reply, with what this side
must remember to check the peer's next answer to them (the ids it listed, the items it
sketched, a decoded result that is tentative until the peer confirms it).

Budgets (`Reply`): every unanswered incoming range keeps `DEFER_COST` bytes and one range
in reserve, so a range whose best answer no longer fits can always be deferred, answered
with our own summary of it and taken up again next round. The first range of a message
that needs real work is never deferred (it gets a compact answer: an id list or a split
with fingerprints, about 1 KiB), so every message makes progress.
"""

from __future__ import annotations

import enum
from array import array
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from kith.identity.errors import LocalProtocolError
from kith.sync.reconcile_index import ItemIndex, fingerprint
from kith.sync.reconcile_sketch import (
    Sketch,
    ams_residues,
    cells_for_estimate,
    decode_ams,
    difference_energy,
    encode_ams,
    peel,
    plain_values,
    sketch_values,
    table_for_cells,
)
from kith.sync.reconcile_tables import build_cells, cells_of
from kith.sync.reconcile_wire import (
    MAX_RANGES,
    MAX_SKETCH_CELLS,
    Estimate,
    Fingerprint,
    HaveAll,
    IdList,
    IdListReply,
    NeedAll,
    Payload,
    SketchRange,
    SketchResult,
    Skip,
    UnexpectedRange,
    pack_keys,
    payload_size,
)

IDLIST_ITEMS = 32
"""A range with at most this many of our items is answered with our id list (<= 1 KiB)."""
START_IDLIST_ITEMS = 16
"""The initiator lists a set this small outright: one round trip, whatever the difference."""
ESTIMATE_MIN_ITEMS = 256
"""Sub-ranges at least this big carry an estimator, so the next answer can be a sketch."""
SPLIT_PARTS = 16
DEFER_COST = 70
"""Reserved per unanswered range: a Fingerprint answer always fits (bound + count + fingerprint)."""
HEADER_SLACK = 32
MOD = 1 << 256


@dataclass(slots=True)
class ReconcileStats:
    """What one side of a session sent and received."""

    messages_sent: int = 0
    messages_received: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    sketches_sent: int = 0
    sketch_failures: int = 0
    """Sketches we could not peel, and decoded results that did not verify."""

    @property
    def rounds(self) -> int:
        """Round trips this side took part in (each of its messages expects an answer, or ends it)."""
        return max(self.messages_sent, self.messages_received)


class Kind(enum.Enum):
    START = "start"
    TERMINAL = "terminal"
    SUMMARY = "summary"
    IDLIST = "idlist"
    SKETCH = "sketch"
    RESULT = "result"


@dataclass(slots=True)
class Snapshot:
    """Our items of a range, in one sketch layout, when we sketched (or decoded) it.

    Either the items are listed (``keys`` and their cell ``values``), or, for a plain
    sketch of a range that holds every item of the index, they are the index itself:
    cells come from its kept tables and keys are looked up in its plain-key map, so
    nothing walks the items. The verification of a result uses the count and sum taken
    here; an item added to the index since can only make it fail (and fall back).
    """

    salted: bool
    count: int
    total: int
    keys: list[bytes] | None = None
    values: array[int] | None = None
    """Cell values of ``keys`` (the sketch key is ``value >> 16``)."""
    index: ItemIndex | None = None
    first: int = 0
    """The first sub-table size of the sketch we sent from this snapshot (0: none)."""
    _by_key: dict[int, list[bytes]] | None = None

    def cells(self, first: int) -> list[int]:
        if self.index is not None:
            return self.index.plain_table(first)
        if self.values is None:
            raise LocalProtocolError("a range without an index has no values")
        return build_cells(self.values, first)

    def lookup(self, wanted: Collection[int]) -> Mapping[int, Sequence[bytes]]:
        """Our item keys by sketch key, for the wanted keys that some item of ours has."""
        if self.index is not None:
            return self.index.items_with_plain_keys(wanted)
        if self._by_key is None:
            if self.keys is None or self.values is None:
                raise LocalProtocolError("a range without an index has no keys")
            by_key: dict[int, list[bytes]] = {}
            for item, value in zip(self.keys, self.values, strict=True):
                by_key.setdefault(value >> 16, []).append(item)
            self._by_key = by_key
        return {key: self._by_key[key] for key in wanted if key in self._by_key}


@dataclass(slots=True)
class Sent:
    """One range of the last message we sent (or will send), with what we need to check its answer."""

    lower: bytes
    upper: bytes
    kind: Kind
    payload: Payload
    count: int = 0
    ids: list[bytes] | None = None
    snapshot: Snapshot | None = None
    tentative: tuple[list[bytes], list[int], bool] | None = None
    """A decoded result awaiting confirmation: our ids, the peer's keys, and whether salted."""
    confirmed: bool = False


SKIP = Skip()
ALLOWED: dict[Kind, tuple[type[Payload], ...]] = {
    Kind.START: (Fingerprint, Estimate, IdList),
    Kind.TERMINAL: (),
    Kind.SUMMARY: (Fingerprint, Estimate, IdList, SketchRange, NeedAll),
    Kind.IDLIST: (Fingerprint, Estimate),
    Kind.SKETCH: (Fingerprint, Estimate, IdList, NeedAll),
    Kind.RESULT: (Fingerprint, Estimate, IdList, NeedAll),
}
"""Payloads that may answer part of a range we sent, by what we sent (`_check_allowed` adds
the answers only for exactly that range, among them a salted Sketch answering our Sketch
or our SketchResult: the retry)."""


class Reply:
    """The answer being built: entries in order, and a byte and range budget.

    Every unanswered incoming range keeps `DEFER_COST` bytes and one range in reserve, so
    a range whose best answer no longer fits can always be *deferred*: answered with our
    own summary of it, to be taken up in a later round. The first range that needs real
    work is never deferred (it gets a compact answer instead), so every message makes
    progress and two sides cannot bounce the same range back and forth forever.
    """

    def __init__(self, pending: int, limit: int, max_ranges: int) -> None:
        self.entries: list[Sent] = []
        self.size = HEADER_SLACK
        self.pending = pending
        self.limit = limit
        self.max_ranges = max_ranges
        self.progressed = False

    def room(self) -> int:
        return self.limit - self.size - self.pending * DEFER_COST

    def fits(self, size: int, ranges: int = 1) -> bool:
        return size <= self.room() and ranges <= self.max_ranges - len(self.entries) - self.pending

    def ranges_possible(self) -> int:
        """Ranges the current answer may use without breaking the protocol's hard limit."""
        return MAX_RANGES - len(self.entries) - self.pending

    @property
    def must_progress(self) -> bool:
        return not self.progressed

    def add(self, entry: Sent) -> None:
        if isinstance(entry.payload, Skip) and self.entries and isinstance(self.entries[-1].payload, Skip):
            self.entries[-1].upper = entry.upper
            return
        self.entries.append(entry)
        self.size += payload_size(entry.payload)


class RangeAnswers:
    """The answering half of a session; `ReconcileSession` adds the message loop and the API."""

    index: ItemIndex
    stats: ReconcileStats
    max_message_bytes: int
    estimates: bool
    have_ids: set[bytes]
    need_ids: set[bytes]
    need_keys: set[int]
    need_salted_keys: set[int]
    need_ranges: list[tuple[bytes, bytes, int, frozenset[bytes]]]
    _multiplier: int | None
    _sendable: list[bytes]
    _offered: set[bytes]

    def _on_skip(self, mine: Sent, lower: bytes, upper: bytes) -> None:
        if mine.kind in (Kind.IDLIST, Kind.SKETCH):
            raise UnexpectedRange("a Skip where an answer was due")
        if mine.kind is Kind.RESULT:
            if not (lower <= mine.lower and mine.upper <= upper):
                raise UnexpectedRange("a sketch result confirmed only in part")
            mine.confirmed = True

    def _check_allowed(self, mine: Sent, payload: Payload, *, exact: bool) -> None:
        allowed = ALLOWED[mine.kind]
        if isinstance(payload, allowed):
            return
        if exact:
            if mine.kind is Kind.SUMMARY and isinstance(payload, HaveAll) and mine.count == 0:
                return
            if mine.kind is Kind.IDLIST and isinstance(payload, IdListReply):
                return
            if mine.kind is Kind.SKETCH and isinstance(payload, SketchResult | SketchRange):
                return
            if mine.kind is Kind.RESULT and isinstance(payload, SketchRange):
                return
        raise UnexpectedRange(f"{type(payload).__name__} does not answer what we sent for that range")

    def _answer(self, mine: Sent, lower: bytes, upper: bytes, payload: Payload, reply: Reply) -> list[Sent]:
        skip = [Sent(lower, upper, Kind.TERMINAL, SKIP)]
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

    def _summary(self, lower: bytes, upper: bytes, reply: Reply) -> Sent:
        """Our Fingerprint (or Estimate, for big ranges when it fits) of a range.

        Also the answer that *defers* a range: the peer compares it with its own and
        takes the range up again.
        """
        count, total = self.index.count_and_sum(lower, upper)
        payload: Payload = Fingerprint(count, fingerprint(total, count))
        if count >= ESTIMATE_MIN_ITEMS and self.estimates:
            estimate = self._estimate(lower, upper, count, total)
            if reply.fits(payload_size(estimate)):
                payload = estimate
        return Sent(lower, upper, Kind.SUMMARY, payload, count=count)

    def _split(self, lower: bytes, upper: bytes, reply: Reply) -> list[Sent]:
        """Classic Negentropy: sub-ranges of nearly equal count, each with its summary.

        A small range is listed instead, which ends it in one more message. Sub-ranges
        carry estimators when big and when they fit, fingerprints otherwise; if even that
        does not fit, the range is deferred (never the first one of a message: a split
        with fingerprints is at most ~1 KiB, always within its room).
        """
        if 0 < self.index.count(lower, upper) <= IDLIST_ITEMS:
            ids = [key[8:] for key in self.index.item_keys(lower, upper)]
            listed = Sent(lower, upper, Kind.IDLIST, IdList(b"".join(ids)), ids=ids)
            if reply.must_progress or reply.fits(payload_size(listed.payload)):
                return [listed]
            return [self._summary(lower, upper, reply)]
        # Our own range cap is soft for the one answer that must progress, never the protocol's.
        most = min(SPLIT_PARTS, reply.ranges_possible())
        if most < 2:
            return [self._summary(lower, upper, reply)]
        bounds = self.index.split_bounds(lower, upper, most)
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
        self, lower: bytes, upper: bytes, their_count: int, their_fp: bytes, their_ams: bytes | None, reply: Reply
    ) -> list[Sent]:
        count, total = self.index.count_and_sum(lower, upper)
        if count == their_count and fingerprint(total, count) == their_fp:
            return [Sent(lower, upper, Kind.TERMINAL, SKIP)]
        if count == 0:
            if their_count == 0:
                raise UnexpectedRange("an empty range with the wrong fingerprint")
            self.need_ranges.append((lower, upper, their_count, frozenset()))
            return [Sent(lower, upper, Kind.TERMINAL, NeedAll())]
        if their_count == 0:
            self._commit_have([key[8:] for key in self.index.item_keys(lower, upper)])
            return [Sent(lower, upper, Kind.TERMINAL, HaveAll(count))]
        if count <= IDLIST_ITEMS:
            return self._split(lower, upper, reply)  # lists the ids (or defers if they do not fit)
        if their_count <= IDLIST_ITEMS:
            # The peer's list is the cheaper one: echo our summary and it will list its ids.
            return [Sent(lower, upper, Kind.SUMMARY, Fingerprint(count, fingerprint(total, count)), count=count)]
        if their_ams is not None:
            _count, populations = self.index.population_counts(lower, upper)
            energy = difference_energy(decode_ams(their_ams), ams_residues(count, populations))
            first = table_for_cells(cells_for_estimate(energy, abs(count - their_count), count + their_count))
            size = cells_of(first) * 8 + 64
            if cells_of(first) <= MAX_SKETCH_CELLS:
                if reply.fits(size):
                    return [self._sketch(lower, upper, first, self._snapshot(lower, upper, salted=False))]
                if not reply.must_progress and size <= self.max_message_bytes // 2:
                    return [self._summary(lower, upper, reply)]  # it will fit once fewer ranges are open
        return self._split(lower, upper, reply)

    def _snapshot(self, lower: bytes, upper: bytes, *, salted: bool) -> Snapshot:
        count, total = self.index.count_and_sum(lower, upper)
        if not salted and count == len(self.index):
            return Snapshot(False, count, total, index=self.index)
        keys = self.index.item_keys(lower, upper)
        if salted:
            if self._multiplier is None:
                raise LocalProtocolError("a salted snapshot before the salt was known")
            return Snapshot(True, count, total, keys, sketch_values(keys, self._multiplier))
        return Snapshot(False, count, total, keys, plain_values(keys))

    def _sketch(self, lower: bytes, upper: bytes, first: int, snapshot: Snapshot) -> Sent:
        sketch = Sketch(first, snapshot.cells(first))
        snapshot.first = first
        self.stats.sketches_sent += 1
        payload = SketchRange(snapshot.count, sketch.to_bytes())
        return Sent(lower, upper, Kind.SKETCH, payload, snapshot=snapshot)

    def _answer_idlist(self, lower: bytes, upper: bytes, payload: IdList) -> list[Sent]:
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
        return [Sent(lower, upper, Kind.TERMINAL, IdListReply(len(extra), bytes(bitmap)))]

    def _accept_idlist_reply(self, mine: Sent, payload: IdListReply) -> None:
        ids = mine.ids or []
        if len(payload.bitmap) != (len(ids) + 7) // 8:
            raise UnexpectedRange("the bitmap does not match the id list we sent")
        if len(ids) % 8 and payload.bitmap[-1] >> (len(ids) % 8):
            raise UnexpectedRange("the bitmap marks ids we never sent")
        bitmap = payload.bitmap
        self._commit_have([item_id for at, item_id in enumerate(ids) if bitmap[at >> 3] >> (at & 7) & 1])
        if payload.extra:
            self.need_ranges.append((mine.lower, mine.upper, payload.extra, frozenset(ids)))

    def _answer_sketch(self, mine: Sent, lower: bytes, upper: bytes, payload: SketchRange, reply: Reply) -> list[Sent]:
        """Decode the peer's sketch: plain when it answers our summary, salted when it is the retry."""
        salted = mine.kind in (Kind.SKETCH, Kind.RESULT)
        theirs = Sketch.from_bytes(payload.cells)
        snapshot = self._snapshot(lower, upper, salted=salted)
        found = peel(theirs.xor(Sketch(theirs.first, snapshot.cells(theirs.first))))
        decoded = None if found is None else classify(found, snapshot, payload.count)
        if decoded is not None:
            our_ids, our_keys, their_keys = decoded
            common_sum = (snapshot.total - sum(int.from_bytes(x, "little") for x in our_ids)) % MOD
            common = snapshot.count - len(our_ids)
            result = SketchResult(pack_keys(their_keys), pack_keys(our_keys), common, common_sum.to_bytes(32, "little"))
            if not reply.fits(payload_size(result)):
                return self._split(lower, upper, reply) if reply.must_progress else [self._summary(lower, upper, reply)]
            self._offer(our_ids)
            return [Sent(lower, upper, Kind.RESULT, result, tentative=(our_ids, their_keys, snapshot.salted))]
        self.stats.sketch_failures += 1
        if not snapshot.salted:
            retry = self._salted_retry(lower, upper, theirs.first, reply)
            if retry is not None:
                return [retry]
        return self._split(lower, upper, reply)

    def _salted_retry(self, lower: bytes, upper: bytes, failed_first: int, reply: Reply) -> Sent | None:
        """A salted sketch of our items, twice the cells of a plain one that failed, if it fits."""
        first = table_for_cells(2 * cells_of(failed_first))
        if cells_of(first) <= MAX_SKETCH_CELLS and reply.fits(cells_of(first) * 8 + 64):
            return self._sketch(lower, upper, first, self._snapshot(lower, upper, salted=True))
        return None

    def _verify_result(self, mine: Sent, lower: bytes, upper: bytes, payload: SketchResult, reply: Reply) -> list[Sent]:
        """Check the peer's decoding of our sketch against the items we sketched."""
        snapshot = mine.snapshot
        if snapshot is None:
            raise LocalProtocolError("a sketch result for a range we sent no sketch of")
        need = payload.need_keys()
        offered = payload.have_keys()
        their_ids: list[bytes] = []
        ok = snapshot.count - len(need) == payload.common_count
        if ok:
            found = snapshot.lookup({*need, *offered})
            ok = all(len(found.get(key, ())) == 1 for key in need) and not any(key in found for key in offered)
            their_ids = [found[key][0][8:] for key in need] if ok else []
        if ok:
            common = (snapshot.total - sum(int.from_bytes(x, "little") for x in their_ids)) % MOD
            if common.to_bytes(32, "little") == payload.common_sum:
                self._commit_have(their_ids)
                (self.need_salted_keys if snapshot.salted else self.need_keys).update(offered)
                return [Sent(lower, upper, Kind.TERMINAL, SKIP)]
        self.stats.sketch_failures += 1
        if not snapshot.salted:
            retry = self._salted_retry(lower, upper, snapshot.first, reply)
            if retry is not None:
                return [retry]
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


def classify(found: set[int], snapshot: Snapshot, their_count: int) -> tuple[list[bytes], list[int], list[int]] | None:
    """Split peeled keys into (our ids, our keys, the peer's keys), or None if inconsistent.

    Inconsistent: two of our items share a peeled key, or the counts do not add up.
    """
    our_ids: list[bytes] = []
    our_keys: list[int] = []
    their_keys: list[int] = []
    ours = snapshot.lookup(found)
    for key in found:
        matches = ours.get(key, ())
        if len(matches) > 1:
            return None
        if matches:
            our_ids.append(matches[0][8:])
            our_keys.append(key)
        else:
            their_keys.append(key)
    if len(their_keys) - len(our_ids) != their_count - snapshot.count:
        return None
    return our_ids, our_keys, their_keys
