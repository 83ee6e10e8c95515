"""One node's replica of one circle: causal DAG + folded state (+ optional state cache).

The network layer decrypts envelopes, decodes and verifies the signed ops, and hands
them to `CircleReplica.ingest` / `ingest_many`; it gets back what entered the circle,
what waits for missing parents (and which ids to fetch), and what was refused. The
replica holds no keys and knows nothing of envelopes or sockets.

With a `OpCache`, every op that enters the DAG is written to the cache (one
transaction per call) *before* it is folded, so the cache always holds every op the
state has folded; that is what lets the state keep only its undo window in memory and
re-read older ops when a late op needs a full re-fold.

Ops given to `ingest` must be exactly what `SignedOp.decode` returns: the fold checks
body types strictly, and only decoded values are guaranteed to look the same on every
node. Ops you author go through `author_op`, which round-trips them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kith.identity.errors import LocalProtocolError
from kith.sync.causal import CausalIndex
from kith.sync.content import NO_READER, ContentReader
from kith.sync.dag import DEFAULT_MAX_BUFFERED, CausalDag
from kith.sync.ops import Op, SignedOp
from kith.sync.state import DEFAULT_UNDO_WINDOW, CircleState, FoldKey
from kith.sync.views import CircleViews, build_views

if TYPE_CHECKING:
    from kith.identity.keys import MemberIdentity
    from kith.sync.cache import OpCache

DEFAULT_SNAPSHOT_TAIL = 5_000
"""Ops re-applied when a snapshot is opened, so late ops right after a restart stay cheap."""


@dataclass(frozen=True, slots=True)
class IngestResult:
    applied: tuple[SignedOp, ...]
    """Ops that entered the circle's op set and were folded (in causal order)."""
    rejected: tuple[tuple[bytes, str], ...]
    """(op id, reason) of applied ops the fold rejected: kept, listed, without effect."""
    dropped: tuple[tuple[bytes, str], ...]
    """(op id, reason) of ops refused for good by the DAG (not part of the op set)."""
    buffered: tuple[bytes, ...]
    """Ids of ops now waiting in the causal buffer."""
    missing: frozenset[bytes]
    """Parent ids to fetch from peers."""
    duplicates: int
    evicted: int
    replayed: int
    """Ops re-applied because late ops sorted before them (0 on the fast path)."""
    over_share: bool = False
    """The sender had more than its share of the causal buffer waiting (see `sync.dag`)."""


class CircleReplica:
    def __init__(
        self,
        circle_id: bytes,
        *,
        cache: OpCache | None = None,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
        undo_window: int = DEFAULT_UNDO_WINDOW,
    ) -> None:
        self.circle_id = circle_id
        self._cache = cache
        lookup = None if cache is None else lambda op_id: cache.meta_of(circle_id, op_id)
        self.index = CausalIndex(lookup)
        self.dag = CausalDag(circle_id, max_buffered=max_buffered, index=self.index)
        history = None if cache is None else self._history
        self.state = CircleState(
            circle_id, undo_window=undo_window, history=history, causal=self.index, causal_order=True
        )

    def _history(self, upto: FoldKey) -> Iterator[SignedOp]:
        if self._cache is None:
            raise LocalProtocolError("this replica has no state cache")
        return self._cache.iter_ops(self.circle_id, upto=upto)

    @classmethod
    def open(
        cls,
        cache: OpCache,
        circle_id: bytes,
        *,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
        undo_window: int = DEFAULT_UNDO_WINDOW,
    ) -> tuple[CircleReplica, int]:
        """Open a circle from its cached snapshot (or its cached ops); return (replica, cursor).

        Nothing is re-verified: the cache is authenticated encryption under our own key.
        Ops written after the snapshot are folded in; older ops stay on disk until a late
        op needs them.
        """
        replica = cls(circle_id, cache=cache, max_buffered=max_buffered, undo_window=undo_window)
        snapshot = cache.load_snapshot(circle_id)
        watermark = 0
        cursor = 0
        if snapshot is not None:
            replica.state = CircleState.restore(
                circle_id,
                snapshot.picture,
                undo_window=undo_window,
                history=replica._history,
                causal=replica.index,
                causal_order=True,
            )
            replica.dag = CausalDag(circle_id, max_buffered=max_buffered, index=replica.index, heads=snapshot.heads)
            replica.index.restore_chains(snapshot.chains, snapshot.forks)
            watermark, cursor = snapshot.watermark, snapshot.cursor
            after = replica.state.last_key
            for signed in cache.iter_ops(circle_id, after=after, max_seq=watermark):
                replica.state.add(signed)
        newer = cache.ops_since(circle_id, watermark)
        for signed in newer:
            replica.dag.restore_delivered(signed)
        replica.state.add_many(newer)
        return replica, cursor

    # --- ingesting -------------------------------------------------------------------

    def ingest(self, signed: SignedOp, source: str = "") -> IngestResult:
        return self.ingest_many((signed,), source)

    def ingest_bytes(self, data: bytes) -> IngestResult:
        """Decode and verify signed-op bytes, then ingest; raises `RemoteProtocolError` if bad."""
        return self.ingest(SignedOp.decode(data))

    def ingest_many(self, ops: Iterable[SignedOp], source: str = "") -> IngestResult:
        """Ingest verified ops in any order (one cache transaction for the whole batch).

        ``source`` names who sent them (a peer id), so one sender cannot fill the causal
        buffer with ops whose parents never come (`IngestResult.over_share` says it tried).
        """
        applied: list[SignedOp] = []
        dropped: list[tuple[bytes, str]] = []
        buffered: list[bytes] = []
        missing: set[bytes] = set()
        duplicates = evicted = 0
        over_share = False
        for signed in ops:
            outcome = self.dag.add(signed, source)
            applied.extend(outcome.delivered)
            dropped.extend(outcome.dropped)
            duplicates += outcome.duplicate
            evicted += outcome.evicted
            over_share = over_share or outcome.over_share
            if outcome.buffered:
                buffered.append(signed.id)
            missing |= outcome.missing
        if applied and self._cache is not None:
            self._cache.put_ops(self.circle_id, applied)
        replayed = self.state.add_many(applied)
        rejected = tuple(
            (signed.id, reason) for signed in applied if (reason := self.state.is_rejected(signed.id)) is not None
        )
        still_buffered = tuple(op_id for op_id in buffered if self.dag.is_buffered(op_id))
        missing = {op_id for op_id in missing if op_id not in self.dag and not self.dag.is_buffered(op_id)}
        return IngestResult(
            tuple(applied),
            rejected,
            tuple(dropped),
            still_buffered,
            frozenset(missing),
            duplicates,
            evicted,
            replayed,
            over_share,
        )

    def next_op(self, author: bytes, *, cite: Iterable[bytes] = ()) -> tuple[tuple[bytes, ...], int, int]:
        """(parents, lamport, seq) for ``author``'s next op: it continues their chain, cites
        what they must acknowledge (`CircleState.authoring`) and ``cite``, and the newest heads."""
        seq, required = self.state.authoring(author)
        parents, lamport = self.dag.next_position(cite=(*required, *cite), author=author)
        return parents, lamport, seq

    def author_op(
        self, author: MemberIdentity, kind: str, body: dict[str, Any], *, ts: int, cite: Iterable[bytes] = ()
    ) -> SignedOp:
        """Sign a new op on top of this replica's heads (not ingested yet).

        The op is round-tripped through `SignedOp.decode`, so it folds here exactly as on
        every other node.
        """
        cite = (*cite, *self.state.citations_for(kind, body))
        parents, lamport, seq = self.next_op(author.member_id, cite=cite)
        op = Op(self.circle_id, author.member_id, parents, lamport, ts, kind, body, seq=seq)
        return SignedOp.decode(SignedOp.create(op, author).data)

    # --- reading ---------------------------------------------------------------------

    def state_hash(self) -> bytes:
        return self.state.state_hash()

    def views(
        self, *, now: int | None = None, feed_limit: int | None = 50, reader: ContentReader | None = None
    ) -> CircleViews:
        return build_views(self.state, now=now, feed_limit=feed_limit, reader=reader or NO_READER)

    def has(self, op_id: bytes) -> bool:
        """Is the op in the DAG (buffered ops are not)?"""
        return op_id in self.dag

    def missing(self) -> frozenset[bytes]:
        return self.dag.missing()

    def ops(self) -> Iterator[SignedOp]:
        """Every op of the circle's op set here, in fold order."""
        if self._cache is not None:
            return self._cache.iter_ops(self.circle_id)
        return self.state.ops_in_fold_order()

    # --- persistence -----------------------------------------------------------------

    def save(self, cursor: int, *, tail: int = DEFAULT_SNAPSHOT_TAIL) -> None:
        """Write an encrypted snapshot of the state with the caller's cursor."""
        if self._cache is None:
            raise LocalProtocolError("this replica has no state cache")
        self._cache.save_snapshot(self.circle_id, self.state, self.dag.head_lamports(), cursor, tail=tail)
