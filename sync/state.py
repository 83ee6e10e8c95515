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

Ops do not arrive in fold order. The common case, an op that sorts after everything
applied so far, is applied directly (`add`, fast path). An op that sorts earlier ("late
op") needs the state at its position: every mutation goes through `put`, `drop` or
`push`, which append the old value to an **undo log**, and ``_marks[i]`` remembers the
log length before the i-th op of the window. Rolling back to position i pops the log
down to that mark; the late op is applied; the ops after it are applied again. The log
covers the last ``undo_window`` ops (older entries are trimmed, amortised O(1) per op);
an op that sorts before the window forces a full re-fold from the op history, which is
correct but slow, and counted in `full_refolds`.

The tables are plain dicts of immutable records (`sync.kinds.records`). Some indexes
(``roots``, ``replies``, ``open_proposals``, ``open_by_author``) are derived: they are
maintained with undo like the tables but are not part of the canonical state, and
`sync.kinds.canonical` rebuilds them when a snapshot is restored. Iteration order of a
dict is never relied on (undo can reorder keys): whatever must be ordered is sorted.

Handlers for the op kinds live in `sync.kinds`; this module only orders, dispatches,
records rejections and undoes.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from identity.crypto import blake2b
from identity.errors import LocalProtocolError, RemoteProtocolError
from sync import limits
from sync.kinds import HANDLERS
from sync.kinds.canonical import canonical_state, encode_state, restore_tables
from sync.kinds.common import NO_GENESIS, NOT_MEMBER, UNKNOWN_KIND, WRONG_CIRCLE, OpRejected
from sync.kinds.records import (
    AidItem,
    Checkin,
    Contribution,
    Epoch,
    Event,
    Invite,
    LedgerEntry,
    Member,
    Message,
    Profile,
    Proposal,
    Rejection,
    Vote,
)
from sync.kinds.schema import InvalidBody
from sync.ops import SignedOp

__all__ = ["CircleState", "FoldKey", "fold_key", "fold_circle_state", "DEFAULT_UNDO_WINDOW"]

FoldKey = tuple[int, bytes]
History = Callable[[FoldKey], Iterable[SignedOp]]
"""Yields, in fold order, every op applied so far whose fold key is <= the given key."""

DEFAULT_UNDO_WINDOW = 20_000
"""Ops whose effects can be undone cheaply; ~3 undo entries each, a few MB in all."""

_MISSING = object()
_APPENDED = object()
_GENESIS_KIND = "circle.create"


def fold_key(signed: SignedOp) -> FoldKey:
    return (signed.op.lamport, signed.id)


class CircleState:
    """The folded state of one circle, plus the bookkeeping to insert late ops.

    Read the tables freely; change them only through ops (`add`). With ``history`` the
    state keeps only the undo window's ops in memory and asks ``history`` for older
    ones when a full re-fold is needed; without it, it keeps every op it applied.
    """

    def __init__(
        self,
        circle_id: bytes,
        *,
        undo_window: int = DEFAULT_UNDO_WINDOW,
        history: History | None = None,
    ) -> None:
        if type(circle_id) is not bytes or len(circle_id) != limits.CIRCLE_ID_BYTES:
            raise LocalProtocolError("a circle id is 16 bytes")
        if undo_window < 1:
            raise LocalProtocolError("the undo window must hold at least one op")
        self.circle_id = circle_id
        self.undo_window = undo_window
        self.full_refolds = 0
        self._history = history
        self._reset()

    def _reset(self) -> None:
        # Canonical tables (docs/OPS.md, "Canonical state").
        self.info: dict[str, Any] = {}
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
        """epoch id -> member id -> the op that delivered that epoch's key to them."""
        self.invites: dict[bytes, Invite] = {}
        self.relays: dict[str, bytes] = {}
        """relay address -> the relay.add op."""
        # Derived indexes (rebuilt on restore, not hashed).
        self.roots: list[bytes] = []
        self.replies: dict[bytes, list[bytes]] = {}
        self.open_proposals: dict[bytes, FoldKey] = {}
        self.open_by_author: dict[bytes, int] = {}
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
        mark = len(self._undo)
        self._marks.append(mark)
        self._keys.append((op.lamport, signed.id))
        self._ops.append(signed)
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
                if op.author not in self.members:
                    raise OpRejected(NOT_MEMBER)
            handler(self, signed, op, op.body)
        except InvalidBody as exc:
            self._reject(signed, mark, f"invalid body: {exc}")
        except RemoteProtocolError as exc:
            self._reject(signed, mark, str(exc))

    def _reject(self, signed: SignedOp, mark: int, reason: str) -> None:
        self._undo_to(mark)
        op = signed.op
        self.put(self.rejected, signed.id, Rejection(signed.id, op.lamport, op.author, op.kind, reason))

    def add(self, signed: SignedOp) -> int:
        """Insert one op at its fold position; return how many later ops were re-applied.

        Each op must be added at most once (the causal DAG deduplicates); an op whose
        fold key was already applied is ignored.
        """
        key = (signed.op.lamport, signed.id)
        keys = self._keys
        last = keys[-1] if keys else self._base_key
        if last is None or key > last:
            self._apply(signed)
            if len(keys) > 2 * self.undo_window:
                self._trim()
            return 0
        if self._base_key is None or key > self._base_key:
            index = bisect_left(keys, key)
            if index < len(keys) and keys[index] == key:
                return 0
        return self._insert_late([signed])

    def add_many(self, ops: Iterable[SignedOp]) -> int:
        """Add ops in any order, with at most one rollback for the whole batch."""
        batch = sorted(ops, key=fold_key)
        keys = self._keys
        last = keys[-1] if keys else self._base_key
        late = 0
        while late < len(batch) and last is not None and fold_key(batch[late]) <= last:
            late += 1
        replayed = self._insert_late(batch[:late]) if late else 0
        for signed in batch[late:]:
            replayed += self.add(signed)
        return replayed

    def _insert_late(self, batch: list[SignedOp]) -> int:
        """Roll back to the earliest op of ``batch`` (sorted) and apply it merged with what follows."""
        first = fold_key(batch[0])
        if self._base_key is not None and first <= self._base_key:
            return self._refold_with(batch)
        index = bisect_left(self._keys, first)
        later = self._ops[index:]
        self._rollback_to(index)
        self._apply_merged(later, batch)
        return len(later)

    def _apply_merged(self, first: Iterable[SignedOp], second: list[SignedOp]) -> int:
        """Apply two fold-ordered op streams merged, each fold key once; return how many."""
        count = 0
        previous = None
        for signed in heapq.merge(first, second, key=fold_key):
            key = (signed.op.lamport, signed.id)
            if key == previous:
                continue
            previous = key
            self._apply(signed)
            count += 1
            if len(self._keys) > 2 * self.undo_window:
                self._trim()
        return count

    def _rollback_to(self, index: int) -> None:
        self._undo_to(self._marks[index])
        del self._marks[index:]
        del self._keys[index:]
        del self._ops[index:]

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

    def _refold_with(self, batch: list[SignedOp]) -> int:
        """Fold everything again from the empty state, with the (sorted) ``batch`` merged in."""
        self.full_refolds += 1
        if self._history is not None and self._base_key is not None:
            earlier: Iterable[SignedOp] = self._history(self._base_key)
        else:
            earlier = self._prefix_ops
        window = self._ops
        self._reset()
        return max(0, self._apply_merged(_chain(earlier, window), batch) - len(batch))

    # --- reading -----------------------------------------------------------------

    @property
    def applied_count(self) -> int:
        """How many ops (accepted or rejected) the state has folded."""
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
        """The reason an op was rejected, or None if it was applied (or is unknown)."""
        rejection = self.rejected.get(op_id)
        return None if rejection is None else rejection.reason

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
        """
        tail = max(0, min(tail, len(self._keys)))
        index = len(self._keys) - tail
        later = self._ops[index:]
        if later:
            self._rollback_to(index)
        try:
            picture = canonical_state(self)
        finally:
            for op in later:
                self._apply(op)
        return picture, later

    @classmethod
    def restore(
        cls,
        circle_id: bytes,
        picture: Any,
        *,
        undo_window: int = DEFAULT_UNDO_WINDOW,
        history: History | None = None,
    ) -> CircleState:
        """Rebuild a state from `canonical` output (e.g. a decrypted snapshot).

        Raises `Malformed` if the picture is not a well-formed canonical state of this
        circle. Without ``history`` the restored state cannot re-fold ops it never saw,
        so a late op sorting before the snapshot raises `LocalProtocolError`.
        """
        state = cls(circle_id, undo_window=undo_window, history=history or _no_history)
        count, last = restore_tables(state, picture)
        state._base_count = count
        state._base_key = last
        return state


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
    unique = {signed.id: signed for signed in ops}
    for signed in sorted(unique.values(), key=fold_key):
        state.add(signed)
    return state
