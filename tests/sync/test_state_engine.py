"""The fold engine itself: fast path, rollback, batches, the undo window, re-folds, restore."""

from __future__ import annotations

from typing import Any

import pytest

from identity.errors import LocalProtocolError, Malformed
from sync.ops import SignedOp
from sync.state import CircleState, fold_circle_state, fold_key


def _posts(circle: Any, count: int) -> list[SignedOp]:
    return [circle.post("bob", f"post {n}") for n in range(count)]


def _all(circle: Any) -> list[SignedOp]:
    return sorted(circle.replica.ops(), key=fold_key)


def test_in_order_ops_take_the_fast_path(circle: Any) -> None:
    _posts(circle, 5)
    state = CircleState(circle.genesis.op.circle)
    assert sum(state.add(op) for op in _all(circle)) == 0
    assert state.applied_count == len(_all(circle)) and state.last_key == fold_key(_all(circle)[-1])


def test_a_late_op_replays_only_what_follows_it(circle: Any) -> None:
    _posts(circle, 10)
    ops = _all(circle)
    state = fold_circle_state(circle.genesis.op.circle, ops[:-4] + ops[-3:])
    assert state.add(ops[-4]) == 3
    assert state.encode() == fold_circle_state(circle.genesis.op.circle, ops).encode()
    assert state.add(ops[-4]) == 0  # a duplicate changes nothing


def test_a_batch_of_late_ops_rolls_back_once(circle: Any) -> None:
    _posts(circle, 12)
    ops = _all(circle)
    late = [ops[-9], ops[-6], ops[-2]]
    state = fold_circle_state(circle.genesis.op.circle, [op for op in ops if op not in late])
    assert state.add_many(reversed(late)) == 6  # the 8 ops after ops[-9], minus the 2 late ones among them
    assert state.encode() == fold_circle_state(circle.genesis.op.circle, ops).encode()


def test_the_undo_window_is_bounded_and_older_ops_refold(circle: Any) -> None:
    _posts(circle, 30)
    ops = _all(circle)
    missing = ops[3]
    state = CircleState(circle.genesis.op.circle, undo_window=4)
    state.add_many(op for op in ops if op is not missing)
    assert len(state._keys) <= 8 and len(state._marks) == len(state._keys)
    assert state.window_start is not None and fold_key(missing) < state.window_start
    state.add(missing)
    assert state.full_refolds == 1
    assert state.encode() == fold_circle_state(circle.genesis.op.circle, ops).encode()
    assert list(state.ops_in_fold_order()) == ops


def test_restore_checks_the_picture_and_needs_a_history_for_older_ops(circle: Any) -> None:
    _posts(circle, 3)
    ops = _all(circle)
    live = fold_circle_state(circle.genesis.op.circle, ops[1:])
    picture = live.canonical()
    with pytest.raises(Malformed):
        CircleState.restore(bytes(16), picture)
    with pytest.raises(Malformed):
        CircleState.restore(circle.genesis.op.circle, {**picture, "v": 2})
    with pytest.raises(Malformed):
        CircleState.restore(circle.genesis.op.circle, {**picture, "members": 5})
    restored = CircleState.restore(circle.genesis.op.circle, picture)
    assert restored.encode() == live.encode()
    with pytest.raises(LocalProtocolError):
        restored.add(ops[0])
    with pytest.raises(LocalProtocolError):
        list(restored.ops_in_fold_order())


def test_bad_construction_is_our_bug() -> None:
    with pytest.raises(LocalProtocolError):
        CircleState(bytes(15))
    with pytest.raises(LocalProtocolError):
        CircleState(bytes(16), undo_window=0)
