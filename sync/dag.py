"""The causal DAG of a circle's ops: heads, the lamport and chain rules, the causal buffer.

An op enters the DAG only once every parent it cites is in the DAG; that is what makes
"the state at an op's position" include everything its author had seen. On entry:

* its lamport must be ``1 + max(parent lamports)`` (an op without parents has lamport 1;
  `Op` enforces that part);
* its ``seq`` must continue its author's chain: an author's first op (``seq`` 1) cites no
  op of theirs, any later op cites exactly one, the one numbered ``seq - 1``. So each
  author's ops form a hash chain, and their fold order is their chain order.

An op whose parents are missing waits in a bounded **causal buffer**, and the DAG reports
which ids are missing so the network layer can fetch them. The buffer is bounded in ops
and in bytes, overall and per source (the peer that sent the op): a source over its share
loses its own oldest waiting ops first and is reported (``over_share``) so the node can
penalise it; a peer can make us forget ops (we fetch them again later), never grow memory
without bound, and never push out what honest peers sent.

An op that breaks the lamport or chain rule, or belongs to another circle, is dropped: it
is not part of the circle's op set on any node. Its id is remembered (boundedly) so
descendants citing it are dropped at once instead of waiting for a parent that will never
come.

Duplicates are no-ops. Known ops can live outside memory: the `CausalIndex` looks up
(e.g. in the state cache) ops persisted in an earlier run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from kith.identity.errors import LocalProtocolError
from kith.sync import limits
from kith.sync.causal import CausalIndex, OpMeta
from kith.sync.ops import SignedOp

DEFAULT_MAX_BUFFERED = 10_000
DEFAULT_MAX_BUFFERED_BYTES = 8 << 20
"""Signed-op bytes waiting for parents in one circle (about twice that in memory, decoded)."""
DEFAULT_MAX_SOURCE_BYTES = 2 << 20
"""What one source (peer) may have waiting in one circle's buffer."""
DEFAULT_MAX_DROPPED_IDS = 10_000

WRONG_CIRCLE = "op belongs to another circle"
BAD_LAMPORT = "lamport is not 1 + max(parent lamports)"
BAD_SEQ = "seq does not continue its author's chain"
PARENT_DROPPED = "a parent op was dropped"


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
    over_share: bool = False
    """The op's source had more than its share of the buffer waiting (its own oldest ops
    were evicted): a peer flooding us with ops whose parents never come."""


class CausalDag:
    def __init__(
        self,
        circle_id: bytes,
        *,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
        max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES,
        max_source_bytes: int = DEFAULT_MAX_SOURCE_BYTES,
        index: CausalIndex | None = None,
        heads: Iterable[tuple[bytes, int]] = (),
    ) -> None:
        if len(circle_id) != limits.CIRCLE_ID_BYTES:
            raise LocalProtocolError("a circle id is 16 bytes")
        if max_buffered < 1 or max_buffered_bytes < limits.MAX_OP_BYTES or max_source_bytes < limits.MAX_OP_BYTES:
            raise LocalProtocolError("the causal buffer must hold at least one op")
        self.circle_id = circle_id
        self.max_buffered = max_buffered
        self.max_buffered_bytes = max_buffered_bytes
        self.max_source_bytes = max_source_bytes
        self.index = index if index is not None else CausalIndex()
        self._heads: dict[bytes, int] = dict(heads)
        self._buffer: dict[bytes, tuple[SignedOp, str]] = {}
        """Waiting ops, oldest first, with the source that sent them."""
        self._buffered_bytes = 0
        self._source_bytes: Counter[str] = Counter()
        self._waiting: dict[bytes, set[bytes]] = {}
        self._unmet: dict[bytes, int] = {}
        self._dropped: dict[bytes, str] = {}
        self.evicted_total = 0
        self.dropped_total = 0

    # --- queries -------------------------------------------------------------------

    def meta(self, op_id: bytes) -> OpMeta | None:
        """(lamport, author, seq, parents) of an op in the DAG, or None if it is not in it."""
        return self.index.get(op_id)

    def lamport_of(self, op_id: bytes) -> int | None:
        """The lamport of an op in the DAG, or None if it is not in the DAG."""
        meta = self.index.get(op_id)
        return None if meta is None else meta.lamport

    def __contains__(self, op_id: object) -> bool:
        return type(op_id) is bytes and op_id in self.index

    def is_buffered(self, op_id: bytes) -> bool:
        return op_id in self._buffer

    @property
    def buffered_count(self) -> int:
        return len(self._buffer)

    @property
    def buffered_bytes(self) -> int:
        return self._buffered_bytes

    def heads(self) -> tuple[bytes, ...]:
        """Ops no other op in the DAG cites, sorted by id."""
        return tuple(sorted(self._heads))

    def head_lamports(self) -> tuple[tuple[bytes, int], ...]:
        return tuple(sorted(self._heads.items()))

    def next_position(
        self, *, cite: Iterable[bytes] = (), author: bytes | None = None
    ) -> tuple[tuple[bytes, ...], int]:
        """(parents, lamport) for a new op: the ops in ``cite`` (which must be in the DAG:
        the author's previous op, ops its authority rests on) and as many of the newest
        heads as fit in 16 parents, sorted by id. Heads by ``author`` are left out: the
        one op of theirs an op may cite is their previous one (in ``cite``)."""
        chosen: dict[bytes, int] = {}
        for op_id in cite:
            lamport = self.lamport_of(op_id)
            if lamport is None:
                raise LocalProtocolError("a new op can only cite ops in the DAG")
            chosen[op_id] = lamport
        if len(chosen) > limits.MAX_PARENTS:
            raise LocalProtocolError(f"a new op cites at most {limits.MAX_PARENTS} parents")
        newest = sorted(self._heads.items(), key=lambda item: (item[1], item[0]), reverse=True)
        for op_id, lamport in newest:
            if len(chosen) >= limits.MAX_PARENTS:
                break
            if author is not None and op_id not in chosen:
                meta = self.index.get(op_id)
                if meta is not None and meta.author == author:
                    continue
            chosen.setdefault(op_id, lamport)
        if not chosen:
            return (), 1
        return tuple(sorted(chosen)), 1 + max(chosen.values())

    def missing(self) -> frozenset[bytes]:
        """Every id the buffer waits for that is neither in the DAG nor buffered."""
        return frozenset(parent for parent in self._waiting if parent not in self._buffer)

    # --- adding --------------------------------------------------------------------

    def add(self, signed: SignedOp, source: str = "") -> DagOutcome:
        """Add a verified op; ``source`` names who sent it (a peer id), for the buffer's shares."""
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
        size = len(signed.data)
        evicted = 0
        over_share = False
        while self._source_bytes[source] + size > self.max_source_bytes:
            over_share = True
            self._evict_oldest(source)
            evicted += 1
        while len(self._buffer) >= self.max_buffered or self._buffered_bytes + size > self.max_buffered_bytes:
            self._evict_oldest()
            evicted += 1
        self._buffer[op_id] = (signed, source)
        self._buffered_bytes += size
        self._source_bytes[source] += size
        self._unmet[op_id] = len(unmet)
        for parent in unmet:
            self._waiting.setdefault(parent, set()).add(op_id)
        missing = frozenset(parent for parent in unmet if parent not in self._buffer)
        return DagOutcome((), (), True, False, missing, evicted, over_share)

    def _refuse(self, op_id: bytes, reason: str) -> DagOutcome:
        """Drop an op, and every buffered op waiting for it."""
        dropped = (self._drop(op_id, reason), *self._drop_waiting_on(op_id))
        return DagOutcome((), dropped, False, False, frozenset(), 0)

    def restore_delivered(self, signed: SignedOp) -> None:
        """Record an op that entered the DAG in an earlier run (no checks: it passed them then)."""
        self._admit(signed)

    def _admit(self, signed: SignedOp) -> None:
        op = signed.op
        self.index.add(signed)
        for parent in op.parents:
            self._heads.pop(parent, None)
        self._heads[signed.id] = op.lamport

    def _breaks_chain(self, signed: SignedOp) -> bool:
        """Does the op fail to continue its author's chain (see the module docstring)?"""
        op = signed.op
        own = []
        for parent in op.parents:
            meta = self.index.get(parent)
            if meta is not None and meta.author == op.author:
                own.append(meta.seq)
        if op.seq == 1:
            return bool(own)
        return len(own) != 1 or own[0] != op.seq - 1

    def _deliver(self, first: SignedOp) -> tuple[tuple[SignedOp, ...], tuple[tuple[bytes, str], ...]]:
        delivered: list[SignedOp] = []
        dropped: list[tuple[bytes, str]] = []
        ready = [first]
        while ready:
            signed = ready.pop()
            op = signed.op
            reason = None
            if op.parents:
                expected = 1 + max(self.lamport_of(parent) or 0 for parent in op.parents)
                if op.lamport != expected:
                    reason = BAD_LAMPORT
            if reason is None and self._breaks_chain(signed):
                reason = BAD_SEQ
            if reason is not None:
                dropped.append(self._drop(signed.id, reason))
                dropped.extend(self._drop_waiting_on(signed.id))
                continue
            self._admit(signed)
            delivered.append(signed)
            for child_id in self._waiting.pop(signed.id, ()):
                self._unmet[child_id] -= 1
                if self._unmet[child_id] == 0:
                    del self._unmet[child_id]
                    ready.append(self._take_buffered(child_id))
        return tuple(delivered), tuple(dropped)

    def _take_buffered(self, op_id: bytes) -> SignedOp:
        signed, source = self._buffer.pop(op_id)
        size = len(signed.data)
        self._buffered_bytes -= size
        self._source_bytes[source] -= size
        if not self._source_bytes[source]:
            del self._source_bytes[source]
        return signed

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
        signed = self._take_buffered(op_id)
        self._unmet.pop(op_id, None)
        for parent in signed.op.parents:
            waiters = self._waiting.get(parent)
            if waiters is not None:
                waiters.discard(op_id)
                if not waiters:
                    del self._waiting[parent]

    def _evict_oldest(self, source: str | None = None) -> None:
        """Forget the oldest waiting op (of ``source``, if given)."""
        if source is None:
            victim = next(iter(self._buffer))
        else:
            victim = next(op_id for op_id, (_signed, sender) in self._buffer.items() if sender == source)
        self._forget_buffered(victim)
        self.evicted_total += 1
