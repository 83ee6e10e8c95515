"""Two reconciliation sessions back to back: exact differences, bounded cost, cut links."""

from __future__ import annotations

import sys
from array import array
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kith.identity.errors import LocalProtocolError, RemoteProtocolError
from kith.sync import reconcile_ranges, reconcile_sketch
from kith.sync.reconcile import ItemIndex, ReconcileSession, RoundLimitExceeded, UnexpectedRange
from kith.sync.reconcile_sketch import plain_key

sys.path.insert(0, str(Path(__file__).parent))
from reconcile_helpers import SALT, Item, check_exact, make_id, random_items, run_exchange  # noqa: E402

# --- strategies -------------------------------------------------------------------------


@st.composite
def set_pairs(draw: st.DrawFn) -> tuple[list[Item], list[Item]]:
    """Two item sets: a shared part and a private part each, over a chosen timestamp spread."""
    seed = draw(st.integers(0, 2**32))
    shared = draw(st.sampled_from([0, 0, 1, 5, 17, 40, 300, 2500]))
    only_a = draw(st.sampled_from([0, 0, 1, 2, 3, 10, 33, 120]))
    only_b = draw(st.sampled_from([0, 0, 1, 2, 3, 10, 33, 120]))
    spread = draw(st.sampled_from([1, 3, 50, 10**6]))  # 1: every ts equal; 3: duplicate-heavy
    items = random_items(shared + only_a + only_b, seed, ts_span=spread)
    return items[: shared + only_a], items[:shared] + items[shared + only_a :]


def _bounds(ex_bytes: int, messages: int, a: list[Item], b: list[Item]) -> None:
    """Generous regression bounds: a few messages, and bytes proportional to the difference."""
    a_ids = {i for _, i in a}
    b_ids = {i for _, i in b}
    d = len(a_ids ^ b_ids)
    if d == 0:
        assert messages == 2
        assert ex_bytes <= 300
    else:
        assert messages <= 8
        assert ex_bytes <= 600 + 120 * d + 40 * min(len(a_ids), len(b_ids), 64)


# --- exact results ----------------------------------------------------------------------


@settings(max_examples=150)
@given(set_pairs(), st.binary(min_size=16, max_size=16))
def test_sessions_learn_exactly_the_differences(pair: tuple[list[Item], list[Item]], salt: bytes) -> None:
    a, b = pair
    ex = run_exchange(a, b, salt=salt)
    check_exact(ex, a, b)
    _bounds(ex.total_bytes, len(ex.messages), a, b)


@settings(max_examples=40)
@given(set_pairs())
def test_pushing_what_was_learned_makes_the_sets_equal(pair: tuple[list[Item], list[Item]]) -> None:
    a, b = pair
    ex = run_exchange(a, b)
    a_ts = dict((i, t) for t, i in a)
    b_ts = dict((i, t) for t, i in b)
    ex.initiator.index.update((b_ts[x], x) for x in ex.responder.have_ids)
    ex.responder.index.update((a_ts[x], x) for x in ex.initiator.have_ids)
    assert list(ex.initiator.index) == list(ex.responder.index)
    again = run_exchange(list(ex.initiator.index), list(ex.responder.index), salt=bytes(16))
    assert len(again.messages) == 2 and again.initiator.have_ids == set() == again.responder.have_ids


@pytest.mark.parametrize(
    ("shared", "only_a", "only_b"),
    [
        (0, 0, 0),
        (0, 5, 0),
        (0, 0, 5000),
        (3000, 0, 0),
        (5000, 1, 0),
        (5000, 0, 1),
        (20_000, 50, 50),
        (4000, 2000, 2000),
    ],
)
def test_fixed_shapes(shared: int, only_a: int, only_b: int) -> None:
    items = random_items(shared + only_a + only_b, seed=shared + only_a * 7 + only_b * 13)
    a = items[: shared + only_a]
    b = items[:shared] + items[shared + only_a :]
    ex = run_exchange(a, b)
    check_exact(ex, a, b)
    _bounds(ex.total_bytes, len(ex.messages), a, b)


def test_in_sync_costs_one_small_round_trip() -> None:
    items = random_items(20_000, seed=5)
    ex = run_exchange(items, list(reversed(items)))
    assert len(ex.messages) == 2 and ex.round_trips == 1
    assert ex.total_bytes <= 250
    assert ex.initiator.done and ex.responder.done


def test_random_differences_cost_two_round_trips_and_a_sketch() -> None:
    items = random_items(20_100, seed=9)
    a = items[:20_050]
    b = items[:20_000] + items[20_050:]
    ex = run_exchange(a, b)
    check_exact(ex, a, b)
    assert len(ex.messages) == 4 and ex.round_trips == 2
    assert ex.total_bytes < 3000  # ~25 bytes per difference
    assert ex.responder.stats.sketches_sent == 1 and ex.initiator.stats.sketch_failures == 0


def test_a_side_that_was_offline_learns_the_recent_items() -> None:
    items = sorted(random_items(10_100, seed=4))
    ex = run_exchange(items[:10_000], items)
    check_exact(ex, items[:10_000], items)
    assert ex.round_trips == 2
    assert ex.initiator.need_count == 100 and not ex.initiator.have_ids


def test_an_empty_node_gets_everything_in_one_round_trip() -> None:
    items = random_items(3000, seed=2)
    ex = run_exchange([], items)
    check_exact(ex, [], items)
    assert len(ex.messages) == 2 and ex.total_bytes < 100
    ex = run_exchange(items, [])
    check_exact(ex, items, [])
    assert len(ex.messages) == 2


def test_big_differences_split_into_estimated_sub_ranges() -> None:
    items = random_items(24_000, seed=8)
    a = items[:4000] + items[4000:14_000]
    b = items[:4000] + items[14_000:]
    ex = run_exchange(a, b)  # 20,000 differences: too many for one sketch
    check_exact(ex, a, b)
    assert ex.round_trips <= 4
    assert ex.total_bytes < 25 * 20_000  # a sketch cell and a result key per difference, roughly


# --- failures of the sketch path still converge -----------------------------------------


def test_undersized_sketches_escalate_then_fall_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reconcile_ranges, "cells_for_estimate", lambda energy, gap, most: 1)
    items = random_items(6000, seed=3)
    a, b = items[:5900], items[:5800] + items[5900:]
    ex = run_exchange(a, b)
    check_exact(ex, a, b)
    failures = ex.initiator.stats.sketch_failures + ex.responder.stats.sketch_failures
    assert failures >= 2  # the first sketch and its doubled retry both failed


@pytest.fixture
def all_salted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every sketch in the salted layout (as in version 1), to aim faults at the salted path."""
    real = reconcile_ranges.RangeAnswers._snapshot

    def salted(self: reconcile_ranges.RangeAnswers, lower: bytes, upper: bytes, *, salted: bool) -> object:
        return real(self, lower, upper, salted=True)

    monkeypatch.setattr(reconcile_ranges.RangeAnswers, "_snapshot", salted)


@pytest.mark.usefixtures("all_salted")
def test_short_key_collisions_are_caught_by_verification(monkeypatch: pytest.MonkeyPatch) -> None:
    real = reconcile_sketch.sketch_values

    def colliding(item_keys: list[bytes], multiplier: int) -> array[int]:
        # Only 4 distinct keys: sketches peel to garbage, or to results that do not verify.
        keys = [(value >> 16) % 4 + 1 for value in real(item_keys, multiplier)]
        return array("Q", [reconcile_sketch.key_value(key) for key in keys])

    monkeypatch.setattr(reconcile_ranges, "sketch_values", colliding)
    for seed in range(6):
        items = random_items(3000, seed=seed)
        a, b = items[:2990], items[:2985] + items[2990:]
        ex = run_exchange(a, b)
        check_exact(ex, a, b)


@pytest.mark.usefixtures("all_salted")
def test_cross_set_collision_cancels_in_the_sketch_but_not_in_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two different items, one per side, with the same sketch key vanish from the sketch."""
    real = reconcile_sketch.sketch_values
    items = random_items(2000, seed=21)
    x, y = items[-2][1], items[-1][1]
    a, b = items[:-1], items[:-2] + items[-1:]

    def alias(item_keys: list[bytes], multiplier: int) -> array[int]:
        values = real(item_keys, multiplier)
        target = real([bytes(8) + x], multiplier)[0]
        for n, key in enumerate(item_keys):
            if key[8:] == y:
                values[n] = target
        return values

    monkeypatch.setattr(reconcile_ranges, "sketch_values", alias)
    ex = run_exchange(a, b)
    check_exact(ex, a, b)
    assert ex.initiator.stats.sketch_failures + ex.responder.stats.sketch_failures >= 1


# --- an attacker who grinds ids against the plain layout ----------------------------------
# Plain sketch keys are id bytes, public and session-independent: a modified client can
# pick its envelopes' ids (by grinding their contents) so that they collide. Each test
# builds such ids directly, the way the grinding would end, and checks that honest nodes
# still find the exact difference, in one extra round trip (the salted retry), not more.


def _stuck_pair(seed: int) -> tuple[bytes, bytes]:
    """Two ids whose plain keys agree modulo 11 * 9 * 7 * 5: the same 4 cells of a 32-cell sketch."""
    seen: dict[int, bytes] = {}
    n = 0
    while True:
        item_id = make_id(seed, n)
        n += 1
        residue = plain_key(item_id) % (11 * 9 * 7 * 5)
        if residue in seen and plain_key(seen[residue]) != plain_key(item_id):
            return seen[residue], item_id
        seen[residue] = item_id


def test_ids_crafted_to_share_every_cell_fall_back_to_the_salted_sketch() -> None:
    shared = random_items(5000, seed=31)
    x, y = _stuck_pair(32)
    a = shared + [(1_700_000_100, x), (1_700_000_200, y)]
    ex = run_exchange(a, shared)
    check_exact(ex, a, shared)
    assert ex.initiator.stats.sketch_failures == 1  # the plain sketch could not be peeled
    assert ex.round_trips == 3


def test_ids_crafted_to_share_a_plain_key_across_sides_are_caught_then_found() -> None:
    """x and y have the same plain key: they cancel in the plain sketch, so the decoded
    result looks in sync; the id sum refuses it and the salted sketch finds both."""
    shared = random_items(5000, seed=33)
    x = make_id(34, 0)
    y = x[:6] + make_id(34, 1)[6:]
    a, b = shared + [(1_700_000_100, x)], shared + [(1_700_000_100, y)]
    ex = run_exchange(a, b)
    check_exact(ex, a, b)
    assert ex.responder.stats.sketch_failures == 1  # the result did not verify
    assert ex.round_trips == 3


def test_many_own_ids_with_one_plain_key_fall_back_to_the_salted_sketch() -> None:
    shared = random_items(3000, seed=35)
    prefix = make_id(36, 0)[:6]
    flood = [(1_700_000_000 + n, prefix + make_id(36, n)[6:]) for n in range(1, 21)]
    for a, b in ((shared + flood, shared + flood[:3]), (shared + flood[:3], shared + flood)):
        ex = run_exchange(a, b)
        check_exact(ex, a, b)
        assert ex.round_trips <= 3


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32), crafted=st.integers(1, 6), honest=st.integers(0, 6), side=st.booleans())
def test_crafted_collisions_never_hide_a_difference(seed: int, crafted: int, honest: int, side: bool) -> None:
    """Ids sharing plain keys, spread over both sides, with honest differences mixed in."""
    items = random_items(600 + honest, seed=seed)
    shared, fresh = items[:600], items[600:]
    base = make_id(seed, 10**6)[:6]
    colliding = [(1_700_000_000 + n, base + make_id(seed, 10**6 + n)[6:]) for n in range(1, 2 * crafted + 1)]
    mine, theirs = colliding[::2], colliding[1::2]
    a = shared + mine + fresh[: honest // 2]
    b = shared + theirs + fresh[honest // 2 :]
    if side:
        a, b = b, a
    ex = run_exchange(a, b)
    check_exact(ex, a, b)


def test_small_messages_defer_work_to_later_rounds() -> None:
    items = random_items(12_000, seed=12)
    a, b = items[:11_000], items[:10_000] + items[11_000:]
    ex = run_exchange(a, b, max_message_bytes=16_384, max_rounds=20)
    check_exact(ex, a, b)
    assert max(len(m) for m in ex.messages) <= 16_384
    tiny = run_exchange(a[:10_300], b[:10_300], max_message_bytes=4096, max_rounds=100, max_messages=200)
    check_exact(tiny, a[:10_300], b[:10_300])
    assert max(len(m) for m in tiny.messages) <= 4096


# --- cut links -----------------------------------------------------------------------


@settings(max_examples=80)
@given(set_pairs(), st.integers(0, 12), st.sampled_from(["drop", "truncate"]), st.integers(0, 2**16))
def test_a_cut_link_never_yields_a_wrong_claim(
    pair: tuple[list[Item], list[Item]], cut_at: int, how: str, where: int
) -> None:
    a, b = pair
    initiator = ReconcileSession(ItemIndex(a), initiator=True, salt=SALT)
    responder = ReconcileSession(ItemIndex(b), initiator=False)
    message: bytes | None = initiator.start()
    receiver, sender = responder, initiator
    sent = 0
    error = None
    while message is not None:
        if sent == cut_at:
            if how == "drop":
                break
            truncated = message[: where % len(message)]
            with pytest.raises(RemoteProtocolError):
                receiver.receive(truncated)
            error = "truncated"
            break
        sent += 1
        message = receiver.receive(message)
        receiver, sender = sender, receiver
    only_a = {i for _, i in a} - {i for _, i in b}
    only_b = {i for _, i in b} - {i for _, i in a}
    for side, mine, theirs in ((initiator, only_a, only_b), (responder, only_b, only_a)):
        # Whatever a side committed is right; a finished side is complete.
        assert side.have_ids <= mine and side.need_ids <= theirs
        if side.done:
            assert side.have_ids == mine and side.need_count == len(theirs)
    if error:
        with pytest.raises(LocalProtocolError):
            receiver.receive(b"\x81\x02")  # a broken session stays broken
    # A fresh pair of sessions on the same data converges.
    again = run_exchange(a, b, salt=bytes(reversed(SALT)))
    check_exact(again, a, b)


# --- protocol misuse -----------------------------------------------------------------


def test_round_limit() -> None:
    items = random_items(12_000, seed=12)
    a, b = items[:11_000], items[:10_000] + items[11_000:]
    with pytest.raises(RoundLimitExceeded):
        run_exchange(a, b, max_message_bytes=16_384, max_rounds=3)


def test_answers_must_match_what_was_sent() -> None:
    items = random_items(500, seed=1)
    a = ReconcileSession(ItemIndex(items[:450]), initiator=True, salt=SALT)
    b = ReconcileSession(ItemIndex(items[50:]), initiator=False)
    sketch = b.receive(a.start())
    result = a.receive(sketch)  # type: ignore[arg-type]
    assert result is not None
    with pytest.raises(UnexpectedRange):
        b.receive(b"\x81\x02")  # Skip everything, but b sent a sketch that needs an answer
    d = ReconcileSession(ItemIndex(items[:450]), initiator=True, salt=SALT)
    d.start()
    with pytest.raises(UnexpectedRange):
        d.receive(result)  # a sketch result answering an estimate


def test_api_misuse_is_a_local_error() -> None:
    index = ItemIndex()
    with pytest.raises(LocalProtocolError):
        ReconcileSession(index, initiator=True)
    with pytest.raises(LocalProtocolError):
        ReconcileSession(index, initiator=False, salt=SALT)
    responder = ReconcileSession(index, initiator=False)
    with pytest.raises(LocalProtocolError):
        responder.start()
    initiator = ReconcileSession(index, initiator=True, salt=SALT)
    with pytest.raises(LocalProtocolError):
        initiator.receive(b"\x81\x02")
    initiator.start()
    with pytest.raises(LocalProtocolError):
        initiator.start()


def test_a_message_after_the_end_is_the_peers_fault() -> None:
    items = random_items(300, seed=2)
    ex = run_exchange(items[:250], items[50:])
    for side in (ex.initiator, ex.responder):
        assert side.done
        with pytest.raises(UnexpectedRange):
            side.receive(ex.messages[-1])
        assert side.have_ids  # results stay readable


def test_sendable_ids_come_once_and_only_ours() -> None:
    items = random_items(5000, seed=30)
    a, b = items[:4960], items[:4940] + items[4960:]
    ex = run_exchange(a, b)
    pushed = list(ex.pushed_by_initiator_at)
    assert len(pushed) == len(set(pushed)) and set(pushed) <= {i for _, i in a}
    assert ex.initiator.take_sendable() == []
    assert not ex.initiator.expects(1, make_id(99, 1))


@settings(max_examples=40)
@given(set_pairs(), st.sampled_from([16_384, 65_536, 262_144]))
def test_pushes_that_land_during_the_session_still_converge(pair: tuple[list[Item], list[Item]], budget: int) -> None:
    """The adapter adds pushed envelopes to the index as they arrive, mid-session."""
    a, b = pair
    ts_of = {i: t for t, i in a + b}
    initiator = ReconcileSession(ItemIndex(a), initiator=True, salt=SALT, max_message_bytes=budget, max_rounds=40)
    responder = ReconcileSession(ItemIndex(b), initiator=False, max_message_bytes=budget, max_rounds=40)
    message: bytes | None = initiator.start()
    sender, receiver = initiator, responder
    while message is not None:
        pushed = sender.take_sendable()
        message = receiver.receive(message)
        receiver.index.update((ts_of[i], i) for i in pushed)
        sender, receiver = receiver, sender
    for side, other in ((initiator, responder), (responder, initiator)):
        other.index.update((ts_of[i], i) for i in side.take_sendable())
    assert initiator.done and responder.done
    assert list(initiator.index) == list(responder.index) == sorted(set(a + b))
