"""The circle state: a deterministic fold of a circle's ops (docs/OPS.md).

Theory of operation
-------------------
A circle's state is a pure function of its op set. The ops are applied one at a time in
**fold order**, ascending ``(lamport, op id)``; each op is checked against the state at
its own position (is the author a member *there*, is the proposal approved *there*, is
there enough confirmed balance *there*) and either applied or rejected. A rejected op is
kept, listed in `rejected` with its reason, and changes nothing else. No clock and no
randomness take part, so two nodes holding the same ops hold byte-identical states
whatever order the ops arrived in: `state_hash` compares them.

**Authority from the causal past.** An author picks an op's position (by picking its
parents), so a position alone never grants authority (docs/OPS.md §2a-2c):

* every author's ops form a chain (``seq``); fold order is chain order, so the fold can
  track, per member, the highest ``seq`` applied (`chains`) and spot forks (`forks`);
* a member's ops count only once their chain has cited the op that admitted them, and an
  op using a role only once their chain has cited the grant of that role ("acked");
* a removal (or demotion) **strikes** every op of its target, made during the membership
  it ends, that the removal had not seen: the target's ops it had seen have
  ``seq <= cut``, and the rest can only have been made concurrently or back-dated.
  Struck ops stay in the fold order with no effect and are listed with the reason;
* only a strictly more senior organizer may remove or demote an organizer, so removals
  cannot strike each other in a cycle.

Striking reaches backwards: the removal sorts after the ops it strikes. The result is
defined as folding left to right: when a removal takes effect, the ops it strikes are
struck and everything from the earliest of them is folded again (`_settle`). The rules
keep what a removal relies on out of its own reach (docs/OPS.md §2c): what it relies on
directly is in its causal past (acknowledgements of grants and admissions are kept even
for struck ops), organizers can only remove less senior ones, and decisions (proposals,
votes) are never struck. Through ops it never saw, a removal's validity can still rest on
an op it strikes (valid with its strikes, invalid without); the left-to-right fold then
picks one answer: each removal is met first without its own strikes, and strikes only if
it is valid there. The fold remembers every
strike (``struck``, not undone by the undo log) so that folding again is cheap; whenever
it rolls back to a position, the removals at or after it become *unconfirmed*, and
applying each again either confirms its strikes or revises them (`_settle`,
`_drop_strikes`), exactly as folding from scratch would.

Ops that join the set at or before a removal that struck something withdraw its strikes
first (`_withdraw_strikes_from`): a fresh fold meets every removal without its own strikes,
and a removal's validity can rest on what it would strike through ops it never saw (an
organizer's role hanging on a handover to someone the target admitted). So the removal is
decided again exactly as a fresh fold decides it, whichever ops arrived first. One kind of
late op is struck on arrival without replaying anything (`_insert_struck`): an op of the
removal's target that it had not seen, which acknowledges nothing and could not change who
is a member or holds a role (not a governing kind, and the circle has no organizer
election its author could end), so the removal decides the same with it or without it:
a removed member's back-dated post costs their former circle nothing.

Ops do not arrive in fold order. The common case, an op that sorts after everything
applied so far, is applied directly (`add`, fast path). An op that sorts earlier ("late
op") needs the state at its position: every mutation goes through `put`, `drop` or
`push`, which append the old value to an **undo log**, and ``_marks[i]`` remembers the
log length before the i-th op of the window. Rolling back to position i pops the log
down to that mark; the late op is applied; the ops after it are applied again. The log
covers the last ``undo_window`` ops (older entries are trimmed, amortised O(1) per op);
an op that sorts before the window forces a full re-fold from the op history, which is
correct but slow, and counted in `full_refolds`.

The tables are plain dicts of immutable records (`kith.sync.kinds.records`). Some indexes
(``roots``, ``replies``, ``open_proposals``, ``open_by_author``) are derived: they are
maintained with undo like the tables but are not part of the canonical state, and
`kith.sync.kinds.canonical` rebuilds them when a snapshot is restored. Iteration order of a
dict is never relied on (undo can reorder keys): whatever must be ordered is sorted.
``struck`` is not undone by the undo log: it records decisions of removals that may sort
after the ops they concern (see above).

Handlers for the op kinds live in `kith.sync.kinds`; this module only orders, dispatches,
records rejections, strikes and undoes.
"""

from __future__ import annotations

import gc
import heapq
import itertools
from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, cast, overload

from kith.identity.crypto import blake2b
from kith.identity.errors import LocalProtocolError, RemoteProtocolError
from kith.sync import limits
from kith.sync.causal import CausalIndex
from kith.sync.kinds import HANDLERS
from kith.sync.kinds.canonical import canonical_state, encode_state, restore_tables
from kith.sync.kinds.common import (
    NO_GENESIS,
    NOT_ACKED,
    NOT_MEMBER,
    ROLE_KINDS,
    STRUCK_DEMOTED,
    STRUCK_REMOVED,
    UNKNOWN_KIND,
    WRONG_CIRCLE,
    OpRejected,
)
from kith.sync.kinds.keys import keep_epoch
from kith.sync.kinds.records import (
    ELECTION,
    ORGANIZER,
    AidItem,
    AllocPeriod,
    Ask,
    Charter,
    Checkin,
    CircleInfo,
    Contribution,
    Epoch,
    Event,
    Hidden,
    Invite,
    LedgerEntry,
    Member,
    Message,
    Profile,
    Proposal,
    Recurring,
    Rejection,
    Removal,
    StateInfo,
    Struck,
    Vote,
)
from kith.sync.kinds.schema import InvalidBody
from kith.sync.kinds.stewardship import acts_as_organizer, end_elections_seen_by
from kith.sync.opkind import OpKind
from kith.sync.ops import SignedOp

__all__ = ["CircleState", "FoldKey", "fold_key", "fold_circle_state", "DEFAULT_UNDO_WINDOW"]

FoldKey = tuple[int, bytes]
History = Callable[[FoldKey], Iterable[SignedOp]]
"""Yields, in fold order, every op applied so far whose fold key is <= the given key."""

DEFAULT_UNDO_WINDOW = 20_000
"""Ops whose effects can be undone cheaply; ~3 undo entries each, a few MB in all."""

_MISSING = object()
_APPENDED = object()
_GENESIS_KIND = OpKind.CIRCLE_CREATE
_SLOW_KINDS = frozenset({OpKind.MEMBER_REMOVE, OpKind.MEMBER_COMPROMISED, OpKind.ROLE_REVOKE, OpKind.ROLE_HANDOVER})
"""Kinds by which an author may give up their membership or a role (`_renounces`)."""
_DECISIONS = frozenset({OpKind.PROPOSAL_CREATE, OpKind.PROPOSAL_VOTE, OpKind.PROPOSAL_WITHDRAW, OpKind.PROPOSAL_CLOSE})
"""Never struck: a proposal's outcome must not hinge on a removal that raced it."""
_GOVERNING = ROLE_KINDS[ORGANIZER] | _SLOW_KINDS | _DECISIONS | {OpKind.CHARTER_UPDATE, OpKind.CIRCLE_CREATE}
"""Kinds that can change who is a member or holds a role: a late one is never struck on
arrival (`_insert_struck`)."""


def fold_key(signed: SignedOp) -> FoldKey:
    return (signed.op.lamport, signed.id)


BIG_BATCH = 1_000
"""Batches at least this large are folded with the cyclic garbage collector paused."""


@contextmanager
def _collector_paused(paused: bool) -> Iterator[None]:
    """Pause CPython's cyclic garbage collector for a big fold.

    Folding allocates a few small tuples per op (records, undo entries, causal metadata)
    and keeps most of them; each allocation burst triggers a collection that walks every
    tracked object, so a 100,000-op fold spends about a third of its time in the collector
    finding nothing (the fold creates no reference cycles). Reference counting still frees
    everything as usual; collections resume afterwards. The fold is synchronous, so nothing
    else runs meanwhile, and a caller that had paused the collector keeps it paused.
    """
    if not paused or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class CircleState:
    """The folded state of one circle, plus the bookkeeping to insert late ops.

    Read the tables freely; change them only through ops (`add`). With ``history`` the
    state keeps only the undo window's ops in memory and asks ``history`` for older
    ones when a full re-fold is needed; without it, it keeps every op it applied.

    Ops must be added in a causal order (every op after its parents), as the causal DAG
    delivers them. ``causal`` answers what an op had seen; a replica shares its DAG's index
    (``causal_order=True``: the index learns ops as they enter the DAG). Without one the
    state indexes the ops it is given.
    """

    def __init__(
        self,
        circle_id: bytes,
        *,
        undo_window: int = DEFAULT_UNDO_WINDOW,
        history: History | None = None,
        causal: CausalIndex | None = None,
        causal_order: bool = False,
    ) -> None:
        if type(circle_id) is not bytes or len(circle_id) != limits.CIRCLE_ID_BYTES:
            raise LocalProtocolError("a circle id is 16 bytes")
        if undo_window < 1:
            raise LocalProtocolError("the undo window must hold at least one op")
        self.circle_id = circle_id
        self.undo_window = undo_window
        self.full_refolds = 0
        self._history = history
        self._own_index = causal is None
        self.causal = causal if causal is not None else CausalIndex()
        self.causal_order = causal_order and causal is not None
        self.struck: dict[bytes, Struck] = {}
        """Ops struck by a removal that had not seen them (see the module docstring)."""
        self._struck_by: dict[bytes, tuple[FoldKey, set[bytes]]] = {}
        """striker op id -> (its fold key, the op ids it struck)."""
        self._unconfirmed: set[bytes] = set()
        """Strikers the fold rolled back over: applying them again confirms or revises their strikes."""
        self._pending: list[tuple[SignedOp, list[SignedOp], str]] = []
        self._dropping: list[bytes] = []
        """Strikers applied again and found invalid (or struck): their strikes must go."""
        self._withdrawals = 0
        """Strikes withdrawn during the current `add`/`add_many` (see `MAX_WITHDRAWALS`)."""
        self.oscillations = 0
        """Times a batch hit `MAX_WITHDRAWALS` (removals whose validities form a cycle): from
        then on this state may differ from a node's that received the same ops in another
        order (docs/OPS.md §2c). Not part of the state: a diagnostic for tests and status."""
        self._reset()

    def _reset(self) -> None:
        # Canonical tables (docs/OPS.md, "Canonical state").
        self.info: StateInfo = {}
        self.members: dict[bytes, Member] = {}
        self.profiles: dict[bytes, Profile] = {}
        self.messages: dict[bytes, Message] = {}
        self.reactions: dict[bytes, dict[bytes, tuple[str, ...]]] = {}
        self.checkins: dict[bytes, Checkin] = {}
        self.aid: dict[bytes, AidItem] = {}
        self.proposals: dict[bytes, Proposal] = {}
        self.votes: dict[bytes, dict[bytes, Vote]] = {}
        self.contributions: dict[bytes, Contribution] = {}
        self.ledger: list[LedgerEntry] = []
        self.balances: dict[str, int] = {}
        self.events: dict[bytes, Event] = {}
        self.rsvps: dict[bytes, dict[bytes, str]] = {}
        self.rejected: dict[bytes, Rejection] = {}
        self.cards: dict[bytes, bytes] = {}
        """member id -> X25519 public key (from the card in circle.create / member.add)."""
        self.epochs: dict[bytes, Epoch] = {}
        self.holders: dict[bytes, dict[bytes, bytes]] = {}
        """epoch id -> member id -> the op by which they hold its key (their ack, or the rotation)."""
        self.offers: dict[bytes, dict[bytes, bytes]] = {}
        """epoch id -> member id -> the first op that sealed the epoch's key to them."""
        self.admissions: dict[bytes, bytes] = {}
        """join request nonce -> the member.add that answered it (a request admits once)."""
        self.invites: dict[bytes, Invite] = {}
        self.relays: dict[str, bytes] = {}
        """relay address -> the relay.add op."""
        self.removals: dict[bytes, tuple[Removal, ...]] = {}
        """member id -> the removals and demotions that ended a membership or role of theirs."""
        self.asks: dict[bytes, Ask] = {}
        """Asks to the fund under the charter's allocation rules (`kith.sync.kinds.alloc`)."""
        self.periods: dict[int, AllocPeriod] = {}
        """Closed allocation periods by number."""
        self.seniority: dict[bytes, tuple[int, ...]] = {}
        """member id -> their seniority path, fixed when they first became an organizer
        (docs/OPS.md §2b): kept through demotions and removals, so the order never changes."""
        # Canonical only when not empty (docs/OPS.md §7), so states without them hash as before.
        self.hidden: dict[bytes, Hidden] = {}
        """message id -> the organizer's ``msg.hide`` (`kith.sync.kinds.moderation`)."""
        self.recurring: dict[bytes, Recurring] = {}
        """contribution or pledge id -> its monthly schedule (`kith.sync.kinds.recurring`)."""
        self.installments: dict[bytes, dict[str, bytes]] = {}
        """recurring contribution id -> month -> the receipt that confirmed it."""
        # Derived indexes (rebuilt on restore, not hashed).
        self.roots: list[bytes] = []
        self.replies: dict[bytes, list[bytes]] = {}
        self.open_proposals: dict[bytes, FoldKey] = {}
        self.open_by_author: dict[bytes, int] = {}
        self.open_asks: dict[int, tuple[bytes, ...]] = {}
        """period -> its asks, in fold order, while it is not closed."""
        self.open_elections: dict[bytes, FoldKey] = {}
        """Open organizer elections: an organizer's op that had seen one ends it (§6a)."""
        self.newest_held: dict[bytes, FoldKey] = {}
        """member id -> where the newest epoch they hold began (for stale content keys)."""
        # Fold bookkeeping.
        self._undo: list[tuple[Any, Any, Any]] = []
        self._keys: list[FoldKey] = []
        self._ops: list[SignedOp] = []
        self._marks: list[int] = []
        self._prefix_ops: list[SignedOp] = []
        self._base_count = 0
        self._base_key: FoldKey | None = None

    # --- mutation with undo (for handlers) ---------------------------------------

    def put(self, table: dict[Any, Any], key: Any, value: Any) -> None:
        self._undo.append((table, key, table.get(key, _MISSING)))
        table[key] = value

    @overload
    def put_info(self, key: Literal["circle"], value: CircleInfo) -> None: ...
    @overload
    def put_info(self, key: Literal["charter"], value: Charter) -> None: ...
    @overload
    def put_info(self, key: Literal["epoch"], value: bytes) -> None: ...
    @overload
    def put_info(self, key: Literal["rotation_due"], value: bool) -> None: ...

    def put_info(self, key: str, value: object) -> None:
        """`put` for `info` (a TypedDict: its keys and their types are fixed)."""
        self.put(cast("dict[str, object]", self.info), key, value)

    def drop(self, table: dict[Any, Any], key: Any) -> None:
        self._undo.append((table, key, table.pop(key)))

    def push(self, items: list[Any], value: Any) -> None:
        self._undo.append((items, None, _APPENDED))
        items.append(value)

    def _undo_to(self, mark: int) -> None:
        undo = self._undo
        while len(undo) > mark:
            table, key, old = undo.pop()
            if old is _MISSING:
                del table[key]
            elif old is _APPENDED:
                table.pop()
            else:
                table[key] = old

    # --- applying ops ----------------------------------------------------------

    def _apply(self, signed: SignedOp) -> None:
        """Apply one op that sorts after every op applied so far."""
        op = signed.op
        op_id = signed.id
        mark = len(self._undo)
        self._marks.append(mark)
        self._keys.append((op.lamport, op_id))
        self._ops.append(signed)
        if self._own_index:
            self.causal.add(signed)  # (a no-op for an op it knows)
        if op_id in self.struck:
            if op_id in self._struck_by:
                self._dropping.append(op_id)  # a struck removal strikes nothing
            member = self.members.get(op.author)
            if member is not None and op.kind != _GENESIS_KIND:
                # Its only effect: what it acknowledged stands (that is a fact about what
                # its author had seen, not a decision the strike could undo).
                self._note_citations(signed, member)
                if op.kind == OpKind.KEY_ROTATE:
                    # And a struck rotation's epoch stays, never current: what its author's
                    # side sealed with it belongs to the circle (`keep_epoch`).
                    keep_epoch(self, signed)
            return  # listed from `struck`
        kind = op.kind
        try:
            handler = HANDLERS.get(kind)
            if op.circle != self.circle_id:
                raise OpRejected(WRONG_CIRCLE)
            if handler is None:
                raise OpRejected(UNKNOWN_KIND)
            if kind != _GENESIS_KIND:
                if "circle" not in self.info:
                    raise OpRejected(NO_GENESIS)
                member = self.members.get(op.author)
                if member is None:
                    raise OpRejected(NOT_MEMBER)
                if not member.acked or member.grants:
                    if not self._note_citations(signed, member).acked:
                        raise OpRejected(NOT_ACKED)
                    # What it acknowledged stands even if the rest of the op is rejected.
                    mark = len(self._undo)
            present = bool(self.open_elections) and acts_as_organizer(self, signed)
            handler(self, signed, op, op.body)
            if present:
                end_elections_seen_by(self, signed)
        except InvalidBody as exc:
            self._reject(signed, mark, f"invalid body: {exc}")
        except RemoteProtocolError as exc:
            self._reject(signed, mark, str(exc))
            if kind == OpKind.KEY_ROTATE:
                keep_epoch(self, signed)  # (its author was removed meanwhile: `keep_epoch`)

    def _note_citations(self, signed: SignedOp, member: Member) -> Member:
        """Record what the author acknowledges by citing it: their admission, their grants."""
        grants = member.grants
        if member.acked and (not grants or all(grant.acked for grant in grants)):
            return member  # the common case: nothing left to acknowledge
        parents = signed.op.parents
        updated = member
        if not member.acked and member.joined_op in parents:
            updated = updated._replace(acked=True)
        if any(not grant.acked and grant.op in parents for grant in grants):
            updated = updated._replace(grants=tuple(g._replace(acked=True) if g.op in parents else g for g in grants))
        if updated is not member:
            self.put(self.members, signed.op.author, updated)
        return updated

    @property
    def chains(self) -> dict[bytes, tuple[int, bytes]]:
        """member id -> (their highest seq, that op), over every op of the circle."""
        return self.causal.chains

    @property
    def forks(self) -> set[tuple[bytes, int]]:
        """(author, seq) that two different ops of the circle use: the author forked."""
        return self.causal.forks

    def _reject(self, signed: SignedOp, mark: int, reason: str) -> None:
        self._undo_to(mark)
        op = signed.op
        self.put(self.rejected, signed.id, Rejection(signed.id, op.lamport, op.author, op.kind, reason))
        if self._pending:
            self._pending = [entry for entry in self._pending if entry[0].id != signed.id]
        if signed.id in self._struck_by:
            self._dropping.append(signed.id)

    def add(self, signed: SignedOp) -> int:
        """Insert one op at its fold position; return how many later ops were re-applied.

        Each op must be added at most once (the causal DAG deduplicates); an op whose
        fold key was already applied is ignored.
        """
        self._withdrawals = 0
        key = (signed.op.lamport, signed.id)
        keys = self._keys
        last = keys[-1] if keys else self._base_key
        if last is None or key > last:
            return self._run((signed,)) - 1
        if self._base_key is None or key > self._base_key:
            index = bisect_left(keys, key)
            if index < len(keys) and keys[index] == key:
                return 0
        return self._insert_late([signed])

    def add_many(self, ops: Iterable[SignedOp]) -> int:
        """Add ops in any order, with at most one rollback for the whole batch."""
        self._withdrawals = 0
        batch = sorted(ops, key=fold_key)
        keys = self._keys
        last = keys[-1] if keys else self._base_key
        late = 0
        while late < len(batch) and last is not None and fold_key(batch[late]) <= last:
            late += 1
        with _collector_paused(len(batch) >= BIG_BATCH):
            replayed = self._insert_late(batch[:late]) if late else 0
            replayed += self._run(batch[late:]) - (len(batch) - late)
        return replayed

    def _insert_late(self, batch: list[SignedOp]) -> int:
        """Roll back to the earliest op of ``batch`` (sorted) and apply it merged with what follows."""
        rest = [signed for signed in batch if not self._insert_struck(signed)]
        if not rest:
            return 0
        first = self._withdraw_strikes_from(fold_key(rest[0]))
        if self._base_key is not None and first <= self._base_key:
            return self._refold_with(rest, first)
        later = self._rollback_to(bisect_left(self._keys, first))
        return max(0, self._run(later, rest) - len(rest))

    def _withdraw_strikes_from(self, position: FoldKey) -> FoldKey:
        """New ops join the set at ``position``: withdraw the strikes of every removal at or
        after it, and return where folding again must start (the earliest op they had
        struck, or ``position``).

        A fresh fold meets each removal without its strikes, and a removal's validity can
        rest on ops it would strike (through ops it never saw: a demotion of T that strikes
        T's admission of E, when the demoting organizer's own role hangs on a handover to E,
        docs/OPS.md §2c). Keeping the strikes while new ops join could keep such a removal
        valid where a fresh fold rejects it, so each is decided again as a fresh fold would
        decide it. Withdrawing one can reach before ``position``, and so reach earlier
        removals: repeated until none is left after the start."""
        while True:
            again = [striker for striker, (key, _ids) in self._struck_by.items() if key >= position]
            if not again:
                return position
            for striker in again:
                for op_id in self._struck_by.pop(striker)[1]:
                    position = min(position, (self.struck.pop(op_id).lamport, op_id))
                self._unconfirmed.discard(striker)

    def _run(self, *streams: Iterable[SignedOp]) -> int:
        """Apply fold-ordered op streams merged (each fold key once), settling strikes as they
        come. Returns how many ops were applied."""
        merged = iter(streams[0]) if len(streams) == 1 else heapq.merge(*streams, key=fold_key)
        redo: list[tuple[FoldKey, int, SignedOp]] = []
        tiebreak = itertools.count()
        following = next(merged, None)
        previous = self.last_key
        count = 0
        while True:
            rolled: list[SignedOp] | FoldKey = []
            settling: bytes | None = None
            if redo and (following is None or redo[0][0] <= fold_key(following)):
                key, _n, signed = heapq.heappop(redo)
            elif following is not None:
                signed, key = following, fold_key(following)
                following = next(merged, None)
            elif self._unconfirmed:
                # Strikers never applied again (none should be left): their strikes go.
                self._dropping.extend(self._unconfirmed)
                self._unconfirmed.clear()
                rolled = self._drop_strikes()
                signed = None
            else:
                break
            if signed is not None:
                if previous is not None and key <= previous:
                    continue  # a duplicate, or already applied
                self._apply(signed)
                previous = key
                count += 1
                if self._dropping:
                    rolled = self._drop_strikes()
                elif self._pending:
                    settling = self._pending[0][0].id
                    rolled = self._settle()
                else:
                    self._unconfirmed.discard(signed.id)
                    if len(self._keys) > 2 * self.undo_window:
                        self._trim()
            if isinstance(rolled, tuple):  # a fold key before the undo window: fold all again
                rest = [op for _k, _n, op in redo]
                if following is not None:
                    rest.append(following)
                rest.extend(merged)
                return count + self._refold_with(rest, rolled, keep=settling)
            if rolled:
                for op in rolled:
                    heapq.heappush(redo, (fold_key(op), next(tiebreak), op))
                previous = self.last_key
        return count

    def _decide_again_from(self, position: FoldKey, keep: bytes | None) -> None:
        """Folding again from ``position``: strikers at or after it but ``keep`` become
        unconfirmed; applied again, each confirms its strikes or revises them. (Their strikes
        stay in force meanwhile: a removal never rests on what it strikes, so keeping them
        cannot change what it decides.)"""
        for striker, (key, _ids) in self._struck_by.items():
            if key >= position and striker != keep:
                self._unconfirmed.add(striker)

    def _rollback_to(self, index: int, *, keep: bytes | None = None, decide_again: bool = True) -> list[SignedOp]:
        """Undo the ops from ``index`` on and return them (see `_decide_again_from`)."""
        if decide_again and index < len(self._keys) and self._struck_by:
            self._decide_again_from(self._keys[index], keep)
        rolled = self._ops[index:]
        self._undo_to(self._marks[index] if index < len(self._marks) else len(self._undo))
        del self._marks[index:]
        del self._keys[index:]
        del self._ops[index:]
        return rolled

    def _trim(self) -> None:
        """Forget the undo entries of all but the last ``undo_window`` ops."""
        cut = len(self._keys) - self.undo_window
        undo_cut = self._marks[cut]
        del self._undo[:undo_cut]
        self._marks = [mark - undo_cut for mark in self._marks[cut:]]
        if self._history is None:
            self._prefix_ops.extend(self._ops[:cut])
        self._base_key = self._keys[cut - 1]
        self._base_count += cut
        del self._keys[:cut]
        del self._ops[:cut]

    def _refold_with(self, batch: list[SignedOp], position: FoldKey, *, keep: bytes | None = None) -> int:
        """Fold everything again from the empty state, with the (sorted) ``batch`` merged in:
        a rollback to ``position`` that the undo window cannot do (see `_decide_again_from`)."""
        self.full_refolds += 1
        if self._history is not None and self._base_key is not None:
            earlier: Iterable[SignedOp] = self._history(self._base_key)
        else:
            earlier = self._prefix_ops
        window = self._ops
        self._reset()
        self._pending, self._dropping = [], []
        self._decide_again_from(position, keep)
        batch = sorted(batch, key=fold_key)
        with _collector_paused(True):
            return max(0, self._run(_chain(earlier, window), batch) - len(batch))

    # --- strikes ---------------------------------------------------------------------

    def strike_unseen(
        self, signed: SignedOp, target: bytes, scope: str, start: FoldKey, anchors: tuple[bytes, ...]
    ) -> None:
        """A removal (or demotion, ``scope`` = the role) of ``target`` takes effect at
        ``signed``, the op being applied: record it, and strike the target's ops since
        ``start`` that it had not seen (docs/OPS.md §2c). ``anchors``: the ops the target
        acknowledges to hold the membership or role (their admission, grants).

        Decisions (proposals, votes) are never struck (docs/OPS.md §2c)."""
        unseen = self._unseen_ops(signed, target, start)
        kinds = ROLE_KINDS.get(scope)
        unseen = [
            op
            for op in unseen
            if (op.op.kind in kinds if kinds else op.op.kind not in _DECISIONS) and not _renounces(op)
        ]
        record = Removal(start[0], start[1], signed.op.lamport, signed.id, scope, anchors)
        self.put(self.removals, target, (*self.removals.get(target, ()), record))
        if unseen or signed.id in self._struck_by:
            reason = STRUCK_REMOVED if scope == "member" else STRUCK_DEMOTED
            self._pending.append((signed, unseen, reason))

    def _unseen_ops(self, signed: SignedOp, target: bytes, start: FoldKey) -> list[SignedOp]:
        """The target's ops in (start, signed) that ``signed`` had not seen.

        Unless the target forked, their ops are a chain: everything up to the highest seq
        ``signed`` had seen (``cut``) was seen, so only later ops are looked at."""
        chain = self.chains.get(target)
        if chain is None:
            return []
        forked = self.causal.forked(target)
        hint = 0
        for parent in signed.op.parents:
            meta = self.causal.get(parent)
            if meta is not None and meta.author == target and meta.seq > hint:
                hint = meta.seq
        if not forked and chain[0] <= hint:
            return []
        cut = hint
        if not forked and not hint:
            latest = self.causal.latest_seen(signed.id, target, floor=start[0])
            cut = 0 if latest is None else latest.seq
            if chain[0] <= cut:
                return []
        candidates = self._ops_of(target, start, fold_key(signed), None if forked else cut)
        # An op that several removals would strike belongs to the one that sorts first (the
        # same target removed twice, or demoted then removed), whatever order they came in.
        here = fold_key(signed)
        candidates = [
            op
            for op in candidates
            if op.id not in self.struck or (self.struck[op.id].striker_lamport, self.struck[op.id].striker) >= here
        ]
        seen = self.causal.which_in_past((op.id for op in candidates), signed.id)
        return [op for op in candidates if op.id not in seen]

    def _ops_of(self, author: bytes, start: FoldKey, end: FoldKey, above: int | None) -> list[SignedOp]:
        """The author's applied ops with ``start < key < end`` (only ``seq > above``, if given,
        stopping at the first op at or below it: chain order)."""
        found: list[SignedOp] = []
        index = bisect_left(self._keys, end) - 1
        while index >= 0:
            key = self._keys[index]
            if key <= start:
                return found
            op = self._ops[index]
            if op.op.author == author:
                if above is not None and op.op.seq <= above:
                    return found
                found.append(op)
            index -= 1
        window_start = self._base_key
        if window_start is None or window_start <= start:
            return found
        older = self._prefix_ops if self._history is None else self._history(window_start)
        for op in older:
            if start < fold_key(op) and op.op.author == author and (above is None or op.op.seq > above):
                found.append(op)
        return found

    def _settle(self) -> list[SignedOp] | FoldKey:
        """Make the strikes of the removal just applied what it decided: confirm them if they
        are unchanged, else strike (and unstrike) the difference and roll back to the earliest
        op it touches. Returns the ops to apply again, or that op's fold key if it sorts before
        the undo window (then everything is folded again)."""
        pending, self._pending = self._pending, []
        striker = pending[0][0]
        self._unconfirmed.discard(striker.id)
        wanted = {op.id: (op, reason) for _striker, unseen, reason in pending for op in unseen}
        _key, had = self._struck_by.get(striker.id, (fold_key(striker), set()))
        earliest: FoldKey | None = None
        withdrawn = had - wanted.keys()
        if withdrawn:
            self._withdrawals += 1
            if self._withdrawals > MAX_WITHDRAWALS:  # oscillating: strikes now only grow (see there)
                self.oscillations += 1
                withdrawn = set()
        for op_id in withdrawn:
            key = (self.struck.pop(op_id).lamport, op_id)
            earliest = key if earliest is None else min(earliest, key)
        for op_id in wanted.keys() - had:
            op, reason = wanted[op_id]
            previous = self.struck.get(op_id)
            if previous is not None and previous.striker != striker.id:
                # A later removal had it: this one sorts first, so it takes it over.
                self._struck_by[previous.striker][1].discard(op_id)
            self.struck[op_id] = Struck(op.op.lamport, op.op.author, op.op.kind, reason, striker.id, striker.op.lamport)
            earliest = fold_key(op) if earliest is None else min(earliest, fold_key(op))
        kept = (had - withdrawn) | wanted.keys()
        if kept:
            self._struck_by[striker.id] = (fold_key(striker), kept)
        else:
            self._struck_by.pop(striker.id, None)
        if earliest is None:
            return []
        if self._base_key is not None and earliest <= self._base_key:
            return earliest
        return self._rollback_to(bisect_left(self._keys, earliest), keep=striker.id)

    def _drop_strikes(self) -> list[SignedOp] | FoldKey:
        """Undo the strikes of removals that turned out invalid (or struck themselves) and
        return the ops to apply again, as `_settle` does."""
        dropping, self._dropping = self._dropping, []
        earliest: FoldKey | None = None
        if any(striker in self._struck_by for striker in dropping):
            self._withdrawals += 1
            if self._withdrawals > MAX_WITHDRAWALS:  # oscillating: strikes now only grow
                self.oscillations += 1
                self._unconfirmed.difference_update(dropping)
                return []
        for striker in dropping:
            self._unconfirmed.discard(striker)
            if striker not in self._struck_by:
                continue
            for op_id in self._struck_by.pop(striker)[1]:
                key = (self.struck.pop(op_id).lamport, op_id)
                earliest = key if earliest is None else min(earliest, key)
        if earliest is None:
            return []
        if self._base_key is not None and earliest <= self._base_key:
            return earliest
        return self._rollback_to(bisect_left(self._keys, earliest))

    def _insert_struck(self, signed: SignedOp) -> bool:
        """Strike a late op at once if a removal sorting after it had not seen it; True if so.

        With ops entering in causal order, an op arriving after the removal cannot be in its
        past. Nothing is re-applied: a struck op has no effect, so it only takes its place.
        Only for ops that could not have changed the removal's own validity unstruck (no
        governing kind, no organizer election in the circle): the removal then decides as
        a fresh fold would, which meets it before the op is struck.
        """
        op = signed.op
        if op.kind in _GOVERNING or self._any_election():
            # It could change who is a member or an organizer (an organizer's op ends an
            # election it had seen), and so whether the removal is valid: a fresh fold
            # decides the removal without it struck, so it goes the slow way.
            return False
        key = fold_key(signed)
        record = None
        for removal in self.removals.get(op.author, ()):
            if (removal.start_lamport, removal.start_op) < key < (removal.end_lamport, removal.end_op) and (
                removal.scope == "member" or op.kind in ROLE_KINDS[removal.scope]
            ):
                record = removal
                break
        if (
            record is None
            or signed.id in self.struck
            or op.kind in _DECISIONS
            or any(anchor in op.parents for past in self.removals[op.author] for anchor in past.anchors)
        ):
            # (An op acknowledging a membership or role of its author (which a removal or
            # demotion ended) counts as an acknowledgement even when struck, and may make
            # other ops of theirs count: it goes the slow way too.)
            return False
        if self._own_index and signed.id not in self.causal:
            self.causal.add(signed)
        if not self.causal_order and self.causal.which_in_past((signed.id,), record.end_op):
            return False
        reason = STRUCK_REMOVED if record.scope == "member" else STRUCK_DEMOTED
        self.struck[signed.id] = Struck(op.lamport, op.author, op.kind, reason, record.end_op, record.end_lamport)
        end = (record.end_lamport, record.end_op)
        self._struck_by.setdefault(record.end_op, (end, set()))[1].add(signed.id)
        if self._base_key is not None and key <= self._base_key:
            self._base_count += 1
            if self._history is None:
                insort(self._prefix_ops, signed, key=fold_key)  # (it is sorted: no full sort per op)
            return True
        index = bisect_left(self._keys, key)
        self._keys.insert(index, key)
        self._ops.insert(index, signed)
        self._marks.insert(index, self._marks[index] if index < len(self._marks) else len(self._undo))
        return True

    def _any_election(self) -> bool:
        return any(proposal.kind == ELECTION for proposal in self.proposals.values())

    # --- authoring -------------------------------------------------------------------

    def authoring(self, member: bytes) -> tuple[int, tuple[bytes, ...]]:
        """(seq, ops to cite) for ``member``'s next op: their previous op, and what they
        must acknowledge (their admission, grants of their roles) before their ops count."""
        chain = self.chains.get(member)
        cite: list[bytes] = [] if chain is None else [chain[1]]
        record = self.members.get(member)
        if record is not None:
            if not record.acked:
                cite.append(record.joined_op)
            cite.extend(grant.op for grant in record.grants if not grant.acked)
        return (1 if chain is None else chain[0] + 1), tuple(dict.fromkeys(cite))

    def citations_for(self, kind: str, body: dict[str, Any]) -> tuple[bytes, ...]:
        """Ops an honest author cites for an op of this kind: removing or demoting someone,
        their latest op, so the removal visibly saw everything of theirs it had."""
        if kind in (OpKind.MEMBER_REMOVE, OpKind.ROLE_REVOKE):
            target = body.get("member")
            chain = self.chains.get(target) if type(target) is bytes else None
            if chain is not None:
                return (chain[1],)
        return ()

    # --- reading -----------------------------------------------------------------

    @property
    def applied_count(self) -> int:
        """How many ops (accepted, rejected or struck) the state has folded."""
        return self._base_count + len(self._keys)

    @property
    def last_key(self) -> FoldKey | None:
        return self._keys[-1] if self._keys else self._base_key

    @property
    def window_start(self) -> FoldKey | None:
        """Ops sorting after this key can be inserted by rollback; before it, a full re-fold."""
        return self._base_key

    def ops_in_fold_order(self) -> Iterator[SignedOp]:
        """Every op folded, when the state keeps them (no ``history``)."""
        if self._history is not None:
            raise LocalProtocolError("this state keeps only its undo window; read ops from the history")
        yield from self._prefix_ops
        yield from self._ops

    def is_rejected(self, op_id: bytes) -> str | None:
        """The reason an op was rejected or struck, or None if it was applied (or is unknown)."""
        struck = self.struck.get(op_id)
        if struck is not None:
            return struck.reason
        rejection = self.rejected.get(op_id)
        return None if rejection is None else rejection.reason

    def all_rejections(self) -> dict[bytes, Rejection]:
        """Every rejected or struck op, by id."""
        merged = dict(self.rejected)
        for op_id, entry in self.struck.items():
            merged[op_id] = Rejection(op_id, entry.lamport, entry.author, entry.kind, entry.reason)
        return merged

    def canonical(self) -> dict[str, Any]:
        """The canonical representation of the whole state (docs/OPS.md, "Canonical state")."""
        return canonical_state(self)

    def encode(self) -> bytes:
        return encode_state(self)

    def state_hash(self) -> bytes:
        """BLAKE2b-256 of the canonical encoding: equal on every node with the same ops."""
        return blake2b(self.encode(), person=b"kith-state")

    # --- snapshots ---------------------------------------------------------------

    def snapshot(self, tail: int) -> tuple[dict[str, Any], list[SignedOp]]:
        """The canonical state ``tail`` ops before the end, and those ``tail`` ops.

        Restoring the snapshot and adding the tail gives this state back *with* an undo
        window over the tail, so late ops right after a restart stay cheap. The state
        rolls back to take the picture and re-applies the tail; it is unchanged after.
        (The picture lists every struck op, tail included: strikes are known ahead.)
        """
        tail = max(0, min(tail, len(self._keys)))
        index = len(self._keys) - tail
        later = self._ops[index:]
        unconfirmed = set(self._unconfirmed)
        if later:
            self._rollback_to(index, decide_again=False)
        try:
            picture = canonical_state(self)
        finally:
            for op in later:  # the same ops again, in the same order: the same decisions
                self._apply(op)
            self._pending, self._dropping, self._unconfirmed = [], [], unconfirmed
        return picture, later

    @classmethod
    def restore(
        cls,
        circle_id: bytes,
        picture: Any,
        *,
        undo_window: int = DEFAULT_UNDO_WINDOW,
        history: History | None = None,
        causal: CausalIndex | None = None,
        causal_order: bool = False,
    ) -> CircleState:
        """Rebuild a state from `canonical` output (e.g. a decrypted snapshot).

        Raises `Malformed` if the picture is not a well-formed canonical state of this
        circle. Without ``history`` the restored state cannot re-fold ops it never saw,
        so a late op sorting before the snapshot raises `LocalProtocolError`.
        """
        state = cls(
            circle_id, undo_window=undo_window, history=history or _no_history, causal=causal, causal_order=causal_order
        )
        count, last = restore_tables(state, picture)
        for op_id, entry in state.struck.items():
            striker_key = (entry.striker_lamport, entry.striker)
            state._struck_by.setdefault(entry.striker, (striker_key, set()))[1].add(op_id)
        state._base_count = count
        state._base_key = last
        return state


MAX_WITHDRAWALS = 64
"""Strikes withdrawn in one `add`/`add_many` before the fold stops withdrawing any.

Withdrawing strikes (a removal folded again turned out invalid) is what lets the fold
match a fold from scratch. Forged concurrent removals can be built whose validities form
a cycle (each valid only if another's strike stands, docs/OPS.md §2c); then no answer
exists and withdrawing would go on forever. Past this bound, strikes only grow, which ends
the fold in at most one pass per op; such a circle may then differ between nodes that
received its ops in different orders, which their state hashes show."""


def _renounces(signed: SignedOp) -> bool:
    """Is the op its author giving something up (leaving, giving up a role, reporting their
    device compromised)? Such an op is never struck: a removal's validity may rest on it
    (a member who gave up the organizer role may be removed by any organizer), and voiding
    what someone gave up gains an attacker nothing."""
    op = signed.op
    if op.kind in (OpKind.MEMBER_COMPROMISED, OpKind.ROLE_HANDOVER):
        # A handover gives the author's role up too: a demotion may rest on it (docs/OPS.md §6a).
        return True
    return op.kind in _SLOW_KINDS and type(op.body) is dict and op.body.get("member") == op.author


def _no_history(upto: FoldKey) -> Iterable[SignedOp]:
    raise LocalProtocolError("a late op sorts before the restored snapshot and no op history was given")


def _chain(first: Iterable[SignedOp], second: list[SignedOp]) -> Iterator[SignedOp]:
    yield from first
    yield from second


def fold_circle_state(
    circle_id: bytes, ops: Iterable[SignedOp], *, undo_window: int = DEFAULT_UNDO_WINDOW
) -> CircleState:
    """A fresh fold of an op set (duplicates ignored), in fold order."""
    state = CircleState(circle_id, undo_window=undo_window)
    state.add_many({signed.id: signed for signed in ops}.values())  # fold order is a causal order
    return state
