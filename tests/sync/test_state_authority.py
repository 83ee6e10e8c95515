"""Authority: one test per rule; each forged or unauthorised op is rejected, listed, and has no effect."""

from __future__ import annotations

from typing import Any

import pytest

from kith.identity.errors import BadSignature
from kith.sync.kinds import aid, decisions, fund, membership, support
from kith.sync.kinds import circle as circle_kinds
from kith.sync.kinds.circle import charter_body, genesis_op
from kith.sync.kinds.common import NOT_MEMBER, NOT_ORGANIZER, NOT_TREASURER, UNKNOWN_KIND
from kith.sync.kinds.membership import member_add_body
from kith.sync.ops import OP_DOMAIN, Op, SignedOp
from kith.sync.views import post_text


def _without_log(picture: dict[str, Any]) -> dict[str, Any]:
    """The state but for what a rejected op may still change: the log of rejections, its place
    in its author's chain, and what it acknowledged (members' ``acked`` and grants' flags)."""
    kept = {k: v for k, v in picture.items() if k not in ("rejected", "count", "last", "chains")}
    kept["members"] = [[*row[:6], [grant[:2] for grant in row[7]], row[8]] for row in picture["members"]]
    return kept


def assert_rejected_without_effect(circle: Any, who: str, kind: str, body: dict[str, Any], reason: str) -> SignedOp:
    before = _without_log(circle.state.canonical())
    rejected_before = len(circle.state.rejected)
    signed = circle.act(who, kind, body)
    assert circle.reason(signed) == reason
    assert len(circle.state.rejected) == rejected_before + 1
    assert _without_log(circle.state.canonical()) == before
    return signed


def _spend(circle: Any, amount: int = 3000) -> SignedOp:
    details = {"amount": amount, "currency": "EUR", "recipient": "Landlord", "purpose": "rent"}
    return circle.propose("alice", "spend", details)


def _funded(circle: Any, amount: int) -> None:
    contribution = circle.contribute("carol", amount)
    circle.act("bob", "fund.receipt", {"contribution": contribution.id})


def _approve(circle: Any, proposal: SignedOp, voters: tuple[str, ...] = ("alice", "bob", "carol")) -> None:
    for voter in voters:
        circle.vote(voter, proposal, "approve")
    assert circle.state.proposals[proposal.id].status == "approved"


def test_forged_author_never_reaches_the_state(circle: Any) -> None:
    """mallory signs an op that claims bob as its author: the signature does not verify."""
    parents, lamport, seq = circle.replica.next_op(circle.member("bob"))
    body = {"text": "bob says: send me the fund", "reply_to": None, "content_warning": None, "urgent": False}
    op = Op(circle.genesis.op.circle, circle.member("bob"), parents, lamport, 5, "msg.post", body, seq=seq)
    signature = circle.people["mallory"].sign(OP_DOMAIN, op.encode())
    forged = b"\x82" + op.encode() + b"\x58\x40" + signature
    before = circle.replica.state_hash()
    with pytest.raises(BadSignature):
        circle.replica.ingest_bytes(forged)
    assert circle.replica.state_hash() == before


def test_edit_by_non_author(circle: Any) -> None:
    post = circle.post("bob", "I need a ride to the clinic on Friday")
    body = {"target": post.id, "text": "never mind", "content_warning": None}
    assert_rejected_without_effect(circle, "carol", "msg.edit", body, support.NOT_AUTHOR)
    assert_rejected_without_effect(circle, "alice", "msg.delete", {"target": post.id}, support.NOT_AUTHOR)
    message = circle.state.messages[post.id]
    assert post_text(circle.reader, message.author, message.content)[0] == "I need a ride to the clinic on Friday"


def test_a_vote_is_final_and_counts_once(circle: Any) -> None:
    proposal = circle.propose("alice", "general", {})
    circle.vote("bob", proposal, "abstain")
    again = circle.vote("bob", proposal, "abstain")
    circle.vote("carol", proposal, "object")
    changed = circle.vote("carol", proposal, "approve")  # a changed mind is refused: votes are final
    assert circle.reason(again) == circle.reason(changed) == decisions.ALREADY_VOTED
    record = circle.state.proposals[proposal.id]
    assert (record.approve, record.object, record.abstain, record.status) == (0, 1, 1, "open")
    assert circle.state.votes[proposal.id][circle.member("carol")].choice == "object"


def test_vote_by_non_member(circle: Any) -> None:
    proposal = circle.propose("alice", "general", {})
    body = {"proposal": proposal.id, "choice": "approve", "reason": None}
    assert_rejected_without_effect(circle, "mallory", "proposal.vote", body, NOT_MEMBER)


def test_vote_by_member_added_after_the_proposal(circle: Any) -> None:
    proposal = circle.propose("alice", "general", {})
    circle.add("eve")
    body = {"proposal": proposal.id, "choice": "approve", "reason": None}
    assert_rejected_without_effect(circle, "eve", "proposal.vote", body, decisions.NOT_IN_ELECTORATE)


def test_spend_is_decided_by_the_spend_rule_not_the_general_rule(circle: Any) -> None:
    """4 members; 1 approve + 1 object (+ 2 abstain) meets general (quorum 30, threshold 50),
    not spend (threshold 60)."""
    general = circle.propose("alice", "general", {})
    spend = _spend(circle)
    for proposal in (general, spend):
        circle.vote("alice", proposal, "approve")
        circle.vote("bob", proposal, "object")
        assert circle.state.proposals[proposal.id].status == "open"  # the others could still tip it
        circle.vote("carol", proposal, "abstain")
        circle.vote("dana", proposal, "abstain")
    assert circle.state.proposals[general.id].status == "approved"
    assert circle.state.proposals[spend.id].status == "rejected"
    _funded(circle, 5000)
    body = {"proposal": spend.id, "note": None}
    assert_rejected_without_effect(circle, "bob", "fund.disburse", body, fund.NOT_APPROVED)


def test_consent_rule_one_objection_rejects(circle: Any) -> None:
    new_charter = charter_body("Be kind. Meet monthly.", members_can_invite=True)
    proposal = circle.propose("alice", "charter", new_charter)
    for voter in ("alice", "bob"):
        circle.vote(voter, proposal, "approve")
    assert circle.state.proposals[proposal.id].status == "open"  # quorum 60% of 4 needs 3 voters
    circle.vote("carol", proposal, "object")  # without consent 2:1 would stay open (dana could still approve)
    assert circle.state.proposals[proposal.id].status == "rejected"
    assert circle.state.info["charter"].members_can_invite is False
    body = {"proposal": proposal.id}
    assert_rejected_without_effect(circle, "bob", "charter.update", body, circle_kinds.CHARTER_ONLY_BY_PROPOSAL)


def test_a_charter_change_does_not_move_an_open_proposals_goalposts(circle: Any) -> None:
    """A spend made under the default rule keeps it after a charter lowers the spend threshold."""
    spend = _spend(circle)
    lax = charter_body("", rules={"spend": circle_kinds.DecisionRule(0, 1, False)})
    change = circle.propose("alice", "charter", lax)
    _approve(circle, change, ("alice", "bob", "carol", "dana"))
    assert circle.state.info["charter"].rule("spend").threshold_pct == 1
    circle.vote("alice", spend, "approve")
    circle.vote("bob", spend, "object")
    assert circle.state.proposals[spend.id].status == "open"
    assert circle.state.proposals[spend.id].rule.threshold_pct == 60


def test_disbursement_by_non_treasurer(circle: Any) -> None:
    spend = _spend(circle)
    _approve(circle, spend)
    _funded(circle, 5000)
    assert_rejected_without_effect(
        circle, "alice", "fund.disburse", {"proposal": spend.id, "note": None}, NOT_TREASURER
    )


def test_disbursement_without_an_approved_spend_proposal(circle: Any) -> None:
    _funded(circle, 5000)
    spend = _spend(circle)
    body = {"proposal": spend.id, "note": None}
    assert_rejected_without_effect(circle, "bob", "fund.disburse", body, fund.NOT_APPROVED)
    general = circle.propose("alice", "general", {})
    _approve(circle, general)
    body = {"proposal": general.id, "note": None}
    assert_rejected_without_effect(circle, "bob", "fund.disburse", body, fund.NOT_A_SPEND)
    body = {"proposal": bytes(32), "note": None}
    assert_rejected_without_effect(circle, "bob", "fund.disburse", body, fund.NOT_A_SPEND)


def test_disbursement_beyond_the_confirmed_balance(circle: Any) -> None:
    spend = _spend(circle, amount=3000)
    _approve(circle, spend)
    _funded(circle, 2999)
    circle.contribute("dana", 10_000)  # stated but never confirmed: does not count
    circle.contribute("dana", 10_000, currency="USD")  # another currency: does not count either
    body = {"proposal": spend.id, "note": None}
    assert_rejected_without_effect(circle, "bob", "fund.disburse", body, fund.OVER_BALANCE)
    assert circle.state.balances == {"EUR": 2999}


def test_disbursement_twice(circle: Any) -> None:
    spend = _spend(circle, amount=3000)
    _approve(circle, spend)
    _funded(circle, 10_000)
    first = circle.act("bob", "fund.disburse", {"proposal": spend.id, "note": "paid by transfer"})
    assert circle.reason(first) is None
    assert circle.state.balances == {"EUR": 7000}
    body = {"proposal": spend.id, "note": None}
    assert_rejected_without_effect(circle, "bob", "fund.disburse", body, fund.ALREADY_DISBURSED)
    assert circle.state.balances == {"EUR": 7000}


def test_receipt_by_non_treasurer_and_twice(circle: Any) -> None:
    contribution = circle.contribute("carol", 500)
    body = {"contribution": contribution.id}
    assert_rejected_without_effect(circle, "carol", "fund.receipt", body, NOT_TREASURER)
    circle.act("bob", "fund.receipt", body)
    assert_rejected_without_effect(circle, "bob", "fund.receipt", body, fund.ALREADY_RECEIPTED)


def test_removed_members_later_ops(circle: Any) -> None:
    circle.act("alice", "member.remove", {"member": circle.member("dana"), "reason": None})
    body = {"text": "still here?", "reply_to": None, "content_warning": None, "urgent": False}
    assert_rejected_without_effect(circle, "dana", "msg.post", body, NOT_MEMBER)
    assert_rejected_without_effect(circle, "dana", "checkin", {"status": "ok", "note": None}, NOT_MEMBER)


@pytest.mark.parametrize("removal_first", [True, False])
def test_removed_members_concurrent_op_never_takes_effect(circle: Any, removal_first: bool) -> None:
    """dana posts on a replica that has not seen her removal. Whether her post sorts before
    or after the removal, and whichever arrives first, it has no effect: the removal had
    not seen it (docs/OPS.md §2c)."""
    removal = circle.sign("alice", "member.remove", {"member": circle.member("dana"), "reason": None})
    post = circle.sign("dana", "msg.post", {"text": "hi", "reply_to": None, "content_warning": None, "urgent": False})
    assert post.op.lamport == removal.op.lamport  # concurrent: both cite the same heads
    for signed in (removal, post) if removal_first else (post, removal):
        circle.replica.ingest(signed)
    expected = NOT_MEMBER if post.id > removal.id else "its author was removed by an op that had not seen it"
    assert circle.reason(post) == expected
    assert post.id not in circle.state.messages
    assert circle.member("dana") not in circle.state.members


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("msg.post", {"text": "hi", "reply_to": None, "content_warning": None}),
        ("msg.post", {"text": "hi", "reply_to": None, "content_warning": None, "urgent": False, "extra": 1}),
        ("msg.post", {"text": "hi", "reply_to": None, "content_warning": None, "urgent": 1}),
        ("msg.post", {"content": "plain text is not sealed content", "reply_to": None, "urgent": False}),
        ("msg.post", {"content": b"too short to be sealed", "reply_to": None, "urgent": False}),
        ("msg.post", {"content": bytes([9]) * 16 + bytes(60), "reply_to": None, "urgent": False}),
        ("msg.post", {"text": "hi", "reply_to": b"short", "content_warning": None, "urgent": False}),
        ("profile.set", {"display_name": "al\u200bice", "pronouns": None, "skills": []}),
        ("profile.set", {"display_name": "alice", "pronouns": None, "skills": ["x"] * 17}),
        ("profile.set", {"display_name": "alice", "pronouns": None, "skills": ["x", "x"]}),
        ("fund.contribute", {"amount": True, "currency": "EUR", "note": None}),
        ("fund.contribute", {"amount": 0, "currency": "EUR", "note": None}),
        ("fund.contribute", {"amount": 10**12 + 1, "currency": "EUR", "note": None}),
        ("fund.contribute", {"amount": 100, "currency": "eur", "note": None}),
        ("aid.pledge", {"category": "money", "description": "cash", "amount": 5, "unit": None, "expires": None}),
        ("aid.request", {"category": "spaceship", "description": "x", "amount": None, "unit": None, "expires": None}),
        ("checkin", {"status": "fine", "note": None}),
        ("proposal.create", {"kind": "general", "title": "t", "text": "", "details": {"x": 1}}),
        ("proposal.create", {"kind": "spend", "title": "t", "text": "", "details": {}}),
        ("event.create", {"title": "Picnic", "starts": -1, "place_hint": None, "text": None}),
        ("role.grant", {"member": bytes(32), "role": "admin"}),
        ("member.add", {"member": bytes(31), "vouch": None, "card": b"", "invite": None, "request": None}),
    ],
)
def test_invalid_schema(circle: Any, kind: str, body: dict[str, Any]) -> None:
    before = _without_log(circle.state.canonical())
    signed = circle.act("alice", kind, body)
    reason = circle.reason(signed)
    assert reason is not None and reason.startswith("invalid body: "), reason
    assert _without_log(circle.state.canonical()) == before


def test_float_amount_is_refused() -> None:
    """Floats never enter the state, even where an integer is expected."""
    from kith.sync.kinds import schema

    with pytest.raises(schema.InvalidBody):
        schema.amount(12.5)


def test_unknown_kind_is_kept_and_listed(circle: Any) -> None:
    signed = assert_rejected_without_effect(circle, "alice", "poll.create", {"q": "?"}, UNKNOWN_KIND)
    assert signed.id in circle.state.rejected


def test_forged_competing_genesis(new_circle: Any) -> None:
    """mallory signs a genesis for alice's circle id: it cannot bind, whatever it sorts as."""
    circle = new_circle()
    salt = circle.genesis.op.body["salt"]
    mallory = circle.people["mallory"]
    body = {**circle.genesis.op.body, "name": "Mallory's circle", "card": mallory.card().to_bytes()}
    forged = SignedOp.decode(
        SignedOp.create(
            Op(circle.genesis.op.circle, mallory.member_id, (), 1, 0, "circle.create", body, seq=1), mallory
        ).data
    )
    circle.replica.ingest(forged)
    assert circle.reason(forged) in (circle_kinds.GENESIS_UNBOUND, circle_kinds.ALREADY_GENESIS)
    assert circle.state.info["circle"].creator == circle.member("alice")
    assert circle.state.info["circle"].salt == salt
    own = genesis_op(mallory, name="Elsewhere", salt=salt, ts=1, epoch=bytes([0x42]) * 16)
    assert own.op.circle != circle.genesis.op.circle


def test_authority_of_aid_membership_and_roles(circle: Any) -> None:
    item = {"category": "ride", "description": "lift to the clinic", "amount": None, "unit": None, "expires": None}
    pledge = circle.act("bob", "aid.pledge", item)
    request = circle.act("carol", "aid.request", item)
    match = {"pledge": pledge.id, "request": request.id}
    assert_rejected_without_effect(circle, "dana", "aid.match", match, aid.NOT_PLEDGER)
    assert_rejected_without_effect(circle, "bob", "aid.fulfil", {"request": request.id}, aid.NOT_REQUESTER)
    assert_rejected_without_effect(circle, "carol", "aid.withdraw", {"item": pledge.id}, aid.NOT_ITEM_AUTHOR)
    remove = {"member": circle.member("carol"), "reason": None}
    assert_rejected_without_effect(circle, "dana", "member.remove", remove, NOT_ORGANIZER)
    grant = {"member": circle.member("dana"), "role": "organizer"}
    assert_rejected_without_effect(circle, "dana", "role.grant", grant, NOT_ORGANIZER)
    add = member_add_body(circle.people["eve"].card().to_bytes())
    assert_rejected_without_effect(circle, "dana", "member.add", add, membership.NOT_INVITER)
    leave = {"member": circle.member("alice"), "reason": None}
    assert_rejected_without_effect(circle, "alice", "member.remove", leave, membership.LAST_ORGANIZER)
    revoke = {"member": circle.member("alice"), "role": "organizer"}
    assert_rejected_without_effect(circle, "alice", "role.revoke", revoke, membership.LAST_ORGANIZER)
