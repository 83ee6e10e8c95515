"""What a replica needs from durable storage, as an interface: the pure core does no I/O.

`sync.replica.CircleReplica` writes every op that enters a circle's DAG to an `OpCache`
before folding it, reads older ops back when a late op needs a re-fold, and saves and
opens snapshots of the folded state. The node gives it the real one
(`kith.p2pnet.statecache.StateCache`, an encrypted SQLite file); tests may give it anything that
keeps these promises:

* what ``put_ops`` wrote is read back by every call after it returns; it need not be durable
  yet (the node's cache fsyncs at checkpoints, in a worker thread), but a power loss may only
  undo the newest writes, never keep a snapshot without the ops written before it (the
  ops after a snapshot come again from wherever the caller's cursor points);
* ``iter_ops`` yields a circle's ops in fold order ``(lamport, id)`` within the bounds;
* ``ops_since`` returns the ops written after a snapshot's watermark, in write order;
* ``meta_of`` answers for every op ``put_ops`` was given (None for others).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from kith.sync.causal import OpMeta
    from kith.sync.ops import SignedOp
    from kith.sync.state import CircleState, FoldKey


@dataclass(frozen=True, slots=True)
class Snapshot:
    picture: dict[str, Any]
    """The canonical state (`CircleState.canonical`) at the snapshot's position."""
    heads: tuple[tuple[bytes, int], ...]
    watermark: int
    """The highest op seq of this circle the snapshot's op set includes."""
    cursor: int
    chains: dict[bytes, tuple[int, bytes]]
    """Where each author's chain stood over the snapshot's op set (`sync.causal`)."""
    forks: tuple[tuple[bytes, int], ...]


class OpCache(Protocol):
    def put_ops(self, circle_id: bytes, ops: Iterable[SignedOp]) -> None: ...

    def meta_of(self, circle_id: bytes, op_id: bytes) -> OpMeta | None: ...

    def iter_ops(
        self,
        circle_id: bytes,
        *,
        after: FoldKey | None = None,
        upto: FoldKey | None = None,
        max_seq: int | None = None,
    ) -> Iterator[SignedOp]: ...

    def ops_since(self, circle_id: bytes, seq: int) -> list[SignedOp]: ...

    def save_snapshot(
        self, circle_id: bytes, state: CircleState, heads: Iterable[tuple[bytes, int]], cursor: int, *, tail: int
    ) -> None: ...

    def load_snapshot(self, circle_id: bytes) -> Snapshot | None: ...
