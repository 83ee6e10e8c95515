"""Causal authority, tried as an attacker with a modified client (docs/OPS.md §2a-2c).

A modified client signs what the honest client never would: ops citing old parents so they
sort before the author's removal, timestamps ground to win the id tie, forks of its own
chain, removals of more senior organizers, junk keys. Each test asserts the honest fold
refuses it, lists why, and stays usable; and that every delivery order gives one state.
"""

from __future__ import annotations

import random
from typing import Any

from circle_support import PEOPLE, Circle
from hypothesis import given, settings
from hypothesis import strategies as st
from sync_support import FIRST_EPOCH, sealed_body

from kith.sync.dag import BAD_SEQ
from kith.sync.kinds import keys
from kith.sync.kinds.common import NOT_ACKED, NOT_MEMBER, NOT_SENIOR, ROLE_NOT_ACKED, STRUCK_DEMOTED, STRUCK_REMOVED
from kith.sync.kinds.membership import member_add_body
from kith.sync.ops import Op, SignedOp
from kith.sync.replica import CircleReplica
from kith.sync.views import members

POST = {"reply_to": None, "content_warning": None, "urgent": False}


def forge(
    circle: Circle,
    who: str,
    kind: str,
    body: dict[str, Any],
    *,
    parents: tuple[bytes, ...],
    seq: int,
    ts: int = 5,
) -> SignedOp:
    """Sign an op the way a modified client would: parents, seq and ts chosen freely
    (lamport must still follow the parents, or every node drops it outright)."""
    lamports = [circle.replica.dag.lamport_of(p) for p in parents]
    assert all(lamport is not None for lamport in lamports)
    lamport = 1 + max(lamports)  # type: ignore[type-var]
    person = PEOPLE[who]
    body = sealed_body(kind, body, person.member_id, circle.state.circle_id)
    op = Op(circle.state.circle_id, person.member_id, tuple(sorted(parents)), lamport, ts, kind, body, seq=seq)
    return SignedOp.decode(SignedOp.create(op, person).data)


def last_of(circle: Circle, who: str) -> tuple[int, bytes]:
    return circle.state.chains[circle.member(who)]


def grind_before(circle: Circle, make: Any, target: SignedOp) -> SignedOp:
    """Grind ``ts`` until the op's id sorts before ``target``'s at the same lamport, if it can."""
    for ts in range(2, 3000):
        signed = make(ts)
        if (signed.op.lamport, signed.id) < (target.op.lamport, target.id):
            return signed
    raise AssertionError("could not grind an op before the target")


def organizers_circle() -> Circle:
    """alice founds; bob then carol become organizers (bob is more senior); dana is a member."""
    circle = Circle()
    for name in ("bob", "carol", "dana"):
        circle.add(name)
    circle.grant("bob", "organizer")
    circle.grant("carol", "organizer")
    for name in ("bob", "carol", "dana"):
        circle.post(name, f"hello from {name}")  # acknowledges admission and grants
    return circle


def test_a_removed_organizers_back_dated_sock_puppet_never_gets_in() -> None:
    circle = organizers_circle()
    bob_seq, bob_last = last_of(circle, "bob")
    early = circle.state.members[circle.member("bob")].grants[0].op
    removal = circle.act("alice", "member.remove", {"member": circle.member("bob"), "reason": "infiltrator"})
    assert bob_last in removal.op.parents  # the honest client cites what it saw of the target
    puppet = member_add_body(PEOPLE["mallory"].card().to_bytes())
    # Her chain continued from her last op, parents as old as she likes, ts ground to win ties.
    backdated = grind_before(
        circle,
        lambda ts: forge(circle, "bob", "member.add", puppet, parents=(bob_last, early), seq=bob_seq + 1, ts=ts),
        removal,
    )
    assert backdated.op.lamport < removal.op.lamport
    result = circle.replica.ingest(backdated)
    assert result.applied == (backdated,)
    assert circle.reason(backdated) == STRUCK_REMOVED
    assert circle.member("mallory") not in circle.state.members
    # The honest organizer's next rotation seals the new key to members only.
    assert set(circle.state.members) == {circle.member(n) for n in ("alice", "carol", "dana")}


def test_a_fork_cannot_hide_a_back_dated_op_behind_a_seen_seq() -> None:
    """She reuses a seq the removal has seen: a fork. The seen op stands, the other is struck."""
    circle = organizers_circle()
    bob_seq, bob_last = last_of(circle, "bob")
    bob = circle.state.members[circle.member("bob")]
    removal = circle.act("alice", "member.remove", {"member": circle.member("bob"), "reason": None})
    previous = circle.replica.dag.meta(bob_last).parents  # type: ignore[union-attr]
    own_previous = [p for p in previous if circle.replica.dag.meta(p).author == circle.member("bob")]  # type: ignore[union-attr]
    puppet = member_add_body(PEOPLE["mallory"].card().to_bytes())
    fork = forge(
        circle, "bob", "member.add", puppet, parents=(*own_previous, bob.joined_op, bob.grants[0].op), seq=bob_seq
    )
    circle.replica.ingest(fork)
    assert (circle.member("bob"), bob_seq) in circle.state.forks
    assert circle.reason(fork) == STRUCK_REMOVED
    assert circle.member("mallory") not in circle.state.members
    assert circle.reason(removal) is None


def test_a_removed_members_back_dated_urgent_post_is_struck() -> None:
    circle = organizers_circle()
    dana_seq, dana_last = last_of(circle, "dana")
    removal = circle.act("alice", "member.remove", {"member": circle.member("dana"), "reason": None})
    body = {**POST, "text": "URGENT: meet tonight at the old warehouse", "urgent": True}
    post = grind_before(
        circle,
        lambda ts: forge(circle, "dana", "msg.post", body, parents=(dana_last,), seq=dana_seq + 1, ts=ts),
        removal,
    )
    circle.replica.ingest(post)
    assert circle.reason(post) == STRUCK_REMOVED
    assert post.id not in circle.state.messages
    rejected = circle.state.all_rejections()[post.id]
    assert rejected.reason == STRUCK_REMOVED and rejected.author == circle.member("dana")


def test_a_junior_organizer_cannot_remove_a_senior_one_even_back_dated() -> None:
    circle = organizers_circle()
    attempt = circle.act("carol", "member.remove", {"member": circle.member("bob"), "reason": None})
    assert circle.reason(attempt) == NOT_SENIOR
    founder = circle.act("bob", "member.remove", {"member": circle.member("alice"), "reason": None})
    assert circle.reason(founder) == NOT_SENIOR
    demote = circle.act("carol", "role.revoke", {"member": circle.member("alice"), "role": "organizer"})
    assert circle.reason(demote) == NOT_SENIOR
    assert {circle.member(n) for n in ("alice", "bob")} <= set(circle.state.members)


def test_concurrent_mutual_removals_resolve_by_seniority_whatever_the_ids() -> None:
    """bob and carol remove each other concurrently on two replicas. Only the senior's
    removal (bob's: his grant came first in the founder's chain) counts, in every order,
    however the junior grinds her op id."""
    circle = organizers_circle()
    other = CircleReplica(circle.state.circle_id)
    other.ingest_many(circle.replica.ops())
    by_bob = circle.sign("bob", "member.remove", {"member": circle.member("carol"), "reason": None})
    carol_seq, carol_last = last_of(circle, "carol")
    heads = circle.replica.dag.heads()
    made = [
        forge(
            circle,
            "carol",
            "member.remove",
            {"member": circle.member("bob"), "reason": None},
            parents=tuple(
                sorted(
                    set(h for h in heads if circle.replica.dag.meta(h).author != circle.member("carol")) | {carol_last}
                )
            ),  # type: ignore[union-attr]
            seq=carol_seq + 1,
            ts=ts,
        )
        for ts in range(2, 40)
    ]
    by_carol = min(made, key=lambda s: s.id)  # ground to sort first
    circle.replica.ingest_many([by_bob, by_carol])
    other.ingest_many([by_carol, by_bob])
    for replica in (circle.replica, other):
        members = replica.state.members
        assert circle.member("bob") in members and circle.member("carol") not in members
        assert replica.state.is_rejected(by_carol.id) in (NOT_SENIOR, NOT_MEMBER, STRUCK_REMOVED)
    assert circle.replica.state_hash() == other.state_hash()


def test_a_demoted_treasurers_unseen_receipt_is_struck_but_her_contribution_stands() -> None:
    circle = Circle()
    circle.add("bob")
    circle.grant("bob", "treasurer")
    circle.post("bob", "thanks")
    seq, last = last_of(circle, "bob")
    for n in range(3):
        circle.post("alice", f"news {n}")
    demotion = circle.act("alice", "role.revoke", {"member": circle.member("bob"), "role": "treasurer"})
    contribution = forge(
        circle, "bob", "fund.contribute", {"amount": 5, "currency": "EUR", "note": None}, parents=(last,), seq=seq + 1
    )
    circle.replica.ingest(contribution)
    receipt = forge(
        circle, "bob", "fund.receipt", {"contribution": contribution.id}, parents=(contribution.id,), seq=seq + 2
    )
    assert receipt.op.lamport < demotion.op.lamport  # back-dated: it sorts while she was treasurer
    circle.replica.ingest(receipt)
    assert circle.reason(receipt) == STRUCK_DEMOTED
    assert circle.reason(contribution) is None  # a demotion strikes only what needed the role
    assert circle.state.balances == {}


def test_an_op_must_acknowledge_the_authors_admission_and_role() -> None:
    circle = Circle()
    add = circle.add("bob")
    unseen = forge(
        circle, "bob", "msg.post", {**POST, "text": "I never saw my welcome"}, parents=(circle.genesis.id,), seq=1
    )
    circle.replica.ingest(unseen)
    assert circle.reason(unseen) in (NOT_MEMBER, NOT_ACKED)
    grant = circle.grant("bob", "organizer")
    later = circle.post("alice", "after the grant")
    seq, last = last_of(circle, "bob")
    # Sorts after the grant and descends from it, but never cites it: bob's client did not show it.
    blind = forge(
        circle,
        "bob",
        "member.add",
        member_add_body(PEOPLE["eve"].card().to_bytes()),
        parents=(last, add.id, later.id),
        seq=seq + 1,
    )
    circle.replica.ingest(blind)
    assert grant.id not in blind.op.parents
    assert circle.reason(blind) == ROLE_NOT_ACKED


def test_an_op_that_breaks_its_authors_chain_is_dropped_everywhere() -> None:
    circle = organizers_circle()
    seq, last = last_of(circle, "dana")
    skip = forge(circle, "dana", "msg.post", {**POST, "text": "skip"}, parents=(last,), seq=seq + 2)
    assert dict(circle.replica.ingest(skip).dropped) == {skip.id: BAD_SEQ}
    fresh = forge(circle, "dana", "msg.post", {**POST, "text": "restart"}, parents=(circle.genesis.id,), seq=1)
    result = circle.replica.ingest(fresh)
    assert result.applied == (fresh,)  # a second seq 1: a fork, detected
    assert (circle.member("dana"), 1) in circle.state.forks
    marked = {view.id: view.forked for view in members(circle.state)}
    assert marked[circle.member("dana")] and not marked[circle.member("carol")]


def test_a_junk_rotation_by_an_organizer_is_not_held_by_anyone_who_could_not_open_it() -> None:
    circle = organizers_circle()
    new = bytes([0x51]) * 16
    junk = {circle.member(n): bytes(keys.SEALED_KEY_BYTES) for n in ("alice", "carol", "dana")}
    rotation = circle.act("bob", "key.rotate", {"epoch": new, "previous": FIRST_EPOCH, "sealed": junk})
    assert circle.reason(rotation) is None and circle.state.info["epoch"] == new
    # Offered is not held: nobody acknowledged it, so every other member shows as lacking it.
    assert set(circle.state.holders[new]) == {circle.member("bob")}
    assert keys.members_missing_key(circle.state) == sorted(circle.member(n) for n in ("alice", "carol", "dana"))


@settings(max_examples=60, deadline=None)
@given(st.randoms(use_true_random=False))
def test_every_delivery_order_of_an_attack_gives_one_state(rnd: random.Random) -> None:
    """Back-dated ops, a fork, mutual removals and a demotion, delivered in any order
    (parents possibly after children): every replica ends with one state and one struck set."""
    circle = organizers_circle()
    base_ops = list(circle.replica.ops())
    dana_seq, dana_last = last_of(circle, "dana")
    bob_seq, bob_last = last_of(circle, "bob")
    attack: list[SignedOp] = []
    removal = circle.act("alice", "member.remove", {"member": circle.member("dana"), "reason": None})
    attack.append(removal)
    attack.append(
        forge(circle, "dana", "msg.post", {**POST, "text": "back-dated"}, parents=(dana_last,), seq=dana_seq + 1)
    )
    attack.append(
        forge(circle, "dana", "msg.post", {**POST, "text": "fork"}, parents=(dana_last,), seq=dana_seq + 1, ts=9)
    )
    attack.append(circle.act("carol", "member.remove", {"member": circle.member("bob"), "reason": None}))
    attack.append(circle.act("bob", "role.revoke", {"member": circle.member("carol"), "role": "organizer"}))
    attack.append(
        forge(circle, "bob", "msg.post", {**POST, "text": "bob, concurrently"}, parents=(bob_last,), seq=bob_seq + 1)
    )
    for signed in attack:
        circle.replica.ingest(signed)
    expected = circle.replica.state_hash()
    order = base_ops + attack
    rnd.shuffle(order)
    replica = CircleReplica(circle.state.circle_id)
    for signed in order:
        replica.ingest(signed)
    assert replica.state_hash() == expected
    assert set(replica.state.struck) == set(circle.state.struck)
    assert replica.state.forks == circle.state.forks
