"""Moderation kinds: an organizer hides a post for everyone.

``msg.hide`` is the circle's answer to a report (`sync.reports`): the post's sealed content
leaves the state (a tombstone, as for a delete: author, position and replies stay), so no
honest client can show it again, and a `Hidden` record with the organizer and their reason
stays for good: it is the moderation log's entry (`sync.views.moderation_entries`), which
every member reads, and it tells the post's author what happened and why.

Hiding wins every race: an edit after a hide is refused (it would bring the text back),
an edit before it is blanked with the rest, and a hide of a message its author deleted
(before or after) is accepted, so the log is the same in every fold order. A hide needs
the organizer role, and a demotion strikes the hides its target signed without seeing it
(`kith.sync.kinds.common.ROLE_KINDS`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kith.sync.kinds import schema
from kith.sync.kinds.common import Handler, OpRejected, require_role
from kith.sync.kinds.records import ORGANIZER, Hidden
from kith.sync.opkind import OpKind

if TYPE_CHECKING:
    from kith.sync.ops import Op, SignedOp
    from kith.sync.state import CircleState

MAX_REASON_CHARS = 500
_HIDE_KEYS = frozenset({"target", "reason"})

NOT_A_POST = "target is not a message of this circle"
ALREADY_HIDDEN = "the message is already hidden"


def msg_hide(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    body = schema.exact_keys(body, _HIDE_KEYS, "body")
    target = schema.op_ref(body["target"], "target")
    reason = schema.long_text(body["reason"], "reason", MAX_REASON_CHARS)
    require_role(state, op.author, ORGANIZER)
    message = state.messages.get(target)
    if message is None:
        raise OpRejected(NOT_A_POST)
    if target in state.hidden:
        raise OpRejected(ALREADY_HIDDEN)
    state.put(state.messages, target, message._replace(content=b""))
    state.put(state.hidden, target, Hidden(op.author, signed.id, op.lamport, op.ts, reason))


HANDLERS: dict[str, Handler] = {OpKind.MSG_HIDE: msg_hide}
