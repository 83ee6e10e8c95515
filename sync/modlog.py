"""The moderation log: every member's record of who removed, demoted, handed over or
elected whom, or hid whose post, when (the signer's claimed time) and by which op or decision.

It is a view, derived from the folded state and the circle's ops in fold order, so it says
exactly what the fold decided and every member's node shows the same log. Only ops that
took effect are listed (a rejected or struck removal is in ``rejected`` instead); what is
sealed stays sealed (a review's reason is for the organizers, `sync.reviews`).

Adding an entry kind: an op kind whose accepted ops are moderation gets a builder in
`OP_ENTRIES` (``(state, op) -> entries``); a proposal kind decided by vote gets a label in
`DECISION_ENTRIES`. Nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kith.identity.errors import LocalProtocolError
from kith.sync.kinds.records import ELECTION, OPEN, ORGANIZER, REVIEW, WITHDRAWN
from kith.sync.opkind import OpKind

if TYPE_CHECKING:
    from kith.sync.ops import SignedOp
    from kith.sync.state import CircleState


@dataclass(frozen=True, slots=True)
class ModEntry:
    kind: str
    """What happened: see `OP_ENTRIES` and `DECISION_ENTRIES`."""
    target: bytes
    """The member it happened to."""
    actor: bytes
    """Who signed the op that made it happen (for a decision: the vote or close that decided)."""
    ts: int
    """That op's claimed time (for display: a claim, not a clock)."""
    lamport: int
    op: bytes
    """The op that made it happen."""
    proposal: bytes | None = None
    """The proposal that decided it, if a vote did."""
    outcome: str = ""
    """A role for demotions and handovers; approved, rejected or expired for decisions."""
    note: str | None = None
    """A direct removal's stated reason (every member can read the op anyway)."""


EntryBuilder = Callable[["CircleState", "SignedOp"], Iterable[ModEntry]]


def _entry(
    kind: str,
    target: bytes,
    signed: SignedOp,
    *,
    proposal: bytes | None = None,
    outcome: str = "",
    note: str | None = None,
) -> ModEntry:
    op = signed.op
    return ModEntry(kind, target, op.author, op.ts, op.lamport, signed.id, proposal, outcome, note)


def _removal(state: CircleState, signed: SignedOp) -> Iterable[ModEntry]:
    body = signed.op.body
    if body["member"] == signed.op.author:
        return ()  # leaving is not moderation
    return (_entry("removal", body["member"], signed, note=body["reason"]),)


def _demotion(state: CircleState, signed: SignedOp) -> Iterable[ModEntry]:
    body = signed.op.body
    if body["member"] == signed.op.author:
        return ()  # giving up one's own role
    return (_entry("demotion", body["member"], signed, outcome=body["role"]),)


def _handover(state: CircleState, signed: SignedOp) -> Iterable[ModEntry]:
    return (_entry("handover", signed.op.body["member"], signed, outcome="organizer"),)


def _hide(state: CircleState, signed: SignedOp) -> Iterable[ModEntry]:
    """A post hidden for everyone (``msg.hide``): the entry names its author and the reason."""
    message = state.messages.get(signed.op.body["target"])
    if message is None:
        return ()
    return (_entry("hide", message.author, signed, outcome="post", note=signed.op.body["reason"]),)


OP_ENTRIES: dict[str, EntryBuilder] = {
    OpKind.MEMBER_REMOVE: _removal,
    OpKind.ROLE_REVOKE: _demotion,
    OpKind.ROLE_HANDOVER: _handover,
    OpKind.MSG_HIDE: _hide,
}
"""Op kinds whose accepted ops are moderation, and how each becomes log entries."""

DECISION_ENTRIES: dict[str, str] = {
    "remove": "removal by vote",
    REVIEW: "review",
    ELECTION: "election",
}
"""Proposal kinds whose decisions are moderation, and the entry kind they are logged as."""


def moderation_log(state: CircleState, ops: Iterable[SignedOp], *, limit: int | None = 200) -> tuple[ModEntry, ...]:
    """The log in fold order (the newest ``limit`` entries). ``ops``: the circle's ops in
    fold order (`sync.replica.CircleReplica.ops`); the ones the fold rejected are skipped."""
    deciders: dict[bytes, list[bytes]] = {}
    for proposal_id, proposal in state.proposals.items():
        if proposal.kind in DECISION_ENTRIES and proposal.status not in (OPEN, WITHDRAWN):
            if proposal.decided_by is None:
                raise LocalProtocolError("a decided proposal has no deciding op")
            deciders.setdefault(proposal.decided_by, []).append(proposal_id)
    entries: list[ModEntry] = []
    for signed in ops:
        kind = signed.op.kind
        builder = OP_ENTRIES.get(kind)
        decided = deciders.get(signed.id)
        if builder is None and decided is None:
            continue
        if state.is_rejected(signed.id) is not None:
            continue
        if builder is not None:
            entries.extend(builder(state, signed))
        for proposal_id in sorted(decided or ()):
            proposal = state.proposals[proposal_id]
            entries.append(
                _entry(
                    DECISION_ENTRIES[proposal.kind],
                    proposal.target,
                    signed,
                    proposal=proposal_id,
                    outcome=proposal.status,
                )
            )
    return tuple(entries if limit is None else entries[-limit:])


def organizer_advice(state: CircleState) -> str | None:
    """What clients say when a circle has grown to the charter's ``organizers_at`` members
    and still has one organizer (docs/OPS.md §6a): advice, never a rule of the fold."""
    charter = state.info.get("charter")
    if charter is None:
        return None
    organizers = [m for m, record in state.members.items() if ORGANIZER in record.roles]
    if len(organizers) != 1 or len(state.members) < charter.settings.organizers_at:
        return None
    return (
        f"{len(state.members)} members and one organizer: if they burn out or lose their device the circle"
        " waits for an election. Grant a second organizer: kith member grant CIRCLE NAME organizer"
    )
