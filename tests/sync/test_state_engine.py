"""The fold engine itself: fast path, rollback, batches, the undo window, re-folds, restore."""

from __future__ import annotations

from typing import Any

import pytest

from kith.identity.errors import LocalProtocolError
from kith.sync.ops import Op, SignedOp
from kith.sync.state import CircleState, fold_circle_state, fold_key


def _posts(circle: Any, count: int) -> list[SignedOp]:
    return [circle.post("bob", f"post {n}") for n in range(count)]


def _all(circle: Any) -> list[SignedOp]:
    return sorted(circle.replica.ops(), key=fold_key)


def test_in_order_ops_take_the_fast_path(circle: Any) -> None:
    _posts(circle, 5)
    state = CircleState(circle.genesis.op.circle)
    assert sum(state.add(op) for op in _all(circle)) == 0
    assert state.applied_count == len(_all(circle)) and state.last_key == fold_key(_all(circle)[-1])


def _late_post(circle: Any, who: str, after: SignedOp, n: int = 0) -> SignedOp:
    """A post by ``who`` made on a device that had only seen up to ``after``: concurrent with
    everything since, so it sorts right after ``after`` (ops arrive parents first, as ever)."""
    member = circle.member(who)
    seq, cite = circle.state.authoring(member)
    parents = tuple(sorted({after.id, *cite}))
    lamport = 1 + max(circle.replica.dag.lamport_of(p) for p in parents)
    body = circle.sign(who, "msg.post", {"text": f"late {n}", "reply_to": None, "content_warning": None,
                                         "urgent": False}).op.body  # fmt: skip
    op = Op(circle.state.circle_id, member, parents, lamport, 3, "msg.post", body, seq=seq)
    return SignedOp.decode(SignedOp.create(op, circle.people[who]).data)


def test_a_late_op_replays_only_what_follows_it(circle: Any) -> None:
    _posts(circle, 10)
    ops = _all(circle)
    state = fold_circle_state(circle.genesis.op.circle, ops)
    late = _late_post(circle, "carol", ops[-5])
    following = sum(1 for op in ops if fold_key(op) > fold_key(late))
    assert following in (4, 5)
    assert state.add(late) == following
    assert state.encode() == fold_circle_state(circle.genesis.op.circle, [*ops, late]).encode()
    assert state.add(late) == 0  # a duplicate changes nothing


def test_a_batch_of_late_ops_rolls_back_once(circle: Any) -> None:
    _posts(circle, 12)
    ops = _all(circle)
    late = [_late_post(circle, "carol", ops[-9]), _late_post(circle, "dana", ops[-6], 1)]
    state = fold_circle_state(circle.genesis.op.circle, ops)
    following = sum(1 for op in ops if fold_key(op) > min(fold_key(op) for op in late))
    assert state.add_many(reversed(late)) == following
    assert state.encode() == fold_circle_state(circle.genesis.op.circle, [*ops, *late]).encode()


def test_the_undo_window_is_bounded_and_older_ops_refold(circle: Any) -> None:
    _posts(circle, 30)
    ops = _all(circle)
    state = CircleState(circle.genesis.op.circle, undo_window=4)
    state.add_many(ops)
    assert len(state._keys) <= 8 and len(state._marks) == len(state._keys)
    late = _late_post(circle, "carol", ops[3])
    assert state.window_start is not None and fold_key(late) < state.window_start
    state.add(late)
    assert state.full_refolds == 1
    everything = sorted([*ops, late], key=fold_key)
    assert state.encode() == fold_circle_state(circle.genesis.op.circle, everything).encode()
    assert list(state.ops_in_fold_order()) == everything


def test_bad_construction_is_our_bug() -> None:
    with pytest.raises(LocalProtocolError):
        CircleState(bytes(15))
    with pytest.raises(LocalProtocolError):
        CircleState(bytes(16), undo_window=0)
