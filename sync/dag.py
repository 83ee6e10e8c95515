"""The causal DAG of a circle's ops: heads, the lamport rule, and the causal buffer.

An op enters the DAG only once every parent it cites is in the DAG; that is what makes
"the state at an op's position" include everything its author had seen. On entry its
lamport must be ``1 + max(parent lamports)`` (an op without parents has lamport 1; `Op`
enforces that part). An op whose parents are missing waits in a bounded **causal
buffer**, and the DAG reports which ids are missing so the network layer can fetch them.
When the buffer is full the oldest waiting op is evicted and counted: a peer can make us
forget ops (we fetch them again later), never grow memory without bound.

An op that breaks the lamport rule, or belongs to another circle, is dropped: it is not
part of the circle's op set on any node. Its id is remembered (boundedly) so descendants
citing it are dropped at once instead of waiting for a parent that will never come.

Duplicates are no-ops. Known ops can live outside memory: ``lookup`` (e.g. the state
cache) answers for ops persisted in an earlier run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from identity.errors import LocalProtocolError
from sync import limits
from sync.ops import SignedOp

DEFAULT_MAX_BUFFERED = 10_000
DEFAULT_MAX_DROPPED_IDS = 10_000

WRONG_CIRCLE = "op belongs to another circle"
BAD_LAMPORT = "lamport is not 1 + max(parent lamports)"
PARENT_DROPPED = "a parent op was dropped"

LamportLookup = Callable[[bytes], "int | None"]


@dataclass(frozen=True, slots=True)
class DagOutcome:
    """What one `CausalDag.add` did."""

    delivered: tuple[SignedOp, ...]
    """Ops that entered the DAG, in causal order: the op itself and any buffered descendants it released."""
    dropped: tuple[tuple[bytes, str], ...]
    """(op id, reason) of ops refused for good: wrong circle, lamport rule, a dropped parent."""
    buffered: bool
    """The op waits in the causal buffer for missing parents."""
    duplicate: bool
    missing: frozenset[bytes]
    """Parent ids the op waits for that are neither in the DAG nor buffered: fetch these."""
    evicted: int
    """Buffered ops evicted to make room during this call."""


class CausalDag:
    def __init__(
        self,
        circle_id: bytes,
        *,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
        lookup: LamportLookup | None = None,
        heads: Iterable[tuple[bytes, int]] = (),
    ) -> None:
        if len(circle_id) != limits.CIRCLE_ID_BYTES:
            raise LocalProtocolError("a circle id is 16 bytes")
        if max_buffered < 1:
            raise LocalProtocolError("the causal buffer must hold at least one op")
        self.circle_id = circle_id
        self.max_buffered = max_buffered
        self._lookup = lookup
        self._lamports: dict[bytes, int] = {}
        self._heads: dict[bytes, int] = dict(heads)
        self._buffer: dict[bytes, SignedOp] = {}
        self._waiting: dict[bytes, set[bytes]] = {}
        self._unmet: dict[bytes, int] = {}
        self._dropped: dict[bytes, str] = {}
        self.evicted_total = 0
        self.dropped_total = 0

    # --- queries -------------------------------------------------------------------

    def lamport_of(self, op_id: bytes) -> int | None:
        """The lamport of an op in the DAG, or None if it is not in the DAG."""
        lamport = self._lamports.get(op_id)
        if lamport is None and self._lookup is not None:
            lamport = self._lookup(op_id)
            if lamport is not None:
                self._lamports[op_id] = lamport
        return lamport

    def __contains__(self, op_id: object) -> bool:
        return type(op_id) is bytes and self.lamport_of(op_id) is not None

    def is_buffered(self, op_id: bytes) -> bool:
        return op_id in self._buffer

    @property
    def buffered_count(self) -> int:
        return len(self._buffer)

    def heads(self) -> tuple[bytes, ...]:
        """Ops no other op in the DAG cites, sorted by id."""
        return tuple(sorted(self._heads))

    def head_lamports(self) -> tuple[tuple[bytes, int], ...]:
        return tuple(sorted(self._heads.items()))

    def next_position(self) -> tuple[tuple[bytes, ...], int]:
        """(parents, lamport) for a new op: the newest heads (at most 16, sorted by id)."""
        if not self._heads:
            return (), 1
        newest = sorted(self._heads.items(), key=lambda item: (item[1], item[0]), reverse=True)[: limits.MAX_PARENTS]
        return tuple(sorted(op_id for op_id, _ in newest)), 1 + max(lamport for _, lamport in newest)

    def missing(self) -> frozenset[bytes]:
        """Every id the buffer waits for that is neither in the DAG nor buffered."""
        return frozenset(parent for parent in self._waiting if parent not in self._buffer)

    # --- adding --------------------------------------------------------------------

    def add(self, signed: SignedOp) -> DagOutcome:
        op_id = signed.id
        op = signed.op
        if op_id in self._buffer or op_id in self._dropped or op_id in self:
            return DagOutcome((), (), False, True, frozenset(), 0)
        if op.circle != self.circle_id:
            return self._refuse(op_id, WRONG_CIRCLE)
        for parent in op.parents:
            if parent in self._dropped:
                return self._refuse(op_id, PARENT_DROPPED)
        unmet = [parent for parent in op.parents if parent not in self]
        if not unmet:
            delivered, dropped = self._deliver(signed)
            return DagOutcome(delivered, dropped, False, False, frozenset(), 0)
        evicted = 0
        while len(self._buffer) >= self.max_buffered:
            self._evict_oldest()
            evicted += 1
        self._buffer[op_id] = signed
        self._unmet[op_id] = len(unmet)
        for parent in unmet:
            self._waiting.setdefault(parent, set()).add(op_id)
        missing = frozenset(parent for parent in unmet if parent not in self._buffer)
        return DagOutcome((), (), True, False, missing, evicted)

    def _refuse(self, op_id: bytes, reason: str) -> DagOutcome:
        """Drop an op, and every buffered op waiting for it."""
        dropped = (self._drop(op_id, reason), *self._drop_waiting_on(op_id))
        return DagOutcome((), dropped, False, False, frozenset(), 0)

    def restore_delivered(self, signed: SignedOp) -> None:
        """Record an op that entered the DAG in an earlier run (no checks: it passed them then)."""
        self._admit(signed)

    def _admit(self, signed: SignedOp) -> None:
        op = signed.op
        self._lamports[signed.id] = op.lamport
        for parent in op.parents:
            self._heads.pop(parent, None)
        self._heads[signed.id] = op.lamport

    def _deliver(self, first: SignedOp) -> tuple[tuple[SignedOp, ...], tuple[tuple[bytes, str], ...]]:
        delivered: list[SignedOp] = []
        dropped: list[tuple[bytes, str]] = []
        ready = [first]
        while ready:
            signed = ready.pop()
            op = signed.op
            if op.parents:
                expected = 1 + max(self.lamport_of(parent) or 0 for parent in op.parents)
                if op.lamport != expected:
                    dropped.append(self._drop(signed.id, BAD_LAMPORT))
                    dropped.extend(self._drop_waiting_on(signed.id))
                    continue
            self._admit(signed)
            delivered.append(signed)
            for child_id in self._waiting.pop(signed.id, ()):
                self._unmet[child_id] -= 1
                if self._unmet[child_id] == 0:
                    del self._unmet[child_id]
                    ready.append(self._buffer.pop(child_id))
        return tuple(delivered), tuple(dropped)

    def _drop(self, op_id: bytes, reason: str) -> tuple[bytes, str]:
        self.dropped_total += 1
        self._dropped[op_id] = reason
        if len(self._dropped) > DEFAULT_MAX_DROPPED_IDS:
            del self._dropped[next(iter(self._dropped))]
        return op_id, reason

    def _drop_waiting_on(self, op_id: bytes) -> list[tuple[bytes, str]]:
        """Drop every buffered descendant of a dropped op (they can never be delivered)."""
        dropped = []
        stack = [op_id]
        while stack:
            for child_id in self._waiting.pop(stack.pop(), ()):
                if child_id in self._buffer:
                    self._forget_buffered(child_id)
                    dropped.append(self._drop(child_id, PARENT_DROPPED))
                    stack.append(child_id)
        return dropped

    def _forget_buffered(self, op_id: bytes) -> None:
        signed = self._buffer.pop(op_id)
        self._unmet.pop(op_id, None)
        for parent in signed.op.parents:
            waiters = self._waiting.get(parent)
            if waiters is not None:
                waiters.discard(op_id)
                if not waiters:
                    del self._waiting[parent]

    def _evict_oldest(self) -> None:
        self._forget_buffered(next(iter(self._buffer)))
        self.evicted_total += 1
