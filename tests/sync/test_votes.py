"""Fair votes (issue 17 item 3) and closing times (issue 14 Build 4) in the fold.

Each attack is written as a modified client signing what the honest client never would
(its own parents, lamport and claimed time), and the honest fold must refuse it and stay
usable. The stateful test at the end checks every rule against a brute-force oracle that
walks the op DAG directly.
"""

from __future__ import annotations

from typing import Any

import pytest
from circle_support import PEOPLE, Circle
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from kith.identity.keys import MemberIdentity
from kith.sync.kinds import decisions
from kith.sync.kinds.circle import charter_body, genesis_op
from kith.sync.kinds.common import NOT_MEMBER
from kith.sync.kinds.membership import member_add_body
from kith.sync.kinds.records import DEFAULT_CLOSES_S, DecisionRule
from kith.sync.lifecycle import MAX_CLOSE_RANK, CircleView, Close, MembershipLifecycle
from kith.sync.ops import Op, SignedOp
from kith.sync.replica import CircleReplica
from kith.sync.state import fold_circle_state

SPEND = {"amount": 5, "currency": "EUR", "recipient": "Clinic", "purpose": "fees"}


def forge(circle: Circle, who: str, kind: str, body: dict[str, Any], parents: list[bytes], ts: int) -> SignedOp:
    """An op with parents and a claimed time of the forger's choosing, continuing their chain."""
    replica = circle.replica
    chain = replica.state.chains.get(PEOPLE[who].member_id)
    seq = chain[0] + 1 if chain else 1
    if chain and chain[1] not in parents:
        parents = [*parents, chain[1]]
    member = replica.state.members.get(PEOPLE[who].member_id)
    if chain is None and member is not None:
        parents = [*parents, member.joined_op]  # a first op cites its author's admission
    lamport = 1 + max(replica.dag.lamport_of(p) or 0 for p in parents)
    op = Op(
        circle.state.circle_id, PEOPLE[who].member_id, tuple(sorted(set(parents))), lamport, ts, kind, body, seq=seq
    )
    signed = SignedOp.decode(SignedOp.create(op, PEOPLE[who]).data)
    replica.ingest(signed)
    return signed


def status(circle: Circle, proposal: SignedOp) -> tuple[str, int, int, int]:
    record = circle.state.proposals[proposal.id]
    return record.status, record.approve, record.object, record.abstain


# --- closing times -------------------------------------------------------------------------


def test_the_closing_time_comes_from_the_rule_or_the_proposal(circle: Circle) -> None:
    default = circle.propose("alice", "general", {})
    own = circle.act(
        "alice", "proposal.create", {"kind": "general", "title": "t", "text": "", "details": {}, "closes": 3600}
    )
    assert circle.state.proposals[default.id].closes_at == default.op.ts + DEFAULT_CLOSES_S
    assert circle.state.proposals[own.id].closes_at == own.op.ts + 3600
    for bad in (59, 30 * 86400 + 1, True, "1h"):
        body = {"kind": "general", "title": "t", "text": "", "details": {}, "closes": bad}
        assert circle.reason(circle.act("alice", "proposal.create", body)).startswith("invalid body: closes")


def test_a_charter_sets_the_closing_window_per_kind() -> None:
    rules = {"spend": DecisionRule(50, 60, False, 600)}
    circle = Circle(charter_body("", rules=rules))
    circle.add("bob")
    assert circle.genesis.op.body["charter"]["rules"]["spend"]["closes_s"] == 600
    assert "closes_s" not in circle.genesis.op.body["charter"]["rules"]["general"]  # the default is not written
    spend = circle.propose("alice", "spend", SPEND)
    assert circle.state.proposals[spend.id].closes_at == spend.op.ts + 600
    bad = Circle(charter_body("", rules={"spend": DecisionRule(50, 60, False, 10)}))
    assert "circle" not in bad.state.info  # the genesis itself is invalid


def test_a_close_counts_only_the_votes_it_had_seen(circle: Circle) -> None:
    """spend: alice and bob approve; dana's objection, signed concurrently with carol's
    close and sorting before it, is listed but not counted: approved 2:0."""
    proposal = circle.propose("alice", "spend", SPEND)
    for who in ("alice", "bob"):
        circle.vote(who, proposal, "approve")
    before = list(circle.replica.dag.heads())
    closes_at = circle.state.proposals[proposal.id].closes_at
    dana_vote = forge(circle, "dana", "proposal.vote", {"proposal": proposal.id, "choice": "object", "reason": None},
                      before, closes_at - 10)  # fmt: skip
    assert status(circle, proposal) == ("open", 2, 1, 0)  # carol could still tip it either way
    aside = forge(circle, "carol", "checkin", {"status": "ok", "content": None}, before, closes_at - 5)
    close = forge(circle, "carol", "proposal.close", {"proposal": proposal.id}, [aside.id], closes_at)
    assert close.op.lamport > dana_vote.op.lamport  # the vote sorts first: it is in the fold before the close
    assert circle.reason(close) is None and circle.reason(dana_vote) is None
    assert status(circle, proposal) == ("approved", 2, 0, 0)
    assert circle.state.proposals[proposal.id].decided_by == close.id
    assert circle.state.votes[proposal.id][circle.member("dana")].op == dana_vote.id  # kept, visibly


def test_a_close_that_had_seen_every_vote_counts_them_all(circle: Circle) -> None:
    proposal = circle.propose("alice", "spend", SPEND)
    for who, choice in (("alice", "approve"), ("bob", "approve"), ("carol", "object"), ("dana", "object")):
        circle.vote(who, proposal, choice)
    assert status(circle, proposal) == ("rejected", 2, 2, 0)  # everyone voted: decided at once


def test_without_quorum_by_the_closing_a_proposal_is_rejected(circle: Circle) -> None:
    proposal = circle.propose("alice", "spend", SPEND)
    circle.vote("alice", proposal, "approve")
    close = circle.close("bob", proposal)
    assert status(circle, proposal) == ("rejected", 1, 0, 0)
    assert circle.state.proposals[proposal.id].decided_by == close.id


def test_duplicate_closes_are_harmless(circle: Circle) -> None:
    proposal = circle.propose("alice", "general", {})
    circle.vote("alice", proposal, "approve")
    circle.vote("bob", proposal, "approve")  # 2 of 4 approve; quorum 30%: approved early (50% even if 2 object)
    assert status(circle, proposal) == ("approved", 2, 0, 0)
    late = circle.close("carol", proposal)
    assert circle.reason(late) == "the proposal is already approved"
    assert status(circle, proposal) == ("approved", 2, 0, 0)


def test_removal_by_vote_happens_at_the_close(circle: Circle) -> None:
    """remove (quorum 75, threshold 67): 4 eligible, 2 approve and 1 abstains by the closing:
    open until then (eve objecting would make it 2:1 = 66% < 67%), removed at the close."""
    circle.add("eve")
    proposal = circle.propose("alice", "remove", {"member": circle.member("dana")})
    circle.vote("alice", proposal, "approve")
    circle.vote("bob", proposal, "approve")
    circle.vote("carol", proposal, "abstain")
    assert status(circle, proposal)[0] == "open"
    close = circle.close("carol", proposal)
    assert status(circle, proposal) == ("approved", 2, 0, 1)
    assert circle.member("dana") not in circle.state.members
    assert circle.state.proposals[proposal.id].decided_by == close.id


# --- attacks by modified clients ------------------------------------------------------------


def test_a_close_dated_before_the_closing_time_is_refused(circle: Circle) -> None:
    proposal = circle.propose("alice", "spend", SPEND)
    circle.vote("alice", proposal, "approve")
    circle.vote("bob", proposal, "approve")
    closes_at = circle.state.proposals[proposal.id].closes_at
    early = forge(
        circle, "bob", "proposal.close", {"proposal": proposal.id}, list(circle.replica.dag.heads()), closes_at - 1
    )
    assert circle.reason(early) == decisions.CLOSE_TOO_EARLY
    assert status(circle, proposal) == ("open", 2, 0, 0)
    circle.vote("carol", proposal, "object")  # the circle stays usable: carol still votes
    circle.close("dana", proposal)
    assert status(circle, proposal) == ("approved", 2, 1, 0)


def test_a_vote_that_had_seen_the_close_is_refused_however_it_is_dated(circle: Circle) -> None:
    proposal = circle.propose("alice", "spend", SPEND)
    circle.vote("alice", proposal, "approve")
    close = circle.close("bob", proposal)
    assert status(circle, proposal)[0] == "rejected"
    body = {"proposal": proposal.id, "choice": "approve", "reason": None}
    backdated = forge(circle, "carol", "proposal.vote", body, [close.id], proposal.op.ts + 1)
    assert circle.reason(backdated) == "the proposal is already rejected"
    assert status(circle, proposal) == ("rejected", 1, 0, 0)


def test_a_vote_claiming_a_time_after_the_closing_is_refused(circle: Circle) -> None:
    proposal = circle.propose("alice", "general", {})
    closes_at = circle.state.proposals[proposal.id].closes_at
    body = {"proposal": proposal.id, "choice": "approve", "reason": None}
    late = forge(circle, "bob", "proposal.vote", body, list(circle.replica.dag.heads()), closes_at)
    assert circle.reason(late) == decisions.VOTE_AFTER_CLOSING
    assert status(circle, proposal) == ("open", 0, 0, 0)


def test_puppets_added_after_the_proposal_opened_cannot_vote(circle: Circle) -> None:
    """bob, an organizer, adds eve and mallory after alice's proposal: once honestly (after
    it), once with a member.add that does not cite it and sorts before it."""
    circle.grant("bob", "organizer")
    bob_last = circle.post("bob", "hi")
    circle.post("alice", "a picnic?")
    proposal = circle.propose("alice", "general", {})
    hidden = forge(circle, "bob", "member.add", member_add_body(PEOPLE["mallory"].card().to_bytes()), [bob_last.id], 2)
    assert hidden.op.lamport < proposal.op.lamport and circle.reason(hidden) is None
    assert circle.member("mallory") in circle.state.members
    circle.add("eve", by="bob")
    body = {"proposal": proposal.id, "choice": "approve", "reason": None}
    for puppet, admission in (("mallory", hidden), ("eve", None)):
        parents = [*circle.replica.dag.heads(), *([admission.id] if admission else [])]
        vote = forge(circle, puppet, "proposal.vote", body, parents, circle.ts)
        assert circle.reason(vote) == decisions.NOT_IN_ELECTORATE, puppet
    record = circle.state.proposals[proposal.id]
    assert record.electorate == tuple(sorted(circle.member(n) for n in ("alice", "bob", "carol", "dana")))
    assert status(circle, proposal) == ("open", 0, 0, 0)


def test_a_removed_members_vote_is_refused_and_their_earlier_vote_stops_counting(circle: Circle) -> None:
    proposal = circle.propose("alice", "spend", SPEND)
    circle.vote("carol", proposal, "object")
    assert status(circle, proposal) == ("open", 0, 1, 0)
    circle.act("alice", "member.remove", {"member": circle.member("carol"), "reason": None})
    body = {"proposal": proposal.id, "choice": "object", "reason": None}
    after = forge(circle, "carol", "proposal.vote", body, list(circle.replica.dag.heads()), circle.ts)
    assert circle.reason(after) == NOT_MEMBER
    circle.vote("alice", proposal, "approve")
    circle.vote("bob", proposal, "approve")
    assert status(circle, proposal) == ("approved", 2, 0, 0)  # 2 of the three left; carol's objection is gone


def test_a_vote_and_a_removal_concurrent_with_each_other() -> None:
    """dana votes while, concurrently, alice removes her: whatever the order, her vote does
    not count once she is removed, and every delivery order gives the same state."""
    circle = Circle()
    for name in ("bob", "carol", "dana"):
        circle.add(name)
    proposal = circle.propose("alice", "spend", SPEND)
    heads = list(circle.replica.dag.heads())
    dana_join = circle.state.members[circle.member("dana")].joined_op
    vote = forge(circle, "dana", "proposal.vote", {"proposal": proposal.id, "choice": "object", "reason": None},
                 [*heads, dana_join], circle.ts)  # fmt: skip
    removal = forge(
        circle, "alice", "member.remove", {"member": circle.member("dana"), "reason": None}, heads, circle.ts
    )
    assert circle.reason(removal) is None
    assert circle.state.proposals[proposal.id].object == 0
    ops = list(circle.replica.ops())
    assert fold_circle_state(circle.state.circle_id, list(reversed(ops))).state_hash() == circle.state.state_hash()
    assert vote.id in {op.id for op in ops}


def test_a_close_by_a_non_member_is_refused(circle: Circle) -> None:
    proposal = circle.propose("alice", "general", {})
    closes_at = circle.state.proposals[proposal.id].closes_at
    body = {"proposal": proposal.id}
    forged = forge(circle, "mallory", "proposal.close", body, list(circle.replica.dag.heads()), closes_at)
    assert circle.reason(forged) == NOT_MEMBER
    assert status(circle, proposal)[0] == "open"


def test_a_second_vote_from_a_fork_counts_once() -> None:
    """bob forks his chain to vote twice, both citing the proposal: the first in fold order counts."""
    circle = Circle()
    for name in ("bob", "carol", "dana"):
        circle.add(name)
    proposal = circle.propose("alice", "general", {})
    heads = list(circle.replica.dag.heads())
    bob_join = circle.state.members[circle.member("bob")].joined_op
    votes = []
    for choice in ("approve", "object"):
        parents = tuple(sorted({*heads, bob_join}))
        body = {"proposal": proposal.id, "choice": choice, "reason": None}
        op = Op(circle.state.circle_id, circle.member("bob"), parents, proposal.op.lamport + 1, circle.ts,
                "proposal.vote", body, seq=1)  # fmt: skip
        votes.append(SignedOp.decode(SignedOp.create(op, PEOPLE["bob"]).data))
    for vote in votes:
        circle.replica.ingest(vote)
    first, second = sorted(votes, key=lambda v: v.id)
    assert circle.reason(first) is None and circle.reason(second) == decisions.ALREADY_VOTED
    record = circle.state.proposals[proposal.id]
    assert record.approve + record.object == 1


# --- the node's duty, decided without I/O ----------------------------------------------------


def test_each_member_node_closes_in_its_turn_and_only_while_it_is_open(circle: Circle) -> None:
    proposal = circle.propose("alice", "general", {})
    closes_at = circle.state.proposals[proposal.id].closes_at
    view = CircleView(circle.state.circle_id, circle.state, frozenset())
    lifecycles = {name: MembershipLifecycle(circle.member(name)) for name in ("alice", "bob", "carol", "dana")}
    outsider = MembershipLifecycle(PEOPLE["mallory"].member_id)
    assert all(not lc.closes_due(view, closes_at - 1) for lc in lifecycles.values())
    first = [name for name, lc in lifecycles.items() if lc.closes_due(view, closes_at)]
    assert len(first) == 1
    assert lifecycles[first[0]].closes_due(view, closes_at) == [Close(view.circle, (proposal.id,))]
    late = closes_at + MAX_CLOSE_RANK * lifecycles["alice"].turn_delay
    assert all(lc.closes_due(view, late) for lc in lifecycles.values())
    assert outsider.closes_due(view, late) == []
    circle.close(first[0], proposal)
    view = CircleView(circle.state.circle_id, circle.state, frozenset())
    assert all(not lc.closes_due(view, late) for lc in lifecycles.values())
    assert any(isinstance(a, Close) for a in lifecycles[first[0]].tick(view, late)) is False


# --- the rules as a stateful property, against a brute-force oracle --------------------------

NAMES = ["alice", "bob", "carol", "dana", "eve", "mallory"]
VOTERS = {n: MemberIdentity(n, bytes([i + 1]) * 32, bytes([i + 101]) * 32, 0) for i, n in enumerate(NAMES)}
replicas = st.integers(0, 2)
names = st.sampled_from(NAMES)


class FairVotes(RuleBasedStateMachine):
    """Three replicas open proposals, vote, add and remove members, close (at, or a modified
    client before, the closing time) and sync partially. Checked at every step, on every
    replica, by walking the DAG directly:

    * a proposal's electorate is exactly the members at its position whose admission is an
      ancestor of it (nobody admitted after it, or concurrently, votes);
    * a proposal decided by a close counted no vote outside the close's causal past;
    * a vote with a valid close of its proposal in its past never counts;
    * at the end every replica holds the same state as a fresh fold of every op.
    """

    def __init__(self) -> None:
        super().__init__()
        genesis = genesis_op(VOTERS["alice"], name="Votes", salt=bytes(16), ts=1, epoch=bytes([0x42]) * 16)
        self.circle = genesis.op.circle
        self.replicas = [CircleReplica(self.circle, undo_window=w) for w in (6, 10_000, 64)]
        self.genesis = genesis
        self.ops: dict[bytes, SignedOp] = {}
        self.ts = 1

    def _act(self, r: int, who: str, kind: str, body: dict[str, Any], ts: int | None = None) -> SignedOp | None:
        replica = self.replicas[r]
        if VOTERS[who].member_id not in replica.state.members and kind != "member.add":
            return None
        self.ts += 1
        signed = replica.author_op(VOTERS[who], kind, body, ts=ts if ts is not None else self.ts)
        replica.ingest(signed)
        self.ops[signed.id] = signed
        return signed

    def _ancestors(self, op_id: bytes) -> set[bytes]:
        seen, stack = set(), [op_id]
        while stack:
            current = stack.pop()
            for parent in self.ops[current].op.parents:
                if parent not in seen:
                    seen.add(parent)
                    stack.append(parent)
        return seen

    @initialize()
    def found(self) -> None:
        self.ops[self.genesis.id] = self.genesis
        self.replicas[0].ingest(self.genesis)
        for name in ("bob", "carol", "dana"):
            self._act(0, "alice", "member.add", member_add_body(VOTERS[name].card().to_bytes()))
        self._act(0, "alice", "role.grant", {"member": VOTERS["bob"].member_id, "role": "organizer"})
        for replica in self.replicas[1:]:
            replica.ingest_many(self.replicas[0].ops())

    @rule(
        r=replicas,
        who=names,
        kind=st.sampled_from(["general", "spend", "remove"]),
        window=st.sampled_from([None, 60, 600]),
    )
    def propose(self, r: int, who: str, kind: str, window: int | None) -> None:
        details: Any = {"general": {}, "spend": SPEND, "remove": {"member": VOTERS["dana"].member_id}}[kind]
        body: dict[str, Any] = {"kind": kind, "title": "t", "text": "", "details": details}
        if window is not None:
            body["closes"] = window
        self._act(r, who, "proposal.create", body)

    @rule(r=replicas, who=names, choice=st.sampled_from(["approve", "object", "abstain"]), data=st.data())
    def vote(self, r: int, who: str, choice: str, data: Any) -> None:
        proposals = sorted(self.replicas[r].state.proposals)
        if proposals:
            proposal = data.draw(st.sampled_from(proposals))
            self._act(r, who, "proposal.vote", {"proposal": proposal, "choice": choice, "reason": None})

    @rule(r=replicas, who=names, newcomer=names)
    def add(self, r: int, who: str, newcomer: str) -> None:
        self._act(r, who, "member.add", member_add_body(VOTERS[newcomer].card().to_bytes()))

    @rule(r=replicas, who=names, victim=names)
    def remove(self, r: int, who: str, victim: str) -> None:
        self._act(r, who, "member.remove", {"member": VOTERS[victim].member_id, "reason": None})

    @rule(r=replicas, who=names, early=st.booleans(), data=st.data())
    def close(self, r: int, who: str, early: bool, data: Any) -> None:
        state = self.replicas[r].state
        proposals = sorted(state.proposals)
        if proposals:
            proposal = data.draw(st.sampled_from(proposals))
            closes_at = state.proposals[proposal].closes_at
            self.ts = max(self.ts, closes_at - (3 if early else 1))
            self._act(r, who, "proposal.close", {"proposal": proposal})

    @rule(a=replicas, b=replicas, data=st.data())
    def sync(self, a: int, b: int, data: Any) -> None:
        missing = [op for op in self.replicas[a].ops() if op.id not in {o.id for o in self.replicas[b].ops()}]
        part = data.draw(st.lists(st.sampled_from(missing), max_size=len(missing))) if missing else []
        for op in part:
            self.replicas[b].ingest(op)

    @invariant()
    def every_rule_holds(self) -> None:
        for replica in self.replicas:
            state = replica.state
            if "circle" not in state.info:
                continue
            for proposal_id, proposal in state.proposals.items():
                past = self._ancestors(proposal_id)
                for member in proposal.electorate:
                    # (The member may have left since; their admission is what counts.)
                    admissions = [
                        op.id for op in self.ops.values()
                        if (op.op.kind == "member.add" and op.op.body.get("member") == member)
                        or (op.op.kind == "circle.create" and op.op.author == member)
                    ]  # fmt: skip
                    assert any(a in past for a in admissions), "a voter the proposer had not seen admitted"
                closer = proposal.decided_by
                if closer is not None and self.ops[closer].op.kind == "proposal.close":
                    seen = self._ancestors(closer)
                    counted = proposal.approve + proposal.object + proposal.abstain
                    in_past = {voter for voter, vote in state.votes.get(proposal_id, {}).items() if vote.op in seen}
                    assert counted <= len(in_past)
            for op in replica.ops():
                if op.op.kind != "proposal.vote" or state.is_rejected(op.id) is not None:
                    continue
                target = state.proposals.get(op.op.body["proposal"])
                closer = target.decided_by if target is not None else None
                if closer is not None and self.ops[closer].op.kind == "proposal.close":
                    assert closer not in self._ancestors(op.id), "a vote that had seen the close counted"

    def teardown(self) -> None:
        everything = list(self.ops.values())
        for replica in self.replicas:
            replica.ingest_many(everything)
        fresh = fold_circle_state(self.circle, sorted(everything, key=lambda op: (op.op.lamport, op.id)))
        for replica in self.replicas:
            assert replica.state.state_hash() == fresh.state_hash()


TestFairVotes = FairVotes.TestCase
TestFairVotes.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@pytest.mark.parametrize("window", [60, 3600])
def test_a_proposals_window_is_part_of_what_the_proposer_signs(window: int) -> None:
    circle = Circle()
    circle.add("bob")
    body = {"kind": "general", "title": "t", "text": "", "details": {}, "closes": window}
    proposal = circle.act("alice", "proposal.create", body)
    assert circle.state.proposals[proposal.id].closes_at - proposal.op.ts == window


def test_the_honest_client_refuses_before_signing_what_the_fold_would_refuse(circle: Circle) -> None:
    from kith.sync.precheck import Refused, check_action

    proposal = circle.propose("alice", "general", {})
    closes_at = circle.state.proposals[proposal.id].closes_at
    circle.vote("bob", proposal, "approve")
    vote = {"proposal": proposal.id, "choice": "object", "reason": None}
    with pytest.raises(Refused, match="you already voted on that proposal"):
        check_action(circle.state, circle.member("bob"), "proposal.vote", vote, now=closes_at - 100)
    with pytest.raises(Refused, match="voting on that proposal has closed"):
        check_action(circle.state, circle.member("carol"), "proposal.vote", vote, now=closes_at)
    check_action(circle.state, circle.member("carol"), "proposal.vote", vote, now=closes_at - 1)
    circle.add("eve")
    with pytest.raises(Refused, match="you joined after it was made"):
        check_action(circle.state, circle.member("eve"), "proposal.vote", vote, now=closes_at - 1)
    body = {"kind": "general", "title": "t", "text": "", "details": {}, "closes": 30}
    with pytest.raises(Refused, match="a proposal stays open from 1 minute to 30 days"):
        check_action(circle.state, circle.member("alice"), "proposal.create", body)
