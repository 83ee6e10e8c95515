"""The causal DAG: lamport rule, duplicates, the bounded causal buffer and what it reports."""

from __future__ import annotations

import pytest

from identity.keys import MemberIdentity
from sync import dag as dag_module
from sync.dag import CausalDag
from sync.ops import Op, SignedOp

ALICE = MemberIdentity("alice", bytes([1]) * 32, bytes([2]) * 32, 0)
CIRCLE = bytes([9]) * 16
OTHER_CIRCLE = bytes([8]) * 16


def make(
    parents: tuple[SignedOp, ...] = (), *, lamport: int | None = None, circle: bytes = CIRCLE, n: int = 0
) -> SignedOp:
    if lamport is None:
        lamport = 1 + max((p.op.lamport for p in parents), default=0)
    ids = tuple(sorted(p.id for p in parents))
    body = {"text": f"op {n}", "reply_to": None, "content_warning": None, "urgent": False}
    return SignedOp.create(Op(circle, ALICE.member_id, ids, lamport, n, "msg.post", body), ALICE)


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
    stored = {op.id: op.op.lamport for op in ops[:2]}
    dag = CausalDag(CIRCLE, lookup=stored.get, heads=[(ops[1].id, 2)])
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
