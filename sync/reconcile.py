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
  lying decoder can never produce a wrong "in sync". The first sketch of a range uses
  the *plain* layout (keys are id bytes; the index keeps whole-set tables current, so
  sketching everything costs O(cells), not O(items)); if it does not peel or its result
  does not verify, the range is sketched again, twice the size, in the *salted* layout
  (keys hashed under the session salt, which no crafted id can defeat), then split.

The common case is therefore two round trips: Estimate -> Sketch -> SketchResult ->
Skip, and each side can push its missing envelopes right after its second message (see
`take_sendable`). In-sync sets end after one: Estimate -> Skip.

Results: `have_ids` (full ids we hold that the peer lacks) is always exact once `done`.
What we lack is known as full ids (`need_ids`) when the peer listed them, as sketch
keys after a sketch (`need_keys` for plain ones, `need_salted_keys` after a salted
retry), or as a range and a count when the peer sends a whole range; `need_count` is
exact and `expects` tells whether an incoming envelope is one of them. Committed results
survive a later error, so an adapter can still send them.

Everything a peer controls is bounded: message size, ranges per message, id list and
sketch sizes (`sync.reconcile_wire`), and rounds (`max_rounds`). A message that is not a
valid answer to what we sent raises `UnexpectedRange`; a session that runs too long
raises `RoundLimitExceeded`.
"""

from __future__ import annotations

from kith.identity.errors import LocalProtocolError
from kith.sync.reconcile_index import INFINITY, ItemIndex, fingerprint, item_key
from kith.sync.reconcile_ranges import (
    DEFER_COST,
    HEADER_SLACK,
    SKIP,
    START_IDLIST_ITEMS,
    Kind,
    RangeAnswers,
    ReconcileStats,
    Reply,
    Sent,
)
from kith.sync.reconcile_sketch import plain_key, salt_multiplier, sketch_key
from kith.sync.reconcile_wire import (
    MAX_MESSAGE_BYTES,
    MAX_RANGES,
    SALT_BYTES,
    Fingerprint,
    IdList,
    Message,
    Range,
    RoundLimitExceeded,
    Skip,
    UnexpectedRange,
    decode_message,
    encode_message,
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


class ReconcileSession(RangeAnswers):
    """One reconciliation of one topic with one peer; see the module docstring."""

    def __init__(
        self,
        index: ItemIndex,
        *,
        initiator: bool,
        salt: bytes | None = None,
        max_rounds: int = DEFAULT_MAX_ROUNDS,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        estimates: bool = True,
    ) -> None:
        """``estimates=False`` never sends an Estimate, so the peer never sketches: plain
        range-based reconciliation as in Negentropy, kept to measure what sketches save."""
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
        self.estimates = estimates
        self.done = False
        self.have_ids: set[bytes] = set()
        self.need_ids: set[bytes] = set()
        self.need_keys: set[int] = set()
        self.need_salted_keys: set[int] = set()
        self.need_ranges: list[tuple[bytes, bytes, int, frozenset[bytes]]] = []
        self.stats = ReconcileStats()
        self._multiplier = salt_multiplier(salt) if salt is not None else None
        self._max_ranges = min(MAX_RANGES, max_message_bytes // (2 * DEFER_COST))
        self._sent: list[Sent] = [] if initiator else [Sent(b"", INFINITY, Kind.START, SKIP)]
        self._sendable: list[bytes] = []
        self._offered: set[bytes] = set()
        self._started = False
        self._broken = False

    # --- public API -------------------------------------------------------------------

    @property
    def need_count(self) -> int:
        """How many items the peer will send us (exact once `done`)."""
        ranged = sum(count for *_, count, _ex in self.need_ranges)
        return len(self.need_ids) + len(self.need_keys) + len(self.need_salted_keys) + ranged

    @property
    def rounds(self) -> int:
        return self.stats.rounds

    def start(self) -> bytes:
        """The initiator's first message: one range over everything."""
        if not self.initiator or self._started:
            raise LocalProtocolError("only the initiator starts, once")
        self._started = True
        count, total = self.index.count_and_sum()
        if count == 0:
            entry = Sent(b"", INFINITY, Kind.SUMMARY, Fingerprint(0, fingerprint(0, 0)))
        elif count <= START_IDLIST_ITEMS:
            ids = [key[8:] for key in self.index.item_keys()]
            entry = Sent(b"", INFINITY, Kind.IDLIST, IdList(b"".join(ids)), ids=ids)
        elif not self.estimates:
            entry = Sent(b"", INFINITY, Kind.SUMMARY, Fingerprint(count, fingerprint(total, count)), count=count)
        else:
            entry = Sent(b"", INFINITY, Kind.SUMMARY, self._estimate(b"", INFINITY, count, total), count=count)
        self._sent = [entry]
        return self._send(Message((Range(INFINITY, entry.payload),), salt=self.salt))

    def receive(self, data: bytes) -> bytes | None:
        """Process the peer's message; the reply to send, or None when the session is over.

        Raises a `RemoteProtocolError` subclass for anything the peer got wrong, including
        a message after the session ended; the session is then unusable (committed results
        stay readable). Feeding a session that already raised, or an initiator that has not
        started, is a `LocalProtocolError`.
        """
        if self._broken or (self.initiator and not self._started):
            raise LocalProtocolError("receive() on a session that is broken or not started")
        if self.done:
            raise UnexpectedRange("a reconciliation message after the session ended")
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
        if self.need_keys and plain_key(item_id) in self.need_keys:
            return True
        salted = self.need_salted_keys
        if salted and self._multiplier is not None and sketch_key(item_id, self._multiplier) in salted:
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
            if message.salt is None:  # decode_message(first=True) requires it
                raise LocalProtocolError("the opening message was decoded without its salt")
            self.salt = message.salt
            self._multiplier = salt_multiplier(message.salt)
        spans = message.spans()
        if len(spans) * DEFER_COST + HEADER_SLACK > self.max_message_bytes:
            raise UnexpectedRange("more ranges than an answer within this session's message size can cover")
        reply = Reply(len(spans), self.max_message_bytes, self._max_ranges)
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
                reply.add(Sent(lower, upper, Kind.TERMINAL, SKIP))
                continue
            mine = sent[at]
            if not (mine.lower <= lower and upper <= mine.upper):
                raise UnexpectedRange("a range crosses the bounds we sent")
            self._check_allowed(mine, payload, exact=mine.lower == lower and mine.upper == upper)
            if mine.kind is Kind.RESULT:
                mine.tentative = None
            reply.pending -= 1
            for entry in self._answer(mine, lower, upper, payload, reply):
                reply.add(entry)
            if not payload.TERMINAL:
                reply.progressed = True
        for mine in sent:
            if mine.kind is Kind.RESULT and mine.confirmed and mine.tentative is not None:
                ours, theirs, salted = mine.tentative
                self._commit_have(ours)
                (self.need_salted_keys if salted else self.need_keys).update(theirs)
        self._sent = reply.entries
        if all(payload.TERMINAL for *_, payload in spans):
            self.done = True
            return None
        out = self._send(Message(tuple(Range(entry.upper, entry.payload) for entry in reply.entries)))
        if all(entry.payload.TERMINAL for entry in reply.entries):
            self.done = True
        return out
