"""Deciding proposals and removing members: the rules both membership and votes rely on.

Decision arithmetic (docs/OPS.md, "Deciding a proposal"), all integers:

* eligible ``n``: members of the proposal's electorate who are still members;
* ``a``, ``o``, ``b``: their latest approve, object and abstain votes; ``v = a + o + b``;
* **approved** when ``a >= 1``, ``v * 100 >= quorum_pct * n``,
  ``a * 100 >= threshold_pct * (a + o)`` and, under consent, ``o == 0``;
* **rejected** when ``n == 0``, or under consent ``o >= 1``, or even if every eligible
  member who has not voted approved (``a' = a + n - v``) the threshold would fail:
  ``a' == 0`` or ``a' * 100 < threshold_pct * (a' + o)``;
* otherwise open. Decided is final.

A proposal is evaluated after each vote on it, and every open proposal is evaluated
again (in fold order of creation) whenever members are removed, since that changes
``n`` and drops the removed members' votes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sync.kinds.common import SUCCESSION
from sync.kinds.records import APPROVED, OPEN, ORGANIZER, REJECTED, Grant, Proposal

if TYPE_CHECKING:
    from sync.ops import SignedOp
    from sync.state import CircleState


def close_proposal(state: CircleState, proposal_id: bytes, proposal: Proposal) -> None:
    """Drop a proposal that is no longer open from the open indexes."""
    state.drop(state.open_proposals, proposal_id)
    state.put(state.open_by_author, proposal.author, state.open_by_author[proposal.author] - 1)


def tally(state: CircleState, proposal_id: bytes, proposal: Proposal) -> tuple[int, int, int, int]:
    """(eligible, approve, object, abstain) at the current position."""
    members = state.members
    votes = state.votes.get(proposal_id, {})
    eligible = approve = objection = abstain = 0
    for voter in proposal.electorate:
        if voter not in members:
            continue
        eligible += 1
        vote = votes.get(voter)
        if vote is None:
            continue
        choice = vote.choice
        if choice == "approve":
            approve += 1
        elif choice == "object":
            objection += 1
        else:
            abstain += 1
    return eligible, approve, objection, abstain


def decide(proposal: Proposal, eligible: int, approve: int, objection: int, abstain: int) -> str:
    rule = proposal.rule
    if eligible == 0 or (rule.consent and objection):
        return REJECTED
    voted = approve + objection + abstain
    if (
        approve >= 1
        and voted * 100 >= rule.quorum_pct * eligible
        and approve * 100 >= rule.threshold_pct * (approve + objection)
    ):
        return APPROVED
    best = approve + eligible - voted
    if best == 0 or best * 100 < rule.threshold_pct * (best + objection):
        return REJECTED
    return OPEN


def evaluate(state: CircleState, proposal_id: bytes, at: SignedOp) -> bool:
    """Update a proposal's tally and status at op ``at``; return True if it removed a member."""
    proposal = state.proposals[proposal_id]
    eligible, approve, objection, abstain = tally(state, proposal_id, proposal)
    status = decide(proposal, eligible, approve, objection, abstain)
    decided_by = at.id if status != OPEN else None
    updated = proposal._replace(
        status=status, decided_by=decided_by, approve=approve, object=objection, abstain=abstain
    )
    if updated != proposal:
        state.put(state.proposals, proposal_id, updated)
    if status == OPEN:
        return False
    close_proposal(state, proposal_id, proposal)
    if status != APPROVED:
        return False
    if proposal.kind == "charter":
        state.put(state.info, "charter", proposal.details._replace(adopted_by=proposal_id))  # type: ignore[union-attr]
    elif proposal.kind == "remove" and proposal.details in state.members:
        # A removal by vote takes effect where it is decided; it strikes nothing (docs/OPS.md
        # §2c: votes race each other, so which ops it had not seen is not well defined).
        drop_member(state, proposal.details, at)  # type: ignore[arg-type]
        return True
    return False


def settle(state: CircleState, at: SignedOp) -> None:
    """Re-evaluate every open proposal after members were removed, until nothing changes."""
    changed = True
    while changed:
        changed = False
        for proposal_id in sorted(state.open_proposals, key=state.open_proposals.__getitem__):
            if proposal_id in state.open_proposals and evaluate(state, proposal_id, at):
                changed = True
                break


def drop_member(state: CircleState, member_id: bytes, at: SignedOp) -> None:
    """Remove a member (at op ``at``); if that leaves no organizer, the longest-standing
    member becomes one, by succession (docs/OPS.md §2b).

    Only an approved ``remove`` proposal or a compromise report can remove the last
    organizer (direct removal and leaving refuse it): the circle must not be left
    leaderless.
    """
    state.drop(state.members, member_id)
    # The removed member holds the current key: every removal makes a rotation due.
    state.put(state.info, "rotation_due", True)
    members = state.members
    if not members or any(ORGANIZER in member.roles for member in members.values()):
        return
    eldest = min(members, key=lambda m: (members[m].joined_lamport, members[m].joined_op))
    member = members[eldest]
    # Their own op needs no acknowledgement (it is in their chain, and cannot be cited twice).
    grants = tuple(sorted((*member.grants, Grant(ORGANIZER, at.id, at.op.author == eldest))))
    path = state.seniority.get(eldest)
    if path is None:
        path = (SUCCESSION,)
        state.put(state.seniority, eldest, path)
    state.put(
        members,
        eldest,
        member._replace(roles=tuple(sorted((*member.roles, ORGANIZER))), grants=grants, path=path),
    )
