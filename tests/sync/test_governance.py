"""Governance that outlives its organizers (issue 17 item 4, docs/OPS.md §6a).

Attacks first: each rule about who may hand over, elect or review is tested as a modified
client signing what the honest client never would (its own parents, chain position and
claimed time), and the honest fold must refuse it, agree on every delivery order and stay
usable.
"""

from __future__ import annotations

import random

import pytest
from circle_support import PEOPLE, Circle
from forge_kit import B, M, causal_orders, feed

from kith.sync import modlog, reviews
from kith.sync.kinds import alloc, membership, stewardship
from kith.sync.kinds.circle import charter_body
from kith.sync.kinds.common import (
    NOT_MEMBER,
    NOT_ORGANIZER,
    NOT_SENIOR,
    ROLE_NOT_ACKED,
    SUCCESSION,
    TARGET_NOT_MEMBER,
)
from kith.sync.kinds.decisions import CLOSE_TOO_EARLY, NOT_IN_ELECTORATE
from kith.sync.kinds.records import APPROVED, EXPIRED, OPEN, ORGANIZER, REJECTED, Governance
from kith.sync.state import CircleState, fold_circle_state

IDLE = 3600
GOVERNED = charter_body(members_can_invite=True, governance=Governance(organizers_at=3, idle_s=IDLE))


def latest(b: B, kw: dict) -> dict:
    """Unless the test chooses parents, an op cites the newest op (an honest node's heads)."""
    if "cite" not in kw and "prev" not in kw:
        kw["cite"] = (b.ops[-1].id,)
    return kw


def handover(b: B, who: str, by: str, **kw):
    return b.op(by, "role.handover", {"member": M[who]}, **latest(b, kw))


def propose(b: B, who: str, kind: str, details: dict, **kw):
    body = {"kind": kind, "title": "t", "text": "", "details": details}
    return b.op(who, "proposal.create", body, **latest(b, kw))


def vote(b: B, who: str, proposal, choice: str = "approve", **kw):
    return b.op(who, "proposal.vote", {"proposal": proposal.id, "choice": choice, "reason": None}, **latest(b, kw))


def close(b: B, who: str, proposal, **kw):
    return b.op(who, "proposal.close", {"proposal": proposal.id}, **latest(b, kw))


def settle(b: B, orders: int = 8) -> CircleState:
    """The state every delivery order reaches (asserted equal), from a full fold."""
    state = fold_circle_state(b.cid, b.ops)
    for order in causal_orders(b.ops, random.Random(len(b.ops)), orders):
        assert feed(b.cid, order).state.state_hash() == state.state_hash()
    return state


def circle_of(*names: str, charter=None) -> tuple[B, dict]:
    b = B(charter=charter)
    adds = {}
    for who in names:
        adds[who] = b.add(who)
    for who in names:
        b.post(who, cite=(adds[who].id,))
    return b, adds


# --- handover ---------------------------------------------------------------------------


def test_a_handover_gives_the_role_and_takes_the_authors_in_one_op() -> None:
    b, _ = circle_of("bob", "carol")
    carol_grant = b.grant("carol")
    h = handover(b, "bob", by="alice")
    state = settle(b)
    assert ORGANIZER not in state.members[M["alice"]].roles
    bob = state.members[M["bob"]]
    assert bob.roles == (ORGANIZER,) and bob.path == (h.op.seq,)
    # Seniority: alice's earlier appointee (carol) stays above the heir; the heir is junior.
    assert state.members[M["carol"]].path < bob.path
    # The heir acts only after seeing the handover; alice can no longer act as organizer.
    seen = b.post("carol", cite=(h.id,))
    early = b.add("dana", by="bob", cite=(seen.id,))  # after the handover, without citing it
    b2 = b.add("eve", by="alice")
    assert settle(b).is_rejected(early.id) == ROLE_NOT_ACKED
    assert settle(b).is_rejected(b2.id) == membership.NOT_INVITER
    ok = b.add("eve", by="bob", cite=(h.id,))
    assert settle(b).is_rejected(ok.id) is None
    assert carol_grant.id not in settle(b).rejected


@pytest.mark.parametrize("target", ["mallory", "self", "removed", "organizer"])
def test_handover_to_someone_who_cannot_take_it_is_refused(target: str) -> None:
    b, _ = circle_of("bob", "carol")
    if target == "removed":
        b.remove("carol")
    if target == "organizer":
        b.grant("carol")
    name = {"mallory": "mallory", "self": "alice", "removed": "carol", "organizer": "carol"}[target]
    h = handover(b, name, by="alice")
    reason = {
        "mallory": TARGET_NOT_MEMBER,
        "self": stewardship.HANDOVER_SELF,
        "removed": TARGET_NOT_MEMBER,
        "organizer": stewardship.HANDOVER_TAKEN,
    }[target]
    state = settle(b)
    assert state.is_rejected(h.id) == reason
    assert ORGANIZER in state.members[M["alice"]].roles  # nothing changed hands


def test_concurrent_handovers_of_one_role_give_it_once() -> None:
    """alice's modified client forks her chain: the role to bob and, at the same seq, to carol."""
    b, _ = circle_of("bob", "carol")
    base = b.last["alice"][1]
    to_bob = handover(b, "bob", by="alice", prev=base)
    to_carol = handover(b, "carol", by="alice", prev=base)
    state = settle(b, orders=12)
    first, second = sorted((to_bob, to_carol), key=lambda s: (s.op.lamport, s.id))
    assert state.is_rejected(first.id) is None
    assert state.is_rejected(second.id) == NOT_ORGANIZER
    organizers = [m for m, rec in state.members.items() if ORGANIZER in rec.roles]
    assert len(organizers) == 1


def test_two_organizers_handing_over_to_the_same_member_concurrently() -> None:
    b, adds = circle_of("bob", "carol")
    g = b.grant("bob")
    b.post("bob", cite=(g.id,))
    base = b.ops[-1].id
    h1 = handover(b, "carol", by="alice", cite=(base,))
    h2 = handover(b, "carol", by="bob", cite=(base,))
    state = settle(b)
    first, second = sorted((h1, h2), key=lambda s: (s.op.lamport, s.id))
    assert state.is_rejected(first.id) is None
    assert state.is_rejected(second.id) == stewardship.HANDOVER_TAKEN
    assert ORGANIZER in state.members[M["carol"]].roles


def test_a_demoted_organizer_cannot_hand_over_after_the_demotion_and_a_raced_heir_is_below_the_demoter() -> None:
    """bob, about to be demoted, races a handover to his puppet mallory (it had not seen the
    demotion, and sorts before it). A handover gives bob's role up, so like leaving it is
    never struck (the demotion's validity rests on it): it stands, and the demotion finds
    nothing to revoke. But the heir sits below bob, so alice, who could demote bob, demotes
    mallory. After seeing the demotion, bob hands nothing over."""
    b, _ = circle_of("bob", "carol", "mallory")
    g = b.grant("bob")
    b.post("bob", cite=(g.id,))
    before = b.last["bob"][1]
    demotion = b.revoke("bob", cite=(before,))
    raced = handover(b, "mallory", by="bob", prev=before, before=demotion)
    late = handover(b, "carol", by="bob", cite=(demotion.id,))
    state = settle(b, orders=16)
    assert state.is_rejected(raced.id) is None
    assert state.is_rejected(demotion.id) == "that member does not have this role"
    assert state.is_rejected(late.id) == NOT_ORGANIZER
    assert state.members[M["mallory"]].path > state.members[M["alice"]].path
    undo = b.revoke("mallory", cite=(late.id,))
    state = settle(b)
    assert state.is_rejected(undo.id) is None and ORGANIZER not in state.members[M["mallory"]].roles


def test_a_demotion_that_saw_nothing_of_a_later_handover_still_stops_it() -> None:
    b, _ = circle_of("bob", "carol", "mallory")
    g = b.grant("bob")
    b.post("bob", cite=(g.id,))
    demotion = b.revoke("bob", cite=(b.last["bob"][1],))
    after = handover(b, "mallory", by="bob", cite=(b.last["bob"][1],), ts=10**6)
    state = settle(b)
    if (after.op.lamport, after.id) > (demotion.op.lamport, demotion.id):
        assert state.is_rejected(after.id) == NOT_ORGANIZER
    assert ORGANIZER not in state.members[M["bob"]].roles or ORGANIZER not in state.members[M["mallory"]].roles


# --- elections ----------------------------------------------------------------------------


def election_circle() -> tuple[B, dict]:
    return circle_of("bob", "carol", "dana", charter=GOVERNED)


def test_an_election_is_decided_only_at_its_closing_and_the_elected_is_junior() -> None:
    b, _ = election_circle()
    e = propose(b, "bob", "organizer", {"member": M["carol"]}, ts=100)
    votes = [vote(b, who, e, ts=200) for who in ("bob", "carol", "dana")]
    state = settle(b)
    assert state.proposals[e.id].status == OPEN  # every vote in, still open: it is the idle timer
    assert state.proposals[e.id].closes_at == 100 + IDLE
    early = close(b, "dana", e, cite=[v.id for v in votes[:2]], ts=100 + IDLE - 1)
    assert settle(b).is_rejected(early.id) == CLOSE_TOO_EARLY
    # alice's node closes it: closing is something a node does by itself, not alice acting.
    c = close(b, "alice", e, cite=[v.id for v in votes], ts=100 + IDLE)
    state = settle(b)
    assert state.proposals[e.id].status == APPROVED and state.proposals[e.id].decided_by == c.id
    carol = state.members[M["carol"]]
    assert ORGANIZER in carol.roles and carol.path == (SUCCESSION, e.op.lamport)
    # Junior to the founder: the elected cannot remove the organizer who went quiet.
    attempt = b.remove("alice", by="carol", cite=(c.id,))
    assert settle(b).is_rejected(attempt.id) == NOT_SENIOR
    # And alice, back, can demote the elected one.
    back = b.revoke("carol", by="alice", cite=(attempt.id,))
    assert settle(b).is_rejected(back.id) is None


def test_an_organizer_who_acts_after_seeing_the_election_ends_it() -> None:
    b, _ = election_circle()
    e = propose(b, "bob", "organizer", {"member": M["carol"]}, ts=100)
    v = vote(b, "carol", e, ts=200)
    # What a node signs by itself (closing another vote, acknowledging keys) does not count.
    passive = b.op("alice", "key.ack", {"epochs": [b"\x42" * 16]}, cite=(e.id,))
    assert settle(b).proposals[e.id].status == OPEN and settle(b).is_rejected(passive.id) is None
    alive = b.post("alice", cite=(v.id,))
    state = settle(b)
    assert state.proposals[e.id].status == REJECTED and state.proposals[e.id].decided_by == alive.id
    late = close(b, "dana", e, ts=100 + IDLE)
    assert settle(b).is_rejected(late.id) == "the proposal is already rejected"


def test_an_organizer_op_that_had_not_seen_the_election_does_not_end_it() -> None:
    b, _ = election_circle()
    base = b.ops[-1].id
    e = propose(b, "bob", "organizer", {"member": M["carol"]}, cite=(base,), ts=100)
    b.post("alice", cite=(base,))  # concurrent: alice had not seen it
    assert settle(b).proposals[e.id].status == OPEN


@pytest.mark.parametrize("case", ["by organizer", "of organizer", "own window", "non-member"])
def test_elections_a_modified_client_should_not_open(case: str) -> None:
    b, _ = election_circle()
    g = b.grant("dana")
    b.post("dana", cite=(g.id,))
    body: dict = {"kind": "organizer", "title": "t", "text": "", "details": {"member": M["carol"]}}
    who, reason = "bob", None
    if case == "by organizer":
        who, reason = "dana", stewardship.ELECTION_BY_ORGANIZER
    elif case == "of organizer":
        body["details"] = {"member": M["dana"]}
        reason = stewardship.ELECTION_OF_ORGANIZER
    elif case == "own window":
        body["closes"] = 60
        reason = stewardship.ELECTION_WINDOW
    else:
        body["details"] = {"member": M["mallory"]}
        reason = TARGET_NOT_MEMBER
    op = b.op(who, "proposal.create", body, cite=(b.ops[-1].id,))
    assert settle(b).is_rejected(op.id) == reason


def test_a_back_dated_election_is_bounded_by_its_quorum_and_seniority() -> None:
    """bob dates his election an idle period in the past so it can be closed at once: the
    votes still need the remove rule's quorum of an electorate fixed when it opened, and
    whoever wins is junior to every appointed organizer, so alice undoes it on return."""
    b, _ = election_circle()
    e = propose(b, "bob", "organizer", {"member": M["bob"]}, ts=2)
    puppets = b.add("mallory", by="bob", cite=(e.id,))
    pv = vote(b, "mallory", e, cite=(puppets.id,))
    lone = close(b, "bob", e, cite=(vote(b, "bob", e).id,), ts=2 + IDLE)
    state = settle(b)
    assert state.is_rejected(pv.id) == NOT_IN_ELECTORATE
    assert state.proposals[e.id].status == REJECTED and state.proposals[e.id].decided_by == lone.id
    assert ORGANIZER not in state.members[M["bob"]].roles


def test_a_future_dated_election_cannot_be_closed_before_its_claimed_closing() -> None:
    b, _ = election_circle()
    e = propose(b, "bob", "organizer", {"member": M["bob"]}, ts=10**9)
    v = [vote(b, who, e, ts=10**9 + 1) for who in ("bob", "carol", "dana")]
    c = close(b, "alice", e, cite=[x.id for x in v], ts=10**9 + IDLE - 1)
    state = settle(b)
    assert state.is_rejected(c.id) == CLOSE_TOO_EARLY and state.proposals[e.id].status == OPEN
    # (Nodes hold a close dated in their own future until their clock gets there: p2pnet.)


# --- reviews ------------------------------------------------------------------------------


def review_circle() -> Circle:
    circle = Circle(GOVERNED)
    for who in ("bob", "carol", "dana"):
        circle.add(who)
    circle.grant("bob", ORGANIZER)
    for who in ("bob", "carol", "dana"):
        circle.post(who)
    return circle


def test_a_reviews_reason_opens_for_organizers_only() -> None:
    circle = review_circle()
    details = reviews.review_details(circle.state, circle.member("dana"), "threatened carol in DMs")
    assert sorted(details["reasons"]) == sorted([circle.member("alice"), circle.member("bob")])
    review = circle.propose("carol", "review", details)
    record = circle.state.proposals[review.id]
    assert circle.member("dana") not in record.electorate
    for who in ("alice", "bob"):
        assert reviews.open_review_reason(circle.state, record.details, PEOPLE[who]) == "threatened carol in DMs"
    for who in ("carol", "dana"):
        assert reviews.open_review_reason(circle.state, record.details, PEOPLE[who]) is None


def test_a_reason_copied_into_another_review_does_not_open_as_its_reason() -> None:
    circle = review_circle()
    first = reviews.review_details(circle.state, circle.member("dana"), "about dana")
    copied = {"member": circle.member("carol"), "reasons": first["reasons"]}
    review = circle.propose("dana", "review", copied)
    record = circle.state.proposals[review.id]
    assert reviews.open_review_reason(circle.state, record.details, PEOPLE["alice"]) is None


@pytest.mark.parametrize("recipient", ["carol", "dana"])
def test_a_reason_sealed_to_a_member_or_to_the_reviewed_is_refused(recipient: str) -> None:
    circle = review_circle()
    circle.grant("dana", ORGANIZER)
    circle.post("dana")
    details = reviews.review_details(circle.state, circle.member("dana"), "why")
    details["reasons"][circle.member(recipient)] = details["reasons"][circle.member("alice")]
    review = circle.act("carol", "proposal.create", {"kind": "review", "title": "t", "text": "", "details": details})
    assert circle.reason(review) == stewardship.REASON_NOT_ORGANIZER


def test_a_review_without_its_quorum_expires_and_nothing_happens() -> None:
    circle = review_circle()
    review = circle.propose("carol", "review", reviews.review_details(circle.state, circle.member("dana"), "r"))
    circle.vote("carol", review, "approve")
    circle.close("alice", review)
    record = circle.state.proposals[review.id]
    assert record.status == EXPIRED
    assert circle.member("dana") in circle.state.members


def test_a_review_the_circle_turned_out_for_is_decided() -> None:
    circle = review_circle()
    review = circle.propose("carol", "review", reviews.review_details(circle.state, circle.member("dana"), "r"))
    circle.vote("carol", review, "approve")
    circle.vote("alice", review, "object")
    circle.vote("bob", review, "object")
    assert circle.state.proposals[review.id].status == REJECTED  # early: no missing vote could pass it
    again = circle.propose("carol", "review", reviews.review_details(circle.state, circle.member("dana"), "r"))
    for who in ("alice", "bob", "carol"):
        circle.vote(who, again, "approve")
    assert circle.state.proposals[again.id].status == APPROVED
    assert circle.member("dana") not in circle.state.members
    after = circle.sign("dana", "msg.post", {"text": "x", "reply_to": None, "content_warning": None, "urgent": False})
    circle.replica.ingest(after)
    assert circle.reason(after) == NOT_MEMBER


def test_puppets_invited_after_a_review_opened_cannot_vote_on_it() -> None:
    b, _ = circle_of("bob", "carol", "dana", charter=GOVERNED)
    review = propose(b, "dana", "review", {"member": M["carol"], "reasons": {}})
    puppet = b.add("mallory", by="dana", cite=(review.id,))
    mv = vote(b, "mallory", review, cite=(puppet.id,))
    dv = vote(b, "dana", review)
    c = close(b, "alice", review, cite=(mv.id, dv.id), ts=10**6)
    state = settle(b)
    assert state.is_rejected(mv.id) == NOT_IN_ELECTORATE
    assert state.proposals[review.id].status == EXPIRED and state.proposals[review.id].decided_by == c.id
    assert M["carol"] in state.members


def test_concurrent_reviews_of_each_other() -> None:
    """carol and dana review each other at once; the circle removes dana; dana's votes stop
    counting, and her review of carol expires for want of a quorum."""
    b, _ = circle_of("bob", "carol", "dana", "eve", charter=GOVERNED)
    base = b.ops[-1].id
    of_dana = propose(b, "carol", "review", {"member": M["dana"], "reasons": {}}, cite=(base,))
    of_carol = propose(b, "dana", "review", {"member": M["carol"], "reasons": {}}, cite=(base,))
    dv = vote(b, "dana", of_carol, cite=(of_dana.id,))
    ev = vote(b, "eve", of_carol, cite=(of_dana.id,))
    for who in ("alice", "bob", "carol", "eve"):
        vote(b, who, of_dana, cite=(of_carol.id,))
    state = settle(b)
    assert state.proposals[of_dana.id].status == APPROVED and M["dana"] not in state.members
    assert state.proposals[of_carol.id].status == OPEN
    assert state.proposals[of_carol.id].approve == 1  # eve's; dana's no longer counts
    c = close(b, "alice", of_carol, cite=(dv.id, ev.id), ts=10**6)
    state = settle(b)
    assert state.proposals[of_carol.id].status == EXPIRED and state.proposals[of_carol.id].decided_by == c.id
    assert M["carol"] in state.members


# --- the charter's governance settings --------------------------------------------------


def test_governance_settings_are_in_the_state_only_when_set() -> None:
    plain = fold_circle_state(B().cid, B().ops)
    assert len(plain.canonical()["charter"]) == 6
    governed = B(charter=GOVERNED)
    state = fold_circle_state(governed.cid, governed.ops)
    # After the allocation rules' place (null: this charter has none), OPS.md §7.
    assert state.canonical()["charter"][6:] == [None, [3, IDLE]]
    restored = CircleState.restore(governed.cid, state.canonical())
    assert restored.state_hash() == state.state_hash()
    assert restored.info["charter"].settings == Governance(3, IDLE)
    defaults = B(charter=charter_body(governance=Governance(5, 14 * 24 * 3600)))
    assert fold_circle_state(defaults.cid, defaults.ops).state_hash() == plain.state_hash()


def test_a_charter_with_allocation_rules_and_governance_round_trips() -> None:
    """Both optional parts at once: the row carries the rules, then the settings (OPS.md §7),
    and a snapshot restores to the same state."""
    rules = alloc.parse_rules(
        {"period_s": 3600, "reveal_s": 600, "currency": "EUR", "categories": {"rent": 800}, "cap": 600,
         "cooldown": 1, "priority": True},
        "alloc",
    )  # fmt: skip
    both = B(charter=charter_body(governance=Governance(3, IDLE), alloc=rules))
    state = fold_circle_state(both.cid, both.ops)
    charter = state.info["charter"]
    assert (charter.alloc, charter.settings) == (rules, Governance(3, IDLE))
    assert state.canonical()["charter"][6:] == [list(rules), [3, IDLE]]
    restored = CircleState.restore(both.cid, state.canonical())
    assert restored.state_hash() == state.state_hash() and restored.info["charter"] == charter
    only_rules = B(charter=charter_body(alloc=rules))
    assert len(fold_circle_state(only_rules.cid, only_rules.ops).canonical()["charter"]) == 7


# --- the moderation log -------------------------------------------------------------------


def test_the_moderation_log_lists_what_took_effect_with_who_when_and_which_decision() -> None:
    circle = Circle(GOVERNED)
    for who in ("bob", "carol", "dana", "eve", "mallory"):
        circle.add(who)
    for who in ("bob", "carol", "dana", "eve", "mallory"):
        circle.post(who)
    assert modlog.organizer_advice(circle.state) is not None  # 6 members, one organizer
    circle.grant("bob", ORGANIZER)
    assert modlog.organizer_advice(circle.state) is None
    circle.post("bob")
    refused = circle.sign("carol", "member.remove", {"member": circle.member("eve"), "reason": None})
    circle.replica.ingest(refused)
    assert circle.reason(refused) is not None
    removal = circle.act("alice", "member.remove", {"member": circle.member("mallory"), "reason": "spam"})
    demotion = circle.act("alice", "role.revoke", {"member": circle.member("bob"), "role": ORGANIZER})
    handover = circle.act("alice", "role.handover", {"member": circle.member("carol")})
    circle.post("carol")
    review = circle.propose("dana", "review", reviews.review_details(circle.state, circle.member("eve"), "why"))
    closing = circle.close("bob", review)
    leaving = circle.act("eve", "member.remove", {"member": circle.member("eve"), "reason": None})
    log = modlog.moderation_log(circle.state, circle.replica.ops(), limit=None)
    assert [(e.kind, e.target, e.actor, e.op, e.proposal, e.outcome) for e in log] == [
        ("removal", circle.member("mallory"), circle.member("alice"), removal.id, None, ""),
        ("demotion", circle.member("bob"), circle.member("alice"), demotion.id, None, ORGANIZER),
        ("handover", circle.member("carol"), circle.member("alice"), handover.id, None, ORGANIZER),
        ("review", circle.member("eve"), circle.member("bob"), closing.id, review.id, EXPIRED),
    ]
    assert log[0].note == "spam" and log[0].ts == removal.op.ts
    assert leaving.id not in {e.op for e in log}  # leaving is not moderation
    assert modlog.moderation_log(circle.state, circle.replica.ops(), limit=2) == log[-2:]


def test_the_log_has_one_place_for_a_new_entry_kind() -> None:
    """Another kind (the moderation lane's post hiding) adds a builder to one table."""
    assert set(modlog.OP_ENTRIES) == {"member.remove", "role.revoke", "role.handover", "msg.hide"}
    assert set(modlog.DECISION_ENTRIES) == {"remove", "review", "organizer"}
