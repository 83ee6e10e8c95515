"""Decision kinds: ``proposal.create``, ``.vote``, ``.withdraw`` and ``.close``.

A proposal is decided by the charter rule for its kind *as it stood when the proposal
was made* (a charter change mid-vote does not move the goalposts). Its **electorate** is
fixed when it opens: the members at its position whose admission its author had seen
(in its causal past), so members let in afterwards, or concurrently by someone who
hid the proposal from themselves, cannot pack the vote. Each eligible member votes once;
a vote is final.

A proposal has a **closing time** ``closes_at`` = its claimed time + the window it names
(``closes``, seconds) or its rule's (``closes_s``). No clock takes part in the fold:
a ``proposal.close`` by any member, claiming a time at or after ``closes_at``, ends
the vote, and exactly the votes in the close's causal past are counted (a vote that had
seen the close sorts after it and is refused). Nodes do not accept a close dated in
their future (p2pnet), so a lying clock cannot close early. Before its closing a
proposal is decided only when no missing vote could change the outcome. See
`kith.sync.kinds.governance` for the arithmetic and effects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kith.sync.kinds import schema, stewardship
from kith.sync.kinds.circle import parse_charter
from kith.sync.kinds.common import TARGET_NOT_MEMBER, Handler, OpRejected
from kith.sync.kinds.governance import close_proposal, evaluate, settle
from kith.sync.kinds.records import (
    ALL_PROPOSAL_KINDS,
    ELECTION,
    OPEN,
    ORGANIZER,
    REVIEW,
    WITHDRAWN,
    Proposal,
    ProposalDetails,
    SpendDetails,
    Vote,
)
from kith.sync.opkind import OpKind

if TYPE_CHECKING:
    from kith.sync.ops import Op, SignedOp
    from kith.sync.state import CircleState

MAX_OPEN_PROPOSALS_PER_MEMBER = 16
"""Bounds the work a member can make every removal cost (all open proposals are re-evaluated)."""
VOTE_CHOICES = ("approve", "object", "abstain")

_CREATE_KEYS = frozenset({"kind", "title", "text", "details"})
_CLOSES = "closes"
"""Optional in a ``proposal.create`` body: its own window in seconds (else the rule's)."""
_SPEND_KEYS = frozenset({"amount", "currency", "recipient", "purpose"})
_REMOVE_KEYS = frozenset({"member"})
_EMPTY: frozenset[str] = frozenset()
_VOTE_KEYS = frozenset({"proposal", "choice", "reason"})
_WITHDRAW_KEYS = frozenset({"proposal"})
_CLOSE_KEYS = frozenset({"proposal"})

TOO_MANY_OPEN = f"a member may have at most {MAX_OPEN_PROPOSALS_PER_MEMBER} open proposals"
NOT_A_PROPOSAL = "proposal is not a proposal of this circle"
NOT_IN_ELECTORATE = "voter is not in the electorate (their admission was not in the proposal's causal past)"
NOT_PROPOSER = "only its author may withdraw a proposal"
OWN_REMOVAL = "a member cannot propose their own removal (they may leave)"
ALREADY_VOTED = "the voter already voted on this proposal (a vote is final)"
VOTE_AFTER_CLOSING = "the vote claims a time at or after the proposal's closing time"
CLOSE_TOO_EARLY = "the close claims a time before the proposal's closing time"


def _not_open(status: str) -> str:
    return f"the proposal is already {status}"


def _recipient(value: Any) -> bytes | str:
    if type(value) is bytes:
        return schema.member_ref(value, "details.recipient")
    return schema.short_text(value, "details.recipient")


def _details(kind: str, raw: Any, state: CircleState) -> ProposalDetails:
    if kind == "spend":
        body = schema.exact_keys(raw, _SPEND_KEYS, "details")
        return SpendDetails(
            schema.amount(body["amount"], "details.amount"),
            schema.currency(body["currency"], "details.currency"),
            _recipient(body["recipient"]),
            schema.long_text(body["purpose"], "details.purpose", schema.MAX_NOTE_CHARS),
        )
    if kind == "charter":
        return parse_charter(raw, "details")
    if kind == "remove":
        return schema.member_ref(schema.exact_keys(raw, _REMOVE_KEYS, "details")["member"], "details.member")
    if kind in (REVIEW, ELECTION):
        return stewardship.parse_details(kind, raw)
    schema.exact_keys(raw, _EMPTY, "details")
    return None


def electorate(
    state: CircleState, signed: SignedOp, exclude: bytes | None, *, organizers: bool = True
) -> tuple[bytes, ...]:
    """Members at ``signed``'s position whose admission ``signed`` had seen, sorted
    (without ``organizers``: less the organizers, who do not vote on an election)."""
    admissions = {
        member.joined_op: member_id
        for member_id, member in state.members.items()
        if member_id != exclude and (organizers or ORGANIZER not in member.roles)
    }
    seen = state.causal.seen_among(admissions, signed.id)
    return tuple(sorted(admissions[op_id] for op_id in seen))


def proposal_create(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    closes = type(body) is dict and _CLOSES in body
    body = schema.exact_keys(body, _CREATE_KEYS | {_CLOSES} if closes else _CREATE_KEYS, "body")
    window = schema.closing_window(body[_CLOSES], _CLOSES) if closes else None
    kind = schema.one_of(body["kind"], ALL_PROPOSAL_KINDS, "kind")
    title = schema.short_text(body["title"], "title", schema.MAX_TITLE_CHARS)
    text = schema.long_text(body["text"], "text", schema.MAX_POST_CHARS, allow_blank=True)
    details = _details(kind, body["details"], state)
    if kind == "remove" and details not in state.members:
        raise OpRejected(TARGET_NOT_MEMBER)
    if kind == "remove" and details == op.author:
        raise OpRejected(OWN_REMOVAL)
    excluded = details if kind == "remove" and type(details) is bytes else None
    if kind in (REVIEW, ELECTION):
        named = stewardship.check_create(state, op, kind, details, window is not None)
        excluded = named if kind == REVIEW else None
    open_count = state.open_by_author.get(op.author, 0)
    if open_count >= MAX_OPEN_PROPOSALS_PER_MEMBER:
        raise OpRejected(TOO_MANY_OPEN)
    charter = state.info["charter"]
    rule = charter.rule(kind)
    if kind == ELECTION:
        rule = rule._replace(closes_s=charter.settings.idle_s)
    proposal = Proposal(
        op.author,
        op.lamport,
        op.ts,
        kind,
        title,
        text,
        details,
        rule,
        # The person a remove proposal or review names does not vote on it.
        electorate(state, signed, excluded, organizers=kind != ELECTION),
        OPEN,
        None,
        0,
        0,
        0,
        None,
        op.ts + (window if window is not None else rule.closes_s),
    )
    state.put(state.proposals, signed.id, proposal)
    state.put(state.open_proposals, signed.id, (op.lamport, signed.id))
    state.put(state.open_by_author, op.author, open_count + 1)
    if kind == ELECTION:
        state.put(state.open_elections, signed.id, (op.lamport, signed.id))


def proposal_vote(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    body = schema.exact_keys(body, _VOTE_KEYS, "body")
    proposal_id = schema.op_ref(body["proposal"], "proposal")
    choice = schema.one_of(body["choice"], VOTE_CHOICES, "choice")
    reason = schema.optional_long(body["reason"], "reason", schema.MAX_NOTE_CHARS)
    proposal = state.proposals.get(proposal_id)
    if proposal is None:
        raise OpRejected(NOT_A_PROPOSAL)
    if proposal.status != OPEN:
        raise OpRejected(_not_open(proposal.status))
    if op.author not in proposal.electorate:
        raise OpRejected(NOT_IN_ELECTORATE)
    if op.ts >= proposal.closes_at:
        raise OpRejected(VOTE_AFTER_CLOSING)
    votes = state.votes.get(proposal_id)
    if votes is None:
        votes = {}
        state.put(state.votes, proposal_id, votes)
    if op.author in votes:
        raise OpRejected(ALREADY_VOTED)
    state.put(votes, op.author, Vote(choice, signed.id, reason))
    if evaluate(state, proposal_id, signed):
        settle(state, signed)


def proposal_withdraw(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    body = schema.exact_keys(body, _WITHDRAW_KEYS, "body")
    proposal_id = schema.op_ref(body["proposal"], "proposal")
    proposal = state.proposals.get(proposal_id)
    if proposal is None:
        raise OpRejected(NOT_A_PROPOSAL)
    if proposal.author != op.author:
        raise OpRejected(NOT_PROPOSER)
    if proposal.status != OPEN:
        raise OpRejected(_not_open(proposal.status))
    state.put(state.proposals, proposal_id, proposal._replace(status=WITHDRAWN, decided_by=signed.id))
    close_proposal(state, proposal_id, proposal)


def proposal_close(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    body = schema.exact_keys(body, _CLOSE_KEYS, "body")
    proposal_id = schema.op_ref(body["proposal"], "proposal")
    proposal = state.proposals.get(proposal_id)
    if proposal is None:
        raise OpRejected(NOT_A_PROPOSAL)
    if proposal.status != OPEN:
        raise OpRejected(_not_open(proposal.status))
    if op.ts < proposal.closes_at:
        raise OpRejected(CLOSE_TOO_EARLY)
    votes = state.votes.get(proposal_id, {})
    cast = [vote.op for voter, vote in votes.items() if voter in state.members]
    if evaluate(state, proposal_id, signed, state.causal.seen_among(cast, signed.id)):
        settle(state, signed)


HANDLERS: dict[str, Handler] = {
    OpKind.PROPOSAL_CREATE: proposal_create,
    OpKind.PROPOSAL_VOTE: proposal_vote,
    OpKind.PROPOSAL_WITHDRAW: proposal_withdraw,
    OpKind.PROPOSAL_CLOSE: proposal_close,
}
