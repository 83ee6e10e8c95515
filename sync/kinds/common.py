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

from identity.errors import RemoteProtocolError
from sync.kinds.records import ORGANIZER

if TYPE_CHECKING:
    from sync.ops import Op, SignedOp
    from sync.state import CircleState

Handler = Callable[["CircleState", "SignedOp", "Op", Any], None]

# Reasons checked by the fold itself, before any handler runs.
WRONG_CIRCLE = "op belongs to another circle"
UNKNOWN_KIND = "unknown kind"
NO_GENESIS = "the circle has no genesis yet"
NOT_MEMBER = "author is not a member"
NOT_ORGANIZER = "only an organizer may do this"
NOT_TREASURER = "only a treasurer may do this"
TARGET_NOT_MEMBER = "that person is not a member"
LAST_ORGANIZER = "the last organizer cannot leave the circle leaderless"


class OpRejected(RemoteProtocolError):
    """An op fails its authority check at its position; it is kept, listed, and has no effect."""


def organizer_count(state: CircleState) -> int:
    return sum(1 for member in state.members.values() if ORGANIZER in member.roles)
