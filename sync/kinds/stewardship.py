"""Governance that outlives its organizers (docs/OPS.md §6a): handovers, membership
reviews and organizer elections.

* ``role.handover`` gives the organizer role to another member and gives up the author's
  own in one op, so there is never a moment with neither or both.
* A **review** (``proposal.create`` of kind ``review``) is a remove proposal whose reason is
  sealed to the organizers at its position (never to the circle, never to the member it
  names). Decided early like a remove proposal; at its closing it is approved if the tally
  passes, rejected if the quorum took part and said no, and otherwise **expires**: the
  circle did not decide, and nothing happens.
* An **election** (kind ``organizer``) names a member. Idleness is not read from claimed
  times (an author chooses those): the election itself is the idle timer. It stays open
  for the charter's ``idle_s`` and can be approved only at its closing; any op of a
  current organizer that had seen it (other than what nodes sign by themselves) ends it as
  rejected, because that organizer is evidently there. Approved, the member becomes an
  organizer junior to every appointed one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kith.identity.errors import LocalProtocolError
from kith.sync.kinds import schema
from kith.sync.kinds.common import TARGET_NOT_MEMBER, OpRejected, has_role, require_role
from kith.sync.kinds.governance import close_proposal
from kith.sync.kinds.records import ORGANIZER, REJECTED, REVIEW, Grant, ProposalDetails, ReviewDetails
from kith.sync.opkind import OpKind

if TYPE_CHECKING:
    from kith.sync.ops import Op, SignedOp
    from kith.sync.state import CircleState

MAX_REASON_BOXES = 32
"""A review's reason goes to the organizers; a circle has few (and each box is a few hundred bytes)."""
MIN_REASON_BOX, MAX_REASON_BOX = 49, 4096
"""A sealed box is 48 bytes of overhead plus the sealed CBOR (`sync.reviews`)."""

_HANDOVER_KEYS = frozenset({"member"})
_REVIEW_KEYS = frozenset({"member", "reasons"})
_ELECTION_KEYS = frozenset({"member"})

PASSIVE_KINDS = frozenset({OpKind.KEY_ACK, OpKind.KEY_SHARE, OpKind.KEY_ROTATE, OpKind.PROPOSAL_CLOSE})
"""Ops a node signs by itself (acknowledging and passing on keys, rotating after a removal,
closing a vote whose time has come): they show a device is on, not that an organizer is
there, so they do not end an election. A ``member.add`` answering a join request is one
too (the node admits holders of a valid invite by itself)."""

HANDOVER_SELF = "a handover names another member"
HANDOVER_TAKEN = "that member already has this role"
REASON_NOT_ORGANIZER = "a review's reason may be sealed only to organizers, never to the member it reviews"
OWN_REVIEW = "a member cannot propose their own review (they may leave)"
ELECTION_BY_ORGANIZER = "an organizer grants the role (kith member grant); elections are for when none is there"
ELECTION_OF_ORGANIZER = "that member is already an organizer"
ELECTION_WINDOW = "an election stays open for the charter's idle period (it names no closes)"
ORGANIZER_ACTED = "an organizer acted after seeing the election"


def role_handover(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    body = schema.exact_keys(body, _HANDOVER_KEYS, "body")
    target = schema.member_ref(body["member"], "member")
    if target == op.author:
        raise OpRejected(HANDOVER_SELF)
    heir = state.members.get(target)
    if heir is None:
        raise OpRejected(TARGET_NOT_MEMBER)
    author = require_role(state, op.author, ORGANIZER)
    if ORGANIZER in heir.roles:
        raise OpRejected(HANDOVER_TAKEN)
    # The heir's place is that of anyone the author appoints with this op (§2b): below the
    # author, after the author's earlier appointees. Someone who was an organizer before
    # keeps their old place, as with any grant.
    path = state.seniority.get(target)
    if path is None:
        if author.path is None:
            raise LocalProtocolError("an organizer without a seniority path appointed someone")
        path = (*author.path, op.seq)
        state.put(state.seniority, target, path)
    state.put(
        state.members,
        target,
        heir._replace(
            roles=tuple(sorted((*heir.roles, ORGANIZER))),
            grants=tuple(sorted((*heir.grants, Grant(ORGANIZER, signed.id, False)))),
            path=path,
        ),
    )
    state.put(
        state.members,
        op.author,
        author._replace(
            roles=tuple(r for r in author.roles if r != ORGANIZER),
            grants=tuple(g for g in author.grants if g.role != ORGANIZER),
            path=None,
        ),
    )


def parse_details(kind: str, raw: Any) -> ReviewDetails | bytes:
    """The ``details`` of a review or an election (body checks only)."""
    if kind == REVIEW:
        body = schema.exact_keys(raw, _REVIEW_KEYS, "details")
        member = schema.member_ref(body["member"], "details.member")
        reasons = body["reasons"]
        if type(reasons) is not dict:
            raise schema.InvalidBody("details.reasons", "wrong type")
        if len(reasons) > MAX_REASON_BOXES:
            raise schema.InvalidBody("details.reasons", "too many items")
        for recipient, box in reasons.items():
            schema.member_ref(recipient, "details.reasons key")
            if type(box) is not bytes:
                raise schema.InvalidBody("details.reasons value", "wrong type")
            if not MIN_REASON_BOX <= len(box) <= MAX_REASON_BOX:
                raise schema.InvalidBody("details.reasons value", "wrong size")
        return ReviewDetails(member, dict(sorted(reasons.items())))
    return schema.member_ref(schema.exact_keys(raw, _ELECTION_KEYS, "details")["member"], "details.member")


def check_create(state: CircleState, op: Op, kind: str, details: ProposalDetails, has_closes: bool) -> bytes:
    """Authority checks of a review or an election; returns the member it names."""
    if kind == REVIEW:
        if not isinstance(details, ReviewDetails):
            raise LocalProtocolError("a review's details were not decoded as a review")
        target = details.member
        if target not in state.members:
            raise OpRejected(TARGET_NOT_MEMBER)
        if target == op.author:
            raise OpRejected(OWN_REVIEW)
        for recipient in details.reasons:
            record = state.members.get(recipient)
            if recipient == target or record is None or ORGANIZER not in record.roles:
                raise OpRejected(REASON_NOT_ORGANIZER)
        return target
    if not isinstance(details, bytes):
        raise LocalProtocolError("an election's details were not decoded as a member id")
    candidate = state.members.get(details)
    if candidate is None:
        raise OpRejected(TARGET_NOT_MEMBER)
    if ORGANIZER in state.members[op.author].roles:
        raise OpRejected(ELECTION_BY_ORGANIZER)
    if ORGANIZER in candidate.roles:
        raise OpRejected(ELECTION_OF_ORGANIZER)
    if has_closes:
        raise OpRejected(ELECTION_WINDOW)
    return details


def acts_as_organizer(state: CircleState, signed: SignedOp) -> bool:
    """Is this op (about to be applied) an organizer being there? Checked before its handler."""
    op = signed.op
    if op.kind in PASSIVE_KINDS:
        return False
    if op.kind == OpKind.MEMBER_ADD and type(op.body) is dict and op.body.get("request") is not None:
        return False
    return op.author in state.members and has_role(state, op.author, ORGANIZER)


def end_elections_seen_by(state: CircleState, signed: SignedOp) -> None:
    """An organizer acted (``signed`` was applied): every open election it had seen is rejected."""
    for proposal_id in sorted(state.causal.seen_among(list(state.open_elections), signed.id)):
        proposal = state.proposals[proposal_id]
        state.put(state.proposals, proposal_id, proposal._replace(status=REJECTED, decided_by=signed.id))
        close_proposal(state, proposal_id, proposal)
