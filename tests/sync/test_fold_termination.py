"""The strike procedure (docs/OPS.md §2c) ends, and with one answer, whatever the delivery.

Found by an adversarial review of the fold: each scenario below once made every node fold
forever or made replicas disagree. The op sets are forged with `forge_kit` (modified
clients choosing parents, chain positions and timestamps).
"""

from __future__ import annotations

import random

import pytest
from forge_kit import B, M, causal_orders, feed, gen

from kith.sync.ops import SignedOp
from kith.sync.state import CircleState, fold_key

MAX_APPLIES = 30_000


class Endless(Exception):
    """The fold applied far more ops than a terminating fold of these ops could."""


@pytest.fixture(autouse=True)
def bounded_fold(monkeypatch: pytest.MonkeyPatch) -> None:
    original = CircleState._apply
    count = [0]

    def counting(self: CircleState, signed: object) -> None:
        count[0] += 1
        if count[0] > MAX_APPLIES:
            raise Endless
        original(self, signed)  # type: ignore[arg-type]

    monkeypatch.setattr(CircleState, "_apply", counting)


def test_giving_up_a_role_concurrently_with_a_removal_does_not_loop() -> None:
    """bob gives up his organizer role (R); dana, junior to him, removes him without having
    seen R. R is never struck (giving something up never is), so her removal is valid."""
    b = B()
    add_bob, add_dana = b.add("bob"), b.add("dana")
    grant_bob, grant_dana = b.grant("bob"), b.grant("dana")
    b.post("bob", cite=(add_bob.id, grant_bob.id))
    b.post("dana", cite=(add_dana.id, grant_dana.id))
    resign = b.revoke("bob", by="bob")
    removal = b.remove("bob", by="dana")
    while fold_key(removal) < fold_key(resign):
        b.ops.remove(removal)
        b.post("dana", "pad")
        b.last["dana"] = (b.seq_of(b.ops[-1].id), b.ops[-1].id)
        removal = b.remove("bob", by="dana")
    for batch in (len(b.ops), 1):
        replica = feed(b.cid, b.ops, batch=batch)
        assert replica.state.is_rejected(resign.id) is None
        assert replica.state.is_rejected(removal.id) is None
        assert M["bob"] not in replica.state.members


def test_seniority_is_fixed_at_the_first_grant() -> None:
    """bob, demoted and appointed again, keeps his place: senior to eve, whom he appointed."""
    b = B()
    add_bob, add_eve = b.add("bob"), b.add("eve")
    grant_bob = b.grant("bob")
    b.post("bob", cite=(add_bob.id, grant_bob.id))
    grant_eve = b.grant("eve", by="bob")
    ack = b.post("eve", cite=(add_eve.id, grant_eve.id))
    b.revoke("bob", by="alice", cite=(ack.id,))  # (had it not seen eve's grant, it would strike it)
    b.grant("bob", by="alice")
    state = feed(b.cid, b.ops).state
    assert state.members[M["bob"]].path == state.seniority[M["bob"]] == (grant_bob.op.seq,)
    assert state.members[M["eve"]].path > state.members[M["bob"]].path


def test_a_cycle_of_forged_concurrent_removals_still_ends() -> None:
    """Four organizers' concurrent ops where each removal is valid only if another's strike
    stands (docs/OPS.md §2c, "Cycles"): no answer exists. The fold must still end, in every
    order (strikes stop being withdrawn past a bound)."""
    b = B()
    adds = {n: b.add(n) for n in ("bob", "carol", "dana", "eve")}
    g_bob, g_dana, g_carol = b.grant("bob"), b.grant("dana"), b.grant("carol")
    b.post("bob", cite=(adds["bob"].id, g_bob.id))
    z = b.grant("eve", by="bob")
    b.post("eve", cite=(adds["eve"].id, z.id))
    b.post("dana", cite=(adds["dana"].id, g_dana.id))
    b.post("carol", cite=(adds["carol"].id, g_carol.id))
    b.revoke("bob", by="alice", cite=(z.id,))
    b.grant("bob", by="alice")
    y = b.revoke("carol", by="dana")
    while b.lam[b.last["carol"][1]] < b.lam[y.id]:
        b.post("carol", "pad")
    xe = b.remove("bob", by="carol")
    while b.lam[b.last["eve"][1]] < b.lam[xe.id]:
        b.post("eve", "pad")
    b.remove("dana", by="eve")
    orders = [b.ops, [o for o in b.ops if o is not xe] + [xe], [o for o in b.ops if o is not y] + [y]]
    for order in orders:
        for batch in (1, len(order)):
            feed(b.cid, order, batch=batch)  # ends (Endless otherwise)


def _treasurer_receipts() -> tuple[B, SignedOp, SignedOp]:
    """bob is treasurer and carol organizer, both acknowledged; then bob's receipt. Returns
    the builder, bob's acknowledging post, and the receipt."""
    b = B()
    add_bob, add_carol = b.add("bob"), b.add("carol")
    g_treasurer, g_carol = b.grant("bob", "treasurer"), b.grant("carol", "organizer")
    seen = b.post("bob", cite=(add_bob.id, g_treasurer.id))
    b.post("carol", cite=(add_carol.id, g_carol.id))
    receipt = b.op("bob", "fund.receipt", {"contribution": bytes(32)})
    return b, seen, receipt


def test_an_op_two_removals_would_strike_belongs_to_the_earlier_in_any_order() -> None:
    b, seen, receipt = _treasurer_receipts()
    demotion = b.revoke("bob", "treasurer", by="alice", cite=(seen.id,))
    b.post("carol", "pad")
    removal = b.remove("bob", by="carol", cite=(seen.id,))
    assert fold_key(receipt) < fold_key(demotion) < fold_key(removal)
    base = [o for o in b.ops if o not in (receipt, demotion, removal)]
    replicas = [feed(b.cid, base + order) for order in ([receipt, demotion, removal], [receipt, removal, demotion])]
    assert replicas[0].state_hash() == replicas[1].state_hash()
    assert all(r.state.struck[receipt.id].striker == demotion.id for r in replicas)


def test_a_struck_op_that_arrives_late_still_acknowledges() -> None:
    b = B()
    add_bob = b.add("bob")
    grant = b.grant("bob", "treasurer")
    first = b.post("bob", cite=(add_bob.id,))
    contribution = b.op("alice", "fund.contribute", {"amount": 500, "currency": "EUR", "note": None})
    receipt = b.op("bob", "fund.receipt", {"contribution": contribution.id}, prev=first.id, cite=(contribution.id,))
    ack = b.post("bob", "ack", prev=first.id, cite=(grant.id,), before=receipt)  # a fork that acknowledges
    b.revoke("bob", "treasurer", by="alice", cite=(receipt.id,))
    b.remove("bob", by="alice")
    early = feed(b.cid, b.ops)
    late = feed(b.cid, [o for o in b.ops if o is not ack] + [ack])
    assert early.state_hash() == late.state_hash()
    assert late.state.balances == {"EUR": 500}


def test_the_state_does_not_depend_on_when_a_fork_arrives() -> None:
    b, seen, receipt = _treasurer_receipts()
    b.revoke("bob", "treasurer", by="alice", cite=(seen.id,))
    b.post("carol", "saw it", cite=(receipt.id,))
    while b.lam[b.last["carol"][1]] < b.lam[b.ops[-2].id]:
        b.post("carol", "pad")
    removal = b.remove("bob", by="carol")
    pads = [b.post("alice", "pad") for _ in range(3)]
    fork = b.post("bob", "fork", prev=seen.id, seq=2, cite=(pads[-1].id,))
    rest = [o for o in b.ops if o not in (removal, fork)]
    assert feed(b.cid, rest + [fork, removal]).state_hash() == feed(b.cid, rest + [removal, fork]).state_hash()


@pytest.mark.parametrize("seed", range(3))
def test_random_forged_histories_end_and_agree(seed: int) -> None:
    """Forged grants, demotions, removals, re-admissions, forks and back-dating by five
    people; several delivery orders, undo windows and batch sizes: one state."""
    rnd = random.Random(seed)
    for _ in range(12):
        b = gen(rnd, rnd.randint(8, 30))
        hashes = set()
        for order in causal_orders(b.ops, rnd, 3):
            for undo_window, batch in ((20_000, 1), (2, 1), (20_000, len(order)), (3, 3)):
                hashes.add(feed(b.cid, order, undo_window=undo_window, batch=batch).state_hash())
        assert len(hashes) == 1


def _demotion_resting_on_its_own_strike() -> tuple[B, dict[str, SignedOp]]:
    """alice demotes carol (D) without having seen carol admit eve (E), nor bob hand his
    role over to eve (H, which needs E), and after alice herself tried to hand her role to
    bob (A, which needs bob not to be an organizer any more, i.e. H). Folded in order with
    every op: E, H and A stand, so alice is no longer an organizer and D is rejected. But
    if D struck E, H would fail, A would fail, alice would still be an organizer and D
    would be valid: D's validity rests (through ops it never saw) on its own strike.
    Found by tests/sync/test_governance_machine.py (there with forks and back-dating)."""
    b = B()
    add_bob, add_carol = b.add("bob"), b.add("carol")
    grant_bob, grant_carol = b.grant("bob"), b.grant("carol")
    ops = {"bob": b.post("bob", cite=(add_bob.id, grant_bob.id))}
    b.post("carol", cite=(add_carol.id, grant_carol.id))
    ops["E"] = b.add("eve", by="carol")
    ops["H"] = b.op("bob", "role.handover", {"member": M["eve"]}, cite=(ops["E"].id,))
    while b.lam[b.last["alice"][1]] <= b.lam[ops["H"].id]:
        b.post("alice")  # alice's chain, seeing none of E and H, sorts after them
    ops["A"] = b.op("alice", "role.handover", {"member": M["bob"]})
    ops["D"] = b.revoke("carol")
    return b, ops


def test_a_demotion_that_rests_on_its_own_strike_has_one_answer() -> None:
    """The fold is a function of the op set: a fresh fold, and replicas that received E and
    H (the ops the demotion D could strike, or that rest on them) after D, or D last, agree:
    D is decided without its own strikes in force, so it is rejected (docs/OPS.md §2c)."""
    b, ops = _demotion_resting_on_its_own_strike()
    late = [ops["E"], ops["H"]]
    early = [o for o in b.ops if o not in late]
    orders = [
        b.ops,  # fold order: a fresh fold
        early + late,  # D first: E arrives after the demotion that could strike it
        early + late[1:] + late[:1],  # impossible causally; the DAG buffers H until E comes
        [o for o in b.ops if o is not ops["D"]] + [ops["D"]],
    ]
    for order in orders:
        for undo_window, batch in ((20_000, 1), (2, 1), (20_000, len(order)), (3, 3)):
            state = feed(b.cid, order, undo_window=undo_window, batch=batch).state
            assert state.is_rejected(ops["D"].id) == "only an organizer may do this"
            assert state.is_rejected(ops["E"].id) is None
            assert state.is_rejected(ops["H"].id) is None
            assert state.is_rejected(ops["A"].id) is None
            assert M["eve"] in state.members and "organizer" in state.members[M["carol"]].roles
    rnd = random.Random(17)
    hashes = {feed(b.cid, order).state_hash() for order in causal_orders(b.ops, rnd, 12)}
    assert len(hashes) == 1
