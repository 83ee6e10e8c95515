"""What every op-kind handler shares: the rejection error, reasons, role checks.

A handler has the signature ``handle(state, signed, op, body) -> None``. It validates
the body first, then its authority against the state at the op's position, and only
then mutates, through ``state.put``/``state.drop``/``state.push`` so that every change
can be undone. It raises `OpRejected` (or `InvalidBody`) to reject; the fold then undoes
whatever the handler changed, so a rejected op never keeps an effect.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kith.identity.errors import RemoteProtocolError
from kith.sync.kinds.records import ORGANIZER, TREASURER, Member
from kith.sync.opkind import OpKind

if TYPE_CHECKING:
    from kith.sync.ops import Op, SignedOp
    from kith.sync.state import CircleState

Handler = Callable[["CircleState", "SignedOp", "Op", Any], None]

# Reasons checked by the fold itself, before any handler runs.
WRONG_CIRCLE = "op belongs to another circle"
UNKNOWN_KIND = "unknown kind"
NO_GENESIS = "the circle has no genesis yet"
NOT_MEMBER = "author is not a member"
NOT_ACKED = "its author had not yet seen their own admission (their first op must cite their member.add)"
NOT_ORGANIZER = "only an organizer may do this"
NOT_TREASURER = "only a treasurer may do this"
ROLE_NOT_ACKED = "its author had not yet seen the grant of their role (cite the role.grant first)"
NOT_SENIOR = "only a more senior organizer may remove or demote an organizer"
TARGET_NOT_MEMBER = "that person is not a member"
LAST_ORGANIZER = "the last organizer cannot leave the circle leaderless"
STRUCK_REMOVED = "its author was removed by an op that had not seen it"
STRUCK_DEMOTED = "its author lost the role it needs by an op that had not seen it"

SUCCESSION = 2**53
"""The seniority path of an organizer by succession (docs/OPS.md §2b): junior to any
organizer who was granted the role, senior to those the successor grants it to."""

ROLE_KINDS: dict[str, frozenset[str]] = {
    ORGANIZER: frozenset(
        {
            OpKind.MEMBER_ADD,
            OpKind.MEMBER_REMOVE,
            OpKind.ROLE_GRANT,
            OpKind.ROLE_REVOKE,
            OpKind.INVITE_CREATE,
            OpKind.INVITE_REVOKE,
            OpKind.RELAY_ADD,
            OpKind.RELAY_REMOVE,
            OpKind.KEY_ROTATE,
            OpKind.KEY_SHARE,
            OpKind.MSG_HIDE,
        }
    ),
    TREASURER: frozenset({OpKind.FUND_RECEIPT, OpKind.FUND_DISBURSE, OpKind.ALLOC_PAY}),
}
"""The kinds a demotion strikes when its target's op was made without seeing it: every kind
that can need the role (docs/OPS.md §2c)."""


class OpRejected(RemoteProtocolError):
    """An op fails its authority check at its position; it is kept, listed, and has no effect."""


def organizer_count(state: CircleState) -> int:
    return sum(1 for member in state.members.values() if ORGANIZER in member.roles)


def has_role(state: CircleState, author: bytes, role: str) -> bool:
    """Does ``author`` hold ``role`` and has their chain acknowledged its grant?"""
    grant = state.members[author].grant(role)
    return grant is not None and grant.acked


def require_role(state: CircleState, author: bytes, role: str) -> Member:
    """The author's record, if they hold ``role`` and have seen its grant; else reject."""
    member = state.members[author]
    grant = member.grant(role)
    if grant is None:
        raise OpRejected(NOT_ORGANIZER if role == ORGANIZER else NOT_TREASURER)
    if not grant.acked:
        raise OpRejected(ROLE_NOT_ACKED)
    return member


def is_senior(author: Member, target: Member) -> bool:
    """Is ``author`` a strictly more senior organizer than ``target``?"""
    return author.path is not None and (target.path is None or author.path < target.path)


def may_invite(state: CircleState, author: bytes, refusal: str) -> None:
    """Organizers (who have seen their grant) may add members, invite and move keys;
    anyone may when the charter lets members invite. Else reject with ``refusal``."""
    if state.info["charter"].members_can_invite or has_role(state, author, ORGANIZER):
        return
    if state.members[author].grant(ORGANIZER) is not None:
        raise OpRejected(ROLE_NOT_ACKED)
    raise OpRejected(refusal)
