"""What an op had seen: per-op metadata and bounded walks of a circle's causal past.

Theory of operation
-------------------
The fold orders ops by ``(lamport, id)``, a position their authors choose (by choosing
parents). Who may do what is decided by what an op's author had *seen*, its causal past,
so the fold sometimes asks causal questions: which of these ops are ancestors of that
removal, what is the highest ``seq`` of member B that this op had seen. `CausalIndex`
answers them from each op's ``(lamport, author, seq, parents)``.

Three facts keep the answers cheap:

* an author's ops form a chain (each cites the previous one, `sync.dag`), so "B's op
  number k is in the past of E" implies B's ops 1..k are too, and "the highest seq of B
  that E had seen" is one number (unless B forked: then the question is asked op by op);
* every ancestor of an op has a smaller lamport, so a walk backwards from E can stop at
  the lowest lamport it is looking for;
* an op that entered the DAG after E cannot be in E's past (E's parents all entered
  before E did), which the fold uses for ops arriving late without asking this index.

The index also keeps two facts about the op set that the circle state publishes: where
each author's chain stands (`chains`: their highest seq and that op) and which
``(author, seq)`` were used by two different ops (`forks`: the author forked their own
history, equivocation). Both depend only on which ops are in the set.

Metadata of ops older than this process lives in the state cache and is looked up
through ``lookup`` (and kept). The index never decides anything: it answers questions
about the op set, so every node that holds the same ops gets the same answers.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from typing import NamedTuple

from kith.identity.errors import LocalProtocolError
from kith.sync.ops import SignedOp


class OpMeta(NamedTuple):
    lamport: int
    author: bytes
    seq: int
    parents: tuple[bytes, ...]


_new_meta = tuple.__new__

MetaLookup = Callable[[bytes], "OpMeta | None"]


def meta_of(signed: SignedOp) -> OpMeta:
    op = signed.op
    return OpMeta(op.lamport, op.author, op.seq, op.parents)


class CausalIndex:
    """Metadata of a circle's ops, and walks of their causal pasts.

    Ops are added parents first (a DAG feeds the index, or a fold in causal order), so a
    new op whose seq its author has already reached is a fork, even when the earlier op
    with that seq is only in the state cache.
    """

    def __init__(self, lookup: MetaLookup | None = None) -> None:
        self._meta: dict[bytes, OpMeta] = {}
        self._authors: dict[bytes, bytes] = {}
        """Interned author ids: one bytes object per member, however many ops they wrote."""
        self._lookup = lookup
        self.chains: dict[bytes, tuple[int, bytes]] = {}
        """author -> (highest seq, that op; the smallest id if a fork used it twice)."""
        self.forks: set[tuple[bytes, int]] = set()
        """(author, seq) used by two different ops."""

    def add(self, signed: SignedOp) -> OpMeta:
        known = self._meta.get(signed.id)
        if known is not None:
            return known
        op = signed.op
        author = self._authors.setdefault(op.author, op.author)
        seq = op.seq
        meta = _new_meta(OpMeta, (op.lamport, author, seq, op.parents))  # OpMeta(...), without its checks
        self._meta[signed.id] = meta
        chain = self.chains.get(author)
        if chain is None or seq > chain[0]:
            self.chains[author] = (seq, signed.id)
        else:
            self.forks.add((author, seq))
            if seq == chain[0] and signed.id < chain[1]:
                # Between two forked ops with the highest seq, the smaller id (so the
                # table does not depend on which arrived first).
                self.chains[author] = (seq, signed.id)
        return meta

    def restore_chains(self, chains: dict[bytes, tuple[int, bytes]], forks: Iterable[tuple[bytes, int]]) -> None:
        """Take over where chains stood in a snapshot (ops older than it are not re-added)."""
        for author, chain in chains.items():
            current = self.chains.get(author)
            if current is None or (chain[0], current[1]) > (current[0], chain[1]):
                self.chains[self._authors.setdefault(author, author)] = chain
        self.forks.update(forks)

    def forked(self, author: bytes) -> bool:
        return any(forker == author for forker, _seq in self.forks)

    def get(self, op_id: bytes) -> OpMeta | None:
        meta = self._meta.get(op_id)
        if meta is None and self._lookup is not None:
            meta = self._lookup(op_id)
            if meta is not None:
                author = self._authors.setdefault(meta.author, meta.author)
                meta = meta._replace(author=author)
                self._meta[op_id] = meta
        return meta

    def __contains__(self, op_id: object) -> bool:
        return type(op_id) is bytes and self.get(op_id) is not None

    def __len__(self) -> int:
        return len(self._meta)

    # --- walks ---------------------------------------------------------------------

    def _walk(self, start: bytes, floor: int) -> Iterable[tuple[bytes, OpMeta]]:
        """The strict ancestors of ``start`` with lamport >= ``floor``, highest lamport first."""
        meta = self.get(start)
        if meta is None:
            return
        heap: list[tuple[int, bytes]] = []
        seen: set[bytes] = set()
        for parent in meta.parents:
            if parent not in seen:
                seen.add(parent)
                parent_meta = self.get(parent)
                if parent_meta is not None and parent_meta.lamport >= floor:
                    heapq.heappush(heap, (-parent_meta.lamport, parent))
        while heap:
            _neg, op_id = heapq.heappop(heap)
            current = self.get(op_id)
            if current is None:
                raise LocalProtocolError("an op in the causal index lost its metadata")
            yield op_id, current
            for parent in current.parents:
                if parent not in seen:
                    seen.add(parent)
                    parent_meta = self.get(parent)
                    if parent_meta is not None and parent_meta.lamport >= floor:
                        heapq.heappush(heap, (-parent_meta.lamport, parent))

    def which_in_past(self, candidates: Iterable[bytes], of: bytes) -> set[bytes]:
        """The candidates that are ancestors of ``of`` (walks down to the lowest candidate)."""
        wanted: dict[bytes, int] = {}
        for candidate in candidates:
            meta = self.get(candidate)
            if meta is not None:
                wanted[candidate] = meta.lamport
        if not wanted:
            return set()
        floor = min(wanted.values())
        found: set[bytes] = set()
        for op_id, _meta in self._walk(of, floor):
            if op_id in wanted:
                found.add(op_id)
                if len(found) == len(wanted):
                    break
        return found

    def seen_among(self, candidates: Iterable[bytes], of: bytes) -> set[bytes]:
        """The candidates that are ``of`` itself or its ancestors.

        Like `which_in_past`, but it stops as soon as every candidate is settled, using
        author chains: meeting author A's op number k settles every candidate of A's with
        seq <= k as seen (unless A forked), and a candidate is unseen once the walk has
        gone below its lamport. So it is cheap when the candidates' authors are active.
        """
        pending: dict[bytes, OpMeta] = {}
        found: set[bytes] = set()
        for candidate in candidates:
            if candidate == of:
                found.add(candidate)
                continue
            meta = self.get(candidate)
            if meta is not None:
                pending[candidate] = meta
        if not pending:
            return found
        by_author: dict[bytes, list[tuple[int, bytes]]] = {}
        for candidate, meta in pending.items():
            if not self.forked(meta.author):
                by_author.setdefault(meta.author, []).append((meta.seq, candidate))
        highest = sorted((-meta.lamport, candidate) for candidate, meta in pending.items())
        floor = -highest[-1][0]
        next_unseen = 0
        for op_id, meta in self._walk(of, floor):
            if op_id in pending:
                found.add(op_id)
                del pending[op_id]
            chain = by_author.get(meta.author)
            if chain:
                for seq, candidate in chain:
                    if seq <= meta.seq and candidate in pending:
                        found.add(candidate)
                        del pending[candidate]
                by_author[meta.author] = [item for item in chain if item[1] in pending]
            while next_unseen < len(highest) and -highest[next_unseen][0] > meta.lamport:
                pending.pop(highest[next_unseen][1], None)  # the walk is below it: not an ancestor
                next_unseen += 1
            if not pending:
                break
        return found

    def latest_seen(self, of: bytes, author: bytes, floor: int = 0) -> OpMeta | None:
        """The highest-lamport op by ``author`` in the past of ``of`` (None if there is none
        with lamport >= ``floor``). For an author who never forked, it has the highest seq."""
        for _op_id, meta in self._walk(of, floor):
            if meta.author == author:
                return meta
        return None
