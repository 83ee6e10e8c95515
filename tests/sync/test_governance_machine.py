"""Roles, handovers, elections and reviews as a stateful property (docs/OPS.md §6a).

Three replicas act concurrently and sync partially. Authors are usually members with the
right role and sometimes anyone (a modified client signing what the honest one would
not); a forger continues a chain from an old op so that a handover or a vote races a
demotion or a removal. After every step each replica's state must keep the governance
invariants below; at the end everyone syncs and must hold byte-identical state, equal to
a fresh fold of the union of all ops.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from sync_support import sealed_body

from kith.identity.keys import MemberIdentity
from kith.sync.kinds.circle import charter_body, genesis_op
from kith.sync.kinds.membership import member_add_body
from kith.sync.kinds.records import APPROVED, ELECTION, EXPIRED, OPEN, ORGANIZER, REVIEW, Governance, ReviewDetails
from kith.sync.ops import Op, SignedOp
from kith.sync.replica import CircleReplica
from kith.sync.state import fold_circle_state

NAMES = ["alice", "bob", "carol", "dana", "eve", "mallory"]
PEOPLE = {name: MemberIdentity(name, bytes([i + 1]) * 32, bytes([i + 101]) * 32, 0) for i, name in enumerate(NAMES)}
IDLE = 3600
CHARTER = charter_body(members_can_invite=True, governance=Governance(organizers_at=3, idle_s=IDLE))
REPLICAS = 3

people = st.sampled_from(NAMES)
replicas = st.integers(min_value=0, max_value=REPLICAS - 1)


def member(name: str) -> bytes:
    return PEOPLE[name].member_id


class Governed(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.genesis = genesis_op(PEOPLE["alice"], name="Stewards", salt=bytes(16), ts=1, epoch=bytes([0x42]) * 16,
                                  charter=CHARTER)  # fmt: skip
        self.circle = self.genesis.op.circle
        self.replicas = [CircleReplica(self.circle, undo_window=w) for w in (8, 10_000, 64)]
        self.everything: dict[bytes, SignedOp] = {}
        self.ts = 1

    def _act(self, index: int, who: str, kind: str, body: dict[str, Any], ts: int | None = None) -> SignedOp:
        self.ts += 1
        replica = self.replicas[index]
        # Someone acting on a replica that has not seen their latest op forks their chain (two
        # devices, or a modified client): an organizer's fork can make a removal rest on its
        # own strike, which the invariants below still require to fold one way.
        body = sealed_body(kind, body, member(who), self.circle)
        signed = replica.author_op(PEOPLE[who], kind, body, ts=self.ts if ts is None else ts)
        result = replica.ingest(signed)
        assert result.applied == (signed,)
        self.everything[signed.id] = signed
        return signed

    def _author(self, data: Any, index: int, role: str | None = None) -> str:
        members = self.replicas[index].state.members
        names = [n for n in NAMES if member(n) in members]
        holders = [n for n in names if role is not None and role in members[member(n)].roles]
        if not names or data.draw(st.integers(0, 7)) == 0:
            return data.draw(people)
        return data.draw(st.sampled_from(holders or names))

    def _proposal(self, data: Any, index: int) -> bytes | None:
        proposals = self.replicas[index].state.proposals
        open_ones = sorted(p for p, rec in proposals.items() if rec.status == OPEN)
        if not open_ones:
            return None
        return data.draw(st.sampled_from(open_ones))

    @initialize()
    def found(self) -> None:
        self.everything[self.genesis.id] = self.genesis
        self.replicas[0].ingest(self.genesis)
        for name in ("bob", "carol", "dana"):
            self._act(0, "alice", "member.add", member_add_body(PEOPLE[name].card().to_bytes()))
        self._act(0, "alice", "role.grant", {"member": member("bob"), "role": ORGANIZER})
        for name in ("bob", "carol", "dana"):
            self._act(0, name, "msg.post", {"text": "hi", "reply_to": None, "content_warning": None, "urgent": False})
        for replica in self.replicas[1:]:
            replica.ingest_many(self.replicas[0].ops())

    # --- acts ------------------------------------------------------------------------------

    @rule(r=replicas, who=people, data=st.data())
    def add(self, r: int, who: str, data: Any) -> None:
        self._act(r, self._author(data, r), "member.add", member_add_body(PEOPLE[who].card().to_bytes()))

    @rule(r=replicas, data=st.data())
    def post(self, r: int, data: Any) -> None:
        body = {"text": "here", "reply_to": None, "content_warning": None, "urgent": False}
        self._act(r, self._author(data, r, ORGANIZER), "msg.post", body)

    @rule(r=replicas, whom=people, data=st.data())
    def grant(self, r: int, whom: str, data: Any) -> None:
        self._act(r, self._author(data, r, ORGANIZER), "role.grant", {"member": member(whom), "role": ORGANIZER})

    @rule(r=replicas, whom=people, data=st.data())
    def revoke(self, r: int, whom: str, data: Any) -> None:
        self._act(r, self._author(data, r, ORGANIZER), "role.revoke", {"member": member(whom), "role": ORGANIZER})

    @rule(r=replicas, whom=people, data=st.data())
    def handover(self, r: int, whom: str, data: Any) -> None:
        self._act(r, self._author(data, r, ORGANIZER), "role.handover", {"member": member(whom)})

    @rule(r=replicas, whom=people, data=st.data())
    def remove(self, r: int, whom: str, data: Any) -> None:
        body = {"member": member(whom), "reason": None}
        self._act(r, self._author(data, r, ORGANIZER), "member.remove", body)

    @rule(r=replicas, whom=people, review=st.booleans(), data=st.data())
    def propose(self, r: int, whom: str, review: bool, data: Any) -> None:
        state = self.replicas[r].state
        if review:
            organizers = [m for m, rec in state.members.items() if ORGANIZER in rec.roles and m != member(whom)]
            details: dict[str, Any] = {"member": member(whom), "reasons": {m: bytes(60) for m in organizers}}
        else:
            details = {"member": member(whom)}
        body = {"kind": "review" if review else "organizer", "title": "t", "text": "", "details": details}
        self._act(r, self._author(data, r), "proposal.create", body)

    @rule(r=replicas, choice=st.sampled_from(["approve", "approve", "object", "abstain"]), data=st.data())
    def vote(self, r: int, choice: str, data: Any) -> None:
        proposal = self._proposal(data, r)
        if proposal is not None:
            body = {"proposal": proposal, "choice": choice, "reason": None}
            self._act(r, self._author(data, r), "proposal.vote", body)

    @rule(r=replicas, early=st.booleans(), data=st.data())
    def close(self, r: int, early: bool, data: Any) -> None:
        """A node closes at the closing time; a lying clock tries one second before it."""
        proposal = self._proposal(data, r)
        if proposal is not None:
            closes_at = self.replicas[r].state.proposals[proposal].closes_at
            ts = closes_at - 1 if early else max(self.ts, closes_at)
            self.ts = max(self.ts, ts)
            self._act(r, self._author(data, r), "proposal.close", {"proposal": proposal}, ts=ts)

    @rule(r=replicas, forger=people, whom=people, handover=st.booleans(), data=st.data())
    def race(self, r: int, forger: str, whom: str, handover: bool, data: Any) -> None:
        """A modified client continues its chain from its last op, citing nothing newer, so
        its handover (or grant) may sort before a demotion or removal it never saw."""
        replica = self.replicas[r]
        chain = replica.state.chains.get(member(forger))
        if chain is None:
            return
        seq, last = chain
        kind, body = ("role.handover", {"member": member(whom)}) if handover else (
            "role.grant", {"member": member(whom), "role": ORGANIZER})  # fmt: skip
        lamport = 1 + (replica.dag.lamport_of(last) or 0)
        op = Op(
            self.circle, member(forger), (last,), lamport, data.draw(st.integers(0, 10**6)), kind, body, seq=seq + 1
        )
        signed = SignedOp.decode(SignedOp.create(op, PEOPLE[forger]).data)
        replica.ingest(signed)
        self.everything[signed.id] = signed

    @rule(r=replicas, whom=people, data=st.data())
    def elect_together(self, r: int, whom: str, data: Any) -> None:
        """The members who are not organizers open an election, all approve, and a node
        closes it at its closing (so elections are approved often enough to test)."""
        state = self.replicas[r].state
        voters = [n for n in NAMES if member(n) in state.members and ORGANIZER not in state.members[member(n)].roles]
        if not voters:
            return
        body = {"kind": "organizer", "title": "t", "text": "", "details": {"member": member(whom)}}
        election = self._act(r, voters[0], "proposal.create", body)
        if election.id not in self.replicas[r].state.proposals:
            return
        for name in voters:
            self._act(r, name, "proposal.vote", {"proposal": election.id, "choice": "approve", "reason": None})
        record = self.replicas[r].state.proposals.get(election.id)
        if record is None:
            return  # refused (named no member, or an organizer)
        self.ts = max(self.ts, record.closes_at)
        self._act(r, voters[-1], "proposal.close", {"proposal": election.id}, ts=self.ts)

    @rule(a=replicas, b=replicas, data=st.data())
    def sync(self, a: int, b: int, data: Any) -> None:
        lacking = [signed for signed in self.replicas[a].ops() if not self.replicas[b].has(signed.id)]
        if lacking:
            self.replicas[b].ingest_many(data.draw(st.lists(st.sampled_from(lacking), max_size=len(lacking) + 2)))

    # --- invariants --------------------------------------------------------------------------

    @invariant()
    def governance_holds(self) -> None:
        for replica in self.replicas:
            state = replica.state
            if "circle" not in state.info:
                continue
            organizers = [m for m, rec in state.members.items() if ORGANIZER in rec.roles]
            # Never leaderless, and every organizer has a path fixed in the seniority table.
            assert not state.members or organizers
            for m in organizers:
                assert state.members[m].path is not None and state.seniority[m] == state.members[m].path
            for proposal_id, proposal in state.proposals.items():
                votes = state.votes.get(proposal_id, {})
                assert set(votes) <= set(proposal.electorate)  # puppets never vote
                if proposal.kind == REVIEW:
                    assert isinstance(proposal.details, ReviewDetails)
                    assert proposal.details.member not in proposal.electorate
                if proposal.kind == ELECTION and proposal.status == APPROVED:
                    closing = self.everything[proposal.decided_by]  # type: ignore[index]
                    assert closing.op.kind == "proposal.close" and closing.op.ts >= proposal.closes_at
                    assert proposal.closes_at == proposal.ts + IDLE
                    elected = state.members.get(proposal.details)  # type: ignore[arg-type]
                    decided = self.everything[proposal.decided_by].op.lamport  # type: ignore[index]
                    if elected is not None and elected.joined_lamport < decided:
                        assert proposal.details in state.seniority  # elected (or an organizer before)
                if proposal.status == EXPIRED:
                    assert proposal.kind == REVIEW
                    closing = self.everything[proposal.decided_by]  # type: ignore[index]
                    assert closing.op.kind == "proposal.close" and closing.op.ts >= proposal.closes_at
            for proposal_id in state.open_elections:
                assert state.proposals[proposal_id].status == OPEN
            assert set(state.open_elections) == {
                p for p, rec in state.proposals.items() if rec.kind == ELECTION and rec.status == OPEN
            }

    def teardown(self) -> None:
        if not self.everything:
            return
        changed = True
        while changed:
            changed = False
            for source in self.replicas:
                for target in self.replicas:
                    lacking = [s for s in source.ops() if not target.has(s.id)]
                    if lacking:
                        target.ingest_many(reversed(lacking))
                        changed = True
        for proposal in self.replicas[0].state.proposals.values():
            event(f"{proposal.kind} {proposal.status}")
        if any(replica.state.oscillations for replica in self.replicas):
            return  # a removal cycle a forger built: no answer exists (OPS.md §2c, "Cycles")
        hashes = {replica.state_hash() for replica in self.replicas}
        fresh = fold_circle_state(self.circle, self.replicas[0].ops())
        # An organizer who back-dates or forks their own chain can make a removal rest on its
        # own strike; the fold meets every removal without its strikes first, so there is
        # still one answer (OPS.md §2c, §6a; tests/sync/test_fold_termination.py). Before that
        # rule this machine found two answers within about 1,500 examples.
        assert len(hashes) == 1
        if not fresh.oscillations:
            assert fresh.state_hash() in hashes


Governed.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestGoverned = Governed.TestCase
