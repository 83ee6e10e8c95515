"""What each op kind does when it is allowed: membership, support, aid, decisions, fund, events."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from kith.identity.errors import LocalProtocolError, UsageError
from kith.sync.kinds import CONTENT_KINDS, HANDLERS, decisions, governance, membership, support
from kith.sync.kinds.circle import DEFAULT_RULES, amend_charter, charter_body, new_circle_id
from kith.sync.kinds.records import DecisionRule, Proposal, ReviewDetails, SpendDetails
from kith.sync.opkind import OpKind
from kith.sync.ops import Op, SignedOp
from kith.sync.state import CircleState
from kith.sync.views import post_text

POST = {"reply_to": None, "content_warning": None, "urgent": False}


# --- circle ---------------------------------------------------------------------------------


def test_genesis_makes_the_creator_an_organizer(new_circle: Any) -> None:
    circle = new_circle()
    creator = circle.member("alice")
    assert circle.genesis.op.circle == new_circle_id(creator, bytes(range(16)))
    assert circle.state.members[creator].roles == ("organizer",)
    assert circle.state.info["circle"].name == "Night owls"
    assert circle.state.info["charter"].rules == tuple(
        DEFAULT_RULES[k] for k in ("spend", "charter", "remove", "general")
    )


def test_a_genesis_with_parents_or_a_second_genesis_is_rejected(new_circle: Any) -> None:
    circle = new_circle()
    state = CircleState(circle.genesis.op.circle)
    alice = circle.people["alice"]
    with_parents = SignedOp.create(
        Op(state.circle_id, alice.member_id, (bytes(32),), 2, 1, "circle.create", circle.genesis.op.body, seq=1),
        alice,
    )
    state.add(with_parents)
    assert state.is_rejected(with_parents.id) == "a genesis must have no parents"
    state.add(circle.genesis)
    assert state.is_rejected(circle.genesis.id) is None
    second = circle.sign("alice", "circle.create", circle.genesis.op.body)
    state.add(second)
    assert state.is_rejected(second.id) == "the circle already has a genesis"


def test_ops_before_the_genesis_are_rejected(new_circle: Any) -> None:
    circle = new_circle()
    state = CircleState(circle.genesis.op.circle)
    early = SignedOp.create(
        Op(state.circle_id, circle.member("alice"), (), 1, 1, "msg.post", {"text": "first!", **POST}, seq=1),
        circle.people["alice"],
    )
    state.add(early)
    assert state.is_rejected(early.id) == "the circle has no genesis yet"


def test_profile_latest_wins(circle: Any) -> None:
    circle.act("bob", "profile.set", {"display_name": "Bob", "pronouns": None, "skills": []})
    circle.act("bob", "profile.set", {"display_name": "Robin", "pronouns": "they/them", "skills": ["driving"]})
    profile = circle.state.profiles[circle.member("bob")]
    assert (profile.display_name, profile.pronouns, profile.skills) == ("Robin", "they/them", ("driving",))


def test_an_approved_charter_proposal_changes_the_charter(circle: Any) -> None:
    proposal = circle.propose("alice", "charter", charter_body("New guidelines", members_can_invite=True))
    for voter in ("alice", "bob", "carol"):
        circle.vote(voter, proposal, "approve")
    # Consent: dana could still object, so it stays open until she votes (or it closes).
    assert circle.state.proposals[proposal.id].status == "open"
    circle.vote("dana", proposal, "approve")
    charter = circle.state.info["charter"]
    assert (charter.text, charter.members_can_invite, charter.adopted_by) == ("New guidelines", True, proposal.id)
    ack = circle.act("dana", "charter.update", {"proposal": proposal.id})
    assert circle.reason(ack) is None
    added = circle.add("eve", by="dana")  # members may now invite
    assert circle.reason(added) is None


def test_a_charter_amendment_changes_only_what_it_names_and_the_fold_accepts_it(circle: Any) -> None:
    current = circle.state.info["charter"]
    changes = {"history": True, "confirm_joins": True, "rules": {"spend": {"quorum_pct": 40}}}
    body = amend_charter(current, changes)
    assert body == charter_body(
        current.text, history=True, confirm_joins=True, rules={"spend": DEFAULT_RULES["spend"]._replace(quorum_pct=40)}
    )
    proposal = circle.propose("bob", "charter", body)
    assert circle.reason(proposal) is None
    for voter in ("alice", "bob", "carol", "dana"):
        circle.vote(voter, proposal, "approve")
    charter = circle.state.info["charter"]
    assert (charter.history, charter.confirm_joins, charter.members_can_invite) == (True, True, False)
    assert charter.rule("spend").quorum_pct == 40 and charter.rule("charter") == DEFAULT_RULES["charter"]
    # Turning confirm_joins off again drops the key (it is present only when true).
    assert "confirm_joins" not in amend_charter(charter, {"confirm_joins": False})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({}, "say what the charter should change"),
        ([], "say what the charter should change"),
        ({"colour": "red"}, "the charter has no setting 'colour'"),
        ({"history": "yes"}, "the charter's history must be true or false"),
        ({"members_can_invite": 1}, "the charter's members_can_invite must be true or false"),
        ({"text": 5}, "the charter's text must be text"),
        ({"text": "x" * 20_001}, "the proposed charter is not valid: charter.text: too long"),
        ({"text": "bad \x1b[31m"}, "the proposed charter is not valid: charter.text: forbidden characters"),
        ({"rules": {"vote": {"quorum_pct": 5}}}, "there is no proposal kind 'vote'"),
        ({"rules": {"spend": {"quorum_pct": 101}}}, "the spend rule's quorum_pct must be a whole number from 0 to 100"),
        ({"rules": {"spend": {"threshold_pct": 0}}}, "the spend rule's threshold_pct must be a whole number from 1 to"),
        ({"rules": {"spend": {"quorum_pct": True}}}, "the spend rule's quorum_pct must be a whole number"),
        ({"rules": {"spend": {"consent": "no"}}}, "the spend rule's consent must be true or false"),
        ({"rules": {"spend": {"speed": 1}}}, "the spend rule takes quorum_pct, threshold_pct, consent and closes_s"),
        ({"rules": {"spend": {"closes_s": 59}}}, "the spend rule's closing window must be 60 s to 30 days"),
        ({"rules": {"spend": {"closes_s": 30 * 86400 + 1}}}, "the spend rule's closing window must be 60 s"),
        ({"history": False}, "the charter already says that"),
    ],
)
def test_a_charter_amendment_that_would_be_rejected_is_refused_before_signing(
    circle: Any, changes: Any, message: str
) -> None:
    with pytest.raises(UsageError) as caught:
        amend_charter(circle.state.info["charter"], changes)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


# --- membership -----------------------------------------------------------------------------


def test_leaving_and_coming_back(circle: Any) -> None:
    circle.act("dana", "member.remove", {"member": circle.member("dana"), "reason": "taking a break"})
    assert circle.member("dana") not in circle.state.members
    circle.add("dana", vouch="welcome back")
    assert circle.state.members[circle.member("dana")].vouch == "welcome back"
    assert circle.reason(circle.post("dana", "I'm back")) is None


def test_a_treasurer_may_step_down(circle: Any) -> None:
    circle.act("bob", "role.revoke", {"member": circle.member("bob"), "role": "treasurer"})
    assert circle.state.members[circle.member("bob")].roles == ()


@pytest.mark.parametrize("carol_first", [True, False])
def test_concurrent_mutual_removal_by_two_organizers(new_circle: Any, carol_first: bool) -> None:
    """Only a more senior organizer may remove another: the founder's removal stands and the
    junior's is refused, whichever sorts first (ids cannot be ground to win)."""
    circle = new_circle()
    for name in ("bob", "carol"):
        circle.add(name)
    circle.grant("carol", "organizer")
    alice_removes_carol = circle.sign("alice", "member.remove", {"member": circle.member("carol"), "reason": None})
    carol_removes_alice = circle.sign("carol", "member.remove", {"member": circle.member("alice"), "reason": None})
    ops = [carol_removes_alice, alice_removes_carol]
    circle.replica.ingest_many(ops if carol_first else ops[::-1])
    assert circle.reason(alice_removes_carol) is None
    assert circle.reason(carol_removes_alice) in (
        "its author was removed by an op that had not seen it",
        "author is not a member",
    )
    organizers = [m for m, record in circle.state.members.items() if "organizer" in record.roles]
    assert organizers == [circle.member("alice")]


def test_the_circle_has_a_size_limit(new_circle: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(membership, "MAX_MEMBERS", 3)
    circle = new_circle()
    circle.add("bob")
    circle.add("carol")
    assert circle.reason(circle.add("dana")) == membership.CIRCLE_FULL


def test_removal_by_proposal_can_remove_the_last_organizer_and_promotes_the_eldest(circle: Any) -> None:
    proposal = circle.propose("bob", "remove", {"member": circle.member("alice")})
    for voter in ("bob", "carol", "dana"):
        circle.vote(voter, proposal, "approve")
    assert circle.state.proposals[proposal.id].status == "approved"
    assert circle.member("alice") not in circle.state.members
    assert circle.state.members[circle.member("bob")].roles == ("organizer", "treasurer")  # bob joined first
    assert circle.reason(circle.post("alice", "wait")) == "author is not a member"


def test_a_removal_re_evaluates_open_proposals(circle: Any) -> None:
    """spend (quorum 50, threshold 60): 2 approve, 1 object of 4 stays open (dana objecting
    would make it 50%); with dana gone nobody is left to vote and 2:1 passes at the removal."""
    proposal = circle.propose("alice", "spend", {"amount": 5, "currency": "EUR", "recipient": "x", "purpose": "y"})
    circle.vote("alice", proposal, "approve")
    circle.vote("bob", proposal, "approve")
    circle.vote("carol", proposal, "object")
    assert circle.state.proposals[proposal.id].status == "open"
    removal = circle.act("alice", "member.remove", {"member": circle.member("dana"), "reason": None})
    record = circle.state.proposals[proposal.id]
    assert (record.status, record.decided_by) == ("approved", removal.id)


def test_a_removed_voters_vote_no_longer_counts(circle: Any) -> None:
    proposal = circle.propose("alice", "spend", {"amount": 5, "currency": "EUR", "recipient": "x", "purpose": "y"})
    circle.vote("dana", proposal, "object")
    circle.act("alice", "member.remove", {"member": circle.member("dana"), "reason": None})
    circle.vote("alice", proposal, "approve")
    circle.vote("bob", proposal, "approve")
    record = circle.state.proposals[proposal.id]
    assert (record.status, record.approve, record.object) == ("approved", 2, 0)


# --- decisions ------------------------------------------------------------------------------


def _proposal(rule: DecisionRule) -> Proposal:
    return Proposal(bytes(32), 1, 0, "general", "t", "", None, rule, (), "open", None, 0, 0, 0, None)


@pytest.mark.parametrize(
    ("rule", "tally", "status"),
    [
        (DecisionRule(50, 60, False), (4, 2, 0, 0), "open"),  # 2 objections to come would make it 50%
        (DecisionRule(50, 60, False), (4, 3, 0, 0), "approved"),  # even if the last objects: 75%
        (DecisionRule(50, 60, False), (4, 1, 0, 0), "open"),  # quorum not met
        (DecisionRule(50, 60, False), (4, 1, 1, 0), "open"),  # 50% approve < 60, but 2 could still approve
        (DecisionRule(50, 60, False), (4, 1, 3, 0), "rejected"),  # at best 1:3
        (DecisionRule(50, 60, False), (5, 3, 2, 0), "approved"),  # exactly 60%
        (DecisionRule(50, 67, False), (3, 2, 1, 0), "rejected"),  # 66.6% < 67, nobody left to vote
        (DecisionRule(0, 1, False), (10, 1, 0, 0), "approved"),
        (DecisionRule(100, 100, False), (3, 2, 0, 0), "open"),  # everyone must vote
        (DecisionRule(30, 50, False), (4, 0, 0, 4), "rejected"),  # everyone abstained: no approval possible
        (DecisionRule(60, 75, True), (4, 3, 1, 0), "rejected"),  # consent: one objection blocks
        (DecisionRule(60, 75, True), (4, 2, 0, 0), "open"),
        (DecisionRule(60, 75, True), (4, 3, 0, 0), "open"),  # consent: the last could object
        (DecisionRule(60, 75, True), (4, 4, 0, 0), "approved"),
        (DecisionRule(30, 50, False), (0, 0, 0, 0), "rejected"),  # nobody eligible
    ],
)
def test_decision_arithmetic(rule: DecisionRule, tally: tuple[int, int, int, int], status: str) -> None:
    assert governance.decide(_proposal(rule), *tally) == status


@pytest.mark.parametrize(
    ("rule", "tally", "status"),
    [
        (DecisionRule(50, 60, False), (4, 2, 0, 0), "approved"),  # closed: 50% voted, all approve
        (DecisionRule(50, 60, False), (4, 1, 0, 0), "rejected"),  # quorum not met by the closing
        (DecisionRule(50, 60, False), (5, 3, 2, 0), "approved"),  # exactly 60%
        (DecisionRule(50, 60, False), (4, 1, 1, 0), "rejected"),  # 50% < 60%
        (DecisionRule(60, 75, True), (4, 3, 0, 0), "approved"),  # consent: nobody objected in time
        (DecisionRule(60, 75, True), (4, 3, 1, 0), "rejected"),
        (DecisionRule(0, 1, False), (10, 0, 0, 0), "rejected"),  # no approval at all
        (DecisionRule(30, 50, False), (0, 0, 0, 0), "rejected"),
    ],
)
def test_decision_at_the_closing(rule: DecisionRule, tally: tuple[int, int, int, int], status: str) -> None:
    assert governance.decide_at_close(_proposal(rule), *tally) == status


def test_early_decisions_agree_with_every_way_the_missing_votes_could_go() -> None:
    """An early decision is sound: whatever the missing voters do (approve, object, abstain
    or stay away), the proposal closes with the same outcome; and an open one could go
    either way."""
    rules = [DecisionRule(q, t, c) for q in (0, 30, 50, 75, 100) for t in (1, 50, 60, 67, 100) for c in (False, True)]
    for rule in rules:
        proposal = _proposal(rule)
        for n in range(5):
            for a in range(n + 1):
                for o in range(n + 1 - a):
                    for b in range(n + 1 - a - o):
                        early = governance.decide(proposal, n, a, o, b)
                        r = n - a - o - b
                        outcomes = {
                            governance.decide_at_close(proposal, n, a + x, o + y, b + z)
                            for x in range(r + 1)
                            for y in range(r + 1 - x)
                            for z in range(r + 1 - x - y)
                        }
                        if early == "open":
                            assert outcomes == {"approved", "rejected"}, (rule, n, a, o, b)
                        else:
                            assert outcomes == {early}, (rule, n, a, o, b)


def test_withdrawal_by_its_author_while_open(circle: Any) -> None:
    proposal = circle.propose("alice", "general", {})
    refused = circle.act("bob", "proposal.withdraw", {"proposal": proposal.id})
    assert circle.reason(refused) == decisions.NOT_PROPOSER
    circle.act("alice", "proposal.withdraw", {"proposal": proposal.id})
    assert circle.state.proposals[proposal.id].status == "withdrawn"
    late_vote = circle.vote("bob", proposal, "approve")
    assert circle.reason(late_vote) == "the proposal is already withdrawn"


def test_open_proposals_per_member_are_bounded(circle: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decisions, "MAX_OPEN_PROPOSALS_PER_MEMBER", 2)
    first = circle.propose("carol", "general", {})
    circle.propose("carol", "general", {})
    assert circle.reason(circle.propose("carol", "general", {})) == decisions.TOO_MANY_OPEN
    circle.act("carol", "proposal.withdraw", {"proposal": first.id})
    assert circle.reason(circle.propose("carol", "general", {})) is None


def test_a_remove_proposal_must_name_a_member(circle: Any) -> None:
    proposal = circle.propose("alice", "remove", {"member": circle.member("mallory")})
    assert circle.reason(proposal) == "that person is not a member"


# --- support --------------------------------------------------------------------------------


def test_replies_edits_and_tombstones(circle: Any) -> None:
    post = circle.post("bob", "rough day")
    reply = circle.post("carol", "here for you", reply_to=post.id)
    circle.act("bob", "msg.edit", {"target": post.id, "text": "rough week", "content_warning": "grief"})
    message = circle.state.messages[post.id]
    assert post_text(circle.reader, message.author, message.content)[:2] == ("rough week", "grief")
    assert message.edits == 1
    circle.act("bob", "msg.delete", {"target": post.id})
    message = circle.state.messages[post.id]
    assert (message.content, message.deleted) == (b"", True)
    assert post_text(circle.reader, message.author, message.content) == ("", None, True)
    assert circle.state.replies[post.id] == [reply.id]  # the thread keeps its shape
    again = circle.act("bob", "msg.edit", {"target": post.id, "text": "x", "content_warning": None})
    assert circle.reason(again) == support.IS_DELETED
    bad_reply = circle.post("carol", "?", reply_to=bytes(32))
    assert circle.reason(bad_reply) == support.BAD_REPLY_TO


def test_reactions_toggle_and_are_bounded(circle: Any) -> None:
    post = circle.post("bob", "made it to the appointment")
    for emoji in ["💜", "💜", "🌈"]:
        circle.act("carol", "msg.react", {"target": post.id, "emoji": emoji, "on": True})
    assert circle.state.reactions[post.id][circle.member("carol")] == ("🌈", "💜")
    circle.act("carol", "msg.react", {"target": post.id, "emoji": "🌈", "on": False})
    circle.act("carol", "msg.react", {"target": post.id, "emoji": "💜", "on": False})
    assert post.id not in circle.state.reactions
    for n in range(support.MAX_REACTIONS_PER_MEMBER):
        circle.act("dana", "msg.react", {"target": post.id, "emoji": f"e{n}", "on": True})
    extra = circle.act("dana", "msg.react", {"target": post.id, "emoji": "one too many", "on": True})
    assert circle.reason(extra) == support.TOO_MANY_REACTIONS


def test_checkins_can_be_answered(circle: Any) -> None:
    checkin = circle.act("dana", "checkin", {"status": "struggling", "note": "can't sleep"})
    reply = circle.post("alice", "call me", reply_to=checkin.id)
    assert circle.state.checkins[checkin.id].status == "struggling"
    assert circle.state.replies[checkin.id] == [reply.id]


# --- mutual aid -----------------------------------------------------------------------------


def _item(circle: Any, who: str, kind: str, **fields: Any) -> SignedOp:
    body = {"category": "food", "description": "groceries", "amount": None, "unit": None, "expires": None, **fields}
    return circle.act(who, kind, body)


def test_pledge_match_fulfil(circle: Any) -> None:
    request = _item(circle, "dana", "aid.request", amount=3, unit="bags")
    first = _item(circle, "bob", "aid.pledge")
    second = _item(circle, "carol", "aid.pledge")
    circle.act("bob", "aid.match", {"pledge": first.id, "request": request.id})
    circle.act("carol", "aid.match", {"pledge": second.id, "request": request.id})
    aid = circle.state.aid
    assert aid[request.id].status == "matched" and aid[request.id].matched == (first.id, second.id)
    again = circle.act("bob", "aid.match", {"pledge": first.id, "request": request.id})
    assert circle.reason(again) == "the pledge is not open"
    circle.act("dana", "aid.fulfil", {"request": request.id})
    assert {aid[i].status for i in (request.id, first.id, second.id)} == {"fulfilled"}


def test_withdrawals_release_matches(circle: Any) -> None:
    request = _item(circle, "dana", "aid.request")
    pledge = _item(circle, "bob", "aid.pledge")
    circle.act("bob", "aid.match", {"pledge": pledge.id, "request": request.id})
    circle.act("bob", "aid.withdraw", {"item": pledge.id})
    assert circle.state.aid[request.id].status == "open" and circle.state.aid[request.id].matched == ()
    other = _item(circle, "carol", "aid.pledge")
    circle.act("carol", "aid.match", {"pledge": other.id, "request": request.id})
    circle.act("dana", "aid.withdraw", {"item": request.id})
    assert circle.state.aid[other.id].status == "open"
    assert circle.state.aid[request.id].status == "withdrawn"
    own = _item(circle, "carol", "aid.request")
    refused = circle.act("carol", "aid.match", {"pledge": other.id, "request": own.id})
    assert circle.reason(refused) == "a pledge cannot be matched to its author's own request"


def test_withdrawing_a_closed_item_is_refused_before_signing_and_by_the_fold(circle: Any) -> None:
    from kith.sync.precheck import Refused, check_action

    request = _item(circle, "dana", "aid.request")
    circle.act("dana", "aid.fulfil", {"request": request.id})
    with pytest.raises(Refused, match="that request is already fulfilled: there is nothing to withdraw"):
        check_action(circle.state, circle.member("dana"), "aid.withdraw", {"item": request.id})
    forged = circle.act("dana", "aid.withdraw", {"item": request.id})  # a client that signs anyway
    assert circle.reason(forged) == "the item is already fulfilled or withdrawn"
    assert circle.state.aid[request.id].status == "fulfilled"


# --- fund and events ------------------------------------------------------------------------


def test_balances_are_per_currency(circle: Any) -> None:
    for who, amount, currency in (("carol", 500, "EUR"), ("dana", 700, "USD"), ("carol", 250, "EUR")):
        contribution = circle.contribute(who, amount, currency)
        circle.act("bob", "fund.receipt", {"contribution": contribution.id})
    assert circle.state.balances == {"EUR": 750, "USD": 700}
    assert [entry.entry for entry in circle.state.ledger] == ["contribution", "receipt"] * 3


def test_rsvp_latest_wins(circle: Any) -> None:
    event = circle.act("alice", "event.create", {"title": "Potluck", "starts": 1_800_000_000, "place_hint": "park",
                                                 "text": None})  # fmt: skip
    circle.act("bob", "event.rsvp", {"event": event.id, "answer": "maybe"})
    circle.act("bob", "event.rsvp", {"event": event.id, "answer": "yes"})
    assert circle.state.rsvps[event.id] == {circle.member("bob"): "yes"}
    missing = circle.act("bob", "event.rsvp", {"event": bytes(32), "answer": "yes"})
    assert circle.reason(missing) == "event is not an event of this circle"


def test_an_event_that_already_started_is_refused_before_signing(circle: Any) -> None:
    from kith.sync.precheck import Refused, check_action

    body = {"content": {"title": "Potluck", "place_hint": None, "text": None}, "starts": 1_600_000_000}
    with pytest.raises(Refused, match="already passed: give a start in the future"):
        check_action(circle.state, circle.member("bob"), "event.create", body, now=1_700_000_000)
    later = body | {"starts": 1_800_000_000}
    check_action(circle.state, circle.member("bob"), "event.create", later, now=1_700_000_000)


def test_op_kind_lists_exactly_the_kinds_the_fold_handles_and_docs_describe() -> None:
    """`OpKind` is the one list: every handler is keyed by a member, and docs/OPS.md §5
    describes each member (in bold, as ``**`kind`**``) and no other kind."""
    assert set(HANDLERS) == set(OpKind)
    assert all(type(kind) is str for kind in HANDLERS)  # (exact str: the fast dict path)
    assert set(CONTENT_KINDS) <= set(OpKind)
    ops_md = (Path(__file__).parents[2] / "docs" / "OPS.md").read_text(encoding="utf-8")
    section = ops_md.split("\n## 5. The kinds\n", 1)[1].split("\n## 6.", 1)[0]
    described = set(re.findall(r"\*\*`([a-z_.]+)`\*\*", section))
    assert described == {kind.value for kind in OpKind}


def test_typed_proposal_details_refuse_the_wrong_kind() -> None:
    """`Proposal.spend`, `proposed_charter` and `target` are for code that checked the kind:
    asked of another kind they raise our own bug's error, never return the wrong thing."""
    rule = DecisionRule(50, 50, False)
    base = Proposal(b"a" * 16, 2, 0, "general", "t", "", None, rule, (), "open", None, 0, 0, 0, None)
    spend = base._replace(kind="spend", details=SpendDetails(100, "EUR", "rent", "the rent"))
    remove = base._replace(kind="remove", details=b"m" * 16)
    review = base._replace(kind="review", details=ReviewDetails(b"r" * 16, {}))
    assert spend.spend.amount == 100
    assert remove.target == b"m" * 16
    assert review.target == b"r" * 16
    for proposal, attribute in [
        (base, "spend"),
        (base, "proposed_charter"),
        (base, "target"),
        (spend, "target"),
        (remove, "spend"),
        (review, "proposed_charter"),
        (base._replace(kind="general", details=b"m" * 16), "target"),
    ]:
        with pytest.raises(LocalProtocolError):
            getattr(proposal, attribute)


@pytest.mark.parametrize(
    ("kind", "field", "message"),
    [
        ("msg.edit", "target", "that is not a message of this circle"),
        ("fund.receipt", "contribution", "only a treasurer"),
        ("proposal.vote", "proposal", "that is not a proposal of this circle"),
        ("role.grant", "member", "that person is not a member of this circle"),
        ("role.handover", "member", "that person is not a member of this circle"),
        ("fund.stop", "contribution", "that is not a contribution of this circle"),
    ],
)
def test_an_id_of_the_wrong_type_is_refused_in_one_line_before_signing(
    circle: Any, kind: str, field: str, message: str
) -> None:
    """A client body whose id is not bytes (a list is not even hashable) is refused like an
    unknown id, never a TypeError from looking it up."""
    from kith.sync.precheck import Refused, check_action

    for wrong in ([1, 2], {"a": 1}, "ab" * 16, None):
        body = {field: wrong, "content": {"text": "hi"}, "role": "organizer", "choice": "approve", "reason": None}
        if kind == "fund.stop":
            body = {field: wrong, "last": "2026-12"}
        with pytest.raises(Refused, match=message):
            check_action(circle.state, circle.member("alice"), kind, body)
