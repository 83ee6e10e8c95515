"""Deciding proposals and removing members: the rules both membership and votes rely on.

Decision arithmetic (docs/OPS.md, "Deciding a proposal"), all integers:

* eligible ``n``: members of the proposal's electorate who are still members;
* ``a``, ``o``, ``b``: their approve, object and abstain votes (one each, final);
  ``v = a + o + b``; ``r = n - v`` have not voted;
* a proposal **passes** a tally when ``a >= 1``, ``v * 100 >= quorum_pct * n``,
  ``a * 100 >= threshold_pct * (a + o)`` and, under consent, ``o == 0``.

While it is open, a proposal is decided early only when no way the ``r`` missing
votes could go would change the outcome:

* **approved early** when it passes even if nobody else votes (quorum) and every
  missing vote objects (``a * 100 >= threshold_pct * (a + o + r)``; under consent
  ``r == 0``);
* **rejected early** when ``n == 0``, or under consent ``o >= 1``, or it fails even if
  every missing vote approves (``a' = a + r``: ``a' == 0`` or
  ``a' * 100 < threshold_pct * (a' + o)``).

At its closing (the first valid ``proposal.close`` in fold order) it is decided for good
by the votes in the close's causal past: approved if that tally passes, else rejected.

A proposal is evaluated after each vote on it, and every open proposal is evaluated
again (in fold order of creation) whenever members are removed, since that changes
``n`` and drops the removed members' votes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kith.sync.kinds.common import SUCCESSION
from kith.sync.kinds.records import (
    APPROVED,
    ELECTION,
    EXPIRED,
    OPEN,
    ORGANIZER,
    REJECTED,
    REVIEW,
    DecisionRule,
    Grant,
    Proposal,
)

if TYPE_CHECKING:
    from kith.sync.ops import SignedOp
    from kith.sync.state import CircleState


def close_proposal(state: CircleState, proposal_id: bytes, proposal: Proposal) -> None:
    """Drop a proposal that is no longer open from the open indexes."""
    state.drop(state.open_proposals, proposal_id)
    state.put(state.open_by_author, proposal.author, state.open_by_author[proposal.author] - 1)
    if proposal.kind == ELECTION:
        state.drop(state.open_elections, proposal_id)


def tally(
    state: CircleState, proposal_id: bytes, proposal: Proposal, counted: set[bytes] | None = None
) -> tuple[int, int, int, int]:
    """(eligible, approve, object, abstain) at the current position; with ``counted``,
    only the votes whose op ids it holds are counted."""
    members = state.members
    votes = state.votes.get(proposal_id, {})
    eligible = approve = objection = abstain = 0
    for voter in proposal.electorate:
        if voter not in members:
            continue
        eligible += 1
        vote = votes.get(voter)
        if vote is None or (counted is not None and vote.op not in counted):
            continue
        choice = vote.choice
        if choice == "approve":
            approve += 1
        elif choice == "object":
            objection += 1
        else:
            abstain += 1
    return eligible, approve, objection, abstain


def passes(rule: DecisionRule, eligible: int, approve: int, objection: int, abstain: int) -> bool:
    """Whether this tally meets the rule (the outcome if the proposal closed now)."""
    voted = approve + objection + abstain
    return (
        eligible > 0
        and approve >= 1
        and not (rule.consent and objection)
        and voted * 100 >= rule.quorum_pct * eligible
        and approve * 100 >= rule.threshold_pct * (approve + objection)
    )


def decide(proposal: Proposal, eligible: int, approve: int, objection: int, abstain: int) -> str:
    """The early decision: approved or rejected only if no missing vote could change it."""
    rule = proposal.rule
    if eligible == 0 or (rule.consent and objection):
        return REJECTED
    missing = eligible - (approve + objection + abstain)
    if passes(rule, eligible, approve, objection, abstain) and (
        approve * 100 >= rule.threshold_pct * (approve + objection + missing) and not (rule.consent and missing)
    ):
        return APPROVED
    best = approve + missing
    if best == 0 or best * 100 < rule.threshold_pct * (best + objection):
        return REJECTED
    return OPEN


def decide_at_close(proposal: Proposal, eligible: int, approve: int, objection: int, abstain: int) -> str:
    """The decision at the closing: the tally passes or the proposal is rejected; a review
    without its quorum expires instead (the circle did not decide, docs/OPS.md §6a)."""
    if passes(proposal.rule, eligible, approve, objection, abstain):
        return APPROVED
    voted = approve + objection + abstain
    if proposal.kind == REVIEW and (eligible == 0 or voted * 100 < proposal.rule.quorum_pct * eligible):
        return EXPIRED
    return REJECTED


def evaluate(state: CircleState, proposal_id: bytes, at: SignedOp, counted: set[bytes] | None = None) -> bool:
    """Update a proposal's tally and status at op ``at``; return True if it removed a member.

    ``counted``: ``at`` closes the proposal, and these are the vote ops it had seen.
    """
    proposal = state.proposals[proposal_id]
    eligible, approve, objection, abstain = tally(state, proposal_id, proposal, counted)
    if counted is None:
        status = decide(proposal, eligible, approve, objection, abstain)
        if status == APPROVED and proposal.kind == ELECTION:
            status = OPEN  # the election is the idle timer: approved only at its closing
    else:
        status = decide_at_close(proposal, eligible, approve, objection, abstain)
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
        state.put_info("charter", proposal.proposed_charter._replace(adopted_by=proposal_id))
    elif proposal.kind in ("remove", REVIEW):
        target = proposal.target
        if target in state.members:
            # A removal by vote takes effect where it is decided; it strikes nothing (docs/OPS.md
            # §2c: votes race each other, so which ops it had not seen is not well defined).
            drop_member(state, target, at)
            return True
    elif proposal.kind == ELECTION:
        elect(state, proposal.target, proposal, at)
    return False


def elect(state: CircleState, member_id: bytes, proposal: Proposal, at: SignedOp) -> None:
    """An approved election: the member (if still one, and not an organizer already) becomes
    an organizer, junior to every appointed one and to the successor (docs/OPS.md §6a)."""
    member = state.members.get(member_id)
    if member is None or ORGANIZER in member.roles:
        return
    path = state.seniority.get(member_id)
    if path is None:
        path = (SUCCESSION, proposal.lamport)
        state.put(state.seniority, member_id, path)
    grants = tuple(sorted((*member.grants, Grant(ORGANIZER, at.id, at.op.author == member_id))))
    state.put(
        state.members,
        member_id,
        member._replace(roles=tuple(sorted((*member.roles, ORGANIZER))), grants=grants, path=path),
    )


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
    state.put_info("rotation_due", True)
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
