"""The causal DAG: lamport and chain rules, duplicates, the bounded causal buffer and what it reports."""

from __future__ import annotations

import pytest

from kith.identity.keys import MemberIdentity
from kith.sync import dag as dag_module
from kith.sync.causal import CausalIndex, OpMeta
from kith.sync.dag import CausalDag
from kith.sync.ops import Op, SignedOp

ALICE = MemberIdentity("alice", bytes([1]) * 32, bytes([2]) * 32, 0)
CIRCLE = bytes([9]) * 16
OTHER_CIRCLE = bytes([8]) * 16
PEOPLE = [MemberIdentity(f"p{i}", bytes([i + 10]) * 32, bytes([i + 110]) * 32, 0) for i in range(64)]


def make(
    parents: tuple[SignedOp, ...] = (),
    *,
    lamport: int | None = None,
    circle: bytes = CIRCLE,
    n: int = 0,
    author: MemberIdentity | None = None,
    seq: int | None = None,
    size: int = 0,
) -> SignedOp:
    """An op by the n-th person (each their first op) unless ``author``/``seq`` say otherwise."""
    if lamport is None:
        lamport = 1 + max((p.op.lamport for p in parents), default=0)
    who = author or PEOPLE[n % len(PEOPLE)]
    if seq is None:
        seq = 1 + max((p.op.seq for p in parents if p.op.author == who.member_id), default=0)
    ids = tuple(sorted(p.id for p in parents))
    body = {"text": f"op {n}" + "x" * size, "reply_to": None, "content_warning": None, "urgent": False}
    return SignedOp.create(Op(circle, who.member_id, ids, lamport, n, "msg.post", body, seq=seq), who)


def chain(length: int) -> list[SignedOp]:
    ops = [make(n=0)]
    for n in range(1, length):
        ops.append(make((ops[-1],), n=n))
    return ops


def test_in_order_ops_are_delivered_and_become_heads() -> None:
    dag = CausalDag(CIRCLE)
    root = make()
    a, b = make((root,), n=1), make((root,), n=2)
    assert dag.add(root).delivered == (root,)
    assert dag.add(a).delivered == (a,)
    assert dag.add(b).delivered == (b,)
    assert dag.heads() == tuple(sorted((a.id, b.id)))
    merge = make((a, b), n=3)
    assert dag.next_position() == (merge.op.parents, merge.op.lamport)
    dag.add(merge)
    assert dag.heads() == (merge.id,)
    assert dag.lamport_of(merge.id) == 3


def test_duplicates_are_no_ops() -> None:
    dag = CausalDag(CIRCLE)
    root = make()
    dag.add(root)
    outcome = dag.add(root)
    assert outcome.duplicate and not outcome.delivered
    child = make((make(n=5),), n=6)
    dag.add(child)
    assert dag.add(child).duplicate  # a buffered op is a duplicate too
    assert dag.buffered_count == 1


@pytest.mark.parametrize("wrong", [2, 4, 8])
def test_lamport_must_be_one_more_than_the_parents_maximum(wrong: int) -> None:
    dag = CausalDag(CIRCLE)
    root, middle = chain(2)
    dag.add(root)
    dag.add(middle)
    bad = make((root, middle), lamport=wrong, n=9)  # correct would be 3
    outcome = dag.add(bad)
    assert outcome.delivered == ()
    assert outcome.dropped == ((bad.id, dag_module.BAD_LAMPORT),)
    assert bad.id not in dag
    # a descendant of a dropped op is dropped at once instead of waiting forever
    child = make((bad,), n=10)
    assert dag.add(child).dropped == ((child.id, dag_module.PARENT_DROPPED),)


def test_ops_of_another_circle_are_dropped_with_what_waits_for_them() -> None:
    dag = CausalDag(CIRCLE)
    stranger = make(circle=OTHER_CIRCLE)
    waiting = make((stranger,), n=1)
    assert dag.add(waiting).buffered
    assert dag.add(stranger).dropped == (
        (stranger.id, dag_module.WRONG_CIRCLE),
        (waiting.id, dag_module.PARENT_DROPPED),
    )
    assert stranger.id not in dag and dag.buffered_count == 0 and dag.missing() == frozenset()


def test_missing_parents_are_buffered_and_reported_then_released_in_causal_order() -> None:
    ops = chain(5)
    dag = CausalDag(CIRCLE)
    dag.add(ops[0])
    outcome = dag.add(ops[4])
    assert outcome.buffered and outcome.missing == {ops[3].id}
    outcome = dag.add(ops[2])
    assert outcome.buffered and outcome.missing == {ops[1].id}
    assert dag.missing() == {ops[1].id, ops[3].id}
    outcome = dag.add(ops[3])
    assert outcome.buffered and outcome.missing == frozenset()  # its parent is buffered, not missing
    assert dag.missing() == {ops[1].id}
    outcome = dag.add(ops[1])
    assert outcome.delivered == tuple(ops[1:])
    assert dag.buffered_count == 0 and dag.missing() == frozenset()
    assert dag.heads() == (ops[4].id,)


def test_a_bad_lamport_discovered_on_release_drops_the_waiting_descendants() -> None:
    root = make()
    bad = make((root,), lamport=5, n=1)
    child = make((bad,), n=2)
    grandchild = make((child,), n=3)
    dag = CausalDag(CIRCLE)
    dag.add(grandchild)
    dag.add(child)
    dag.add(bad)
    outcome = dag.add(root)
    assert outcome.delivered == (root,)
    assert {op_id for op_id, _ in outcome.dropped} == {bad.id, child.id, grandchild.id}
    assert dag.buffered_count == 0 and dag.missing() == frozenset()


def test_a_full_buffer_evicts_the_oldest_and_counts_it() -> None:
    ops = chain(6)
    dag = CausalDag(CIRCLE, max_buffered=2)
    dag.add(ops[0])
    dag.add(ops[3])
    dag.add(ops[4])
    outcome = dag.add(ops[5])
    assert outcome.evicted == 1 and dag.evicted_total == 1
    assert dag.buffered_count == 2
    assert not dag.is_buffered(ops[3].id)
    assert dag.missing() == {ops[3].id}  # the evicted op is missing again; nothing waits for ops[2] now
    dag.add(ops[1])
    dag.add(ops[2])
    assert dag.add(ops[3]).delivered == (ops[3], ops[4], ops[5])
    assert dag.heads() == (ops[5].id,)


def test_known_ops_can_live_outside_memory() -> None:
    ops = chain(3)
    stored = {op.id: OpMeta(op.op.lamport, op.op.author, op.op.seq, op.op.parents) for op in ops[:2]}
    dag = CausalDag(CIRCLE, index=CausalIndex(stored.get), heads=[(ops[1].id, 2)])
    assert dag.add(ops[0]).duplicate
    assert dag.add(ops[2]).delivered == (ops[2],)
    assert dag.heads() == (ops[2].id,)


def test_next_position_cites_at_most_sixteen_newest_heads() -> None:
    root = make()
    dag = CausalDag(CIRCLE)
    dag.add(root)
    siblings = [make((root,), n=i) for i in range(1, 21)]
    for sibling in siblings:
        dag.add(sibling)
    parents, lamport = dag.next_position()
    assert len(parents) == 16 and list(parents) == sorted(parents) and lamport == 3
    assert CausalDag(CIRCLE).next_position() == ((), 1)


def test_an_authors_ops_must_form_a_chain() -> None:
    """seq 1 cites none of the author's ops; every later op cites exactly their previous one."""
    dag = CausalDag(CIRCLE)
    root = make(n=1)
    first = make((root,), author=ALICE)
    dag.add(root)
    assert dag.add(first).delivered == (first,)
    second = make((first,), author=ALICE)
    assert second.op.seq == 2 and dag.add(second).delivered == (second,)
    skipping = make((second,), author=ALICE, seq=4, n=5)
    restarting = make((second,), author=ALICE, seq=1, n=6)
    orphan = make((root,), author=ALICE, seq=3, n=7)  # cites none of its own: not its first op
    for bad in (skipping, restarting, orphan):
        assert dag.add(bad).dropped == ((bad.id, dag_module.BAD_SEQ),)
    # a fork (two ops numbered 2) follows the rule, and is the fold's to record
    fork = make((first,), author=ALICE, n=8)
    assert fork.op.seq == 2 and dag.add(fork).delivered == (fork,)
    merging_own_fork = make((second, fork), author=ALICE, seq=3, n=9)
    assert dag.add(merging_own_fork).dropped == ((merging_own_fork.id, dag_module.BAD_SEQ),)


def test_next_position_cites_what_it_is_told_first() -> None:
    root = make()
    dag = CausalDag(CIRCLE)
    dag.add(root)
    siblings = [make((root,), n=i) for i in range(1, 21)]
    for sibling in siblings:
        dag.add(sibling)
    oldest = min(siblings, key=lambda s: (s.op.lamport, s.id))
    parents, _lamport = dag.next_position(cite=(root.id, oldest.id))
    assert root.id in parents and oldest.id in parents and len(parents) == 16


def test_one_source_cannot_fill_the_buffer_or_push_out_others() -> None:
    dag = CausalDag(CIRCLE, max_source_bytes=200_000, max_buffered_bytes=400_000)
    honest = make((make(n=40),), n=41)
    dag.add(honest, "honest-peer")
    over = False
    for i in range(60):
        outcome = dag.add(make((make(n=i, size=9000),), n=i + 1, size=9000), "flooder")
        over = over or outcome.over_share
    assert over
    assert dag.is_buffered(honest.id)
    assert dag.buffered_bytes <= 400_000
