"""Support kinds: posts, replies, edits, deletes, reactions and wellbeing check-ins.

Only a message's author may edit or delete it. A delete leaves a tombstone (the id, the
author and the thread position stay; text and content warning are blanked), so replies
keep their place. A reply may answer a post or a check-in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kith.sync.kinds import keys, schema
from kith.sync.kinds.common import Handler, OpRejected
from kith.sync.kinds.records import Checkin, Message
from kith.sync.opkind import OpKind

if TYPE_CHECKING:
    from kith.sync.ops import Op, SignedOp
    from kith.sync.state import CircleState

CHECKIN_STATUSES = ("ok", "struggling", "need-help")
MAX_REACTIONS_PER_MEMBER = 8
"""Distinct reactions one member may leave on one message."""

_POST_KEYS = frozenset({"content", "reply_to", "urgent"})
_EDIT_KEYS = frozenset({"target", "content"})
_DELETE_KEYS = frozenset({"target"})
_REACT_KEYS = frozenset({"target", "emoji", "on"})
_CHECKIN_KEYS = frozenset({"status", "content"})
_POST_CONTENT_KEYS = frozenset({"text", "content_warning"})
_CHECKIN_CONTENT_KEYS = frozenset({"note"})


def post_content(fields: Any) -> dict[str, Any]:
    """Validate the sealed fields of a post or edit (when opened, by views and authors)."""
    content = schema.exact_keys(fields, _POST_CONTENT_KEYS, "content")
    schema.long_text(content["text"], "text", schema.MAX_POST_CHARS)
    schema.optional_short(content["content_warning"], "content_warning", schema.MAX_SHORT_CHARS)
    return content


def checkin_content(fields: Any) -> dict[str, Any]:
    content = schema.exact_keys(fields, _CHECKIN_CONTENT_KEYS, "content")
    schema.optional_long(content["note"], "note", schema.MAX_NOTE_CHARS)
    return content


BAD_REPLY_TO = "reply_to is not a message or check-in of this circle"
NOT_A_MESSAGE = "target is not a message of this circle"
NOT_AUTHOR = "only a message's author may change it"
IS_DELETED = "the message is deleted"
IS_HIDDEN = "the message is hidden by an organizer"
NOT_REACTABLE = "target is not a message or check-in of this circle"
TOO_MANY_REACTIONS = f"a member may leave at most {MAX_REACTIONS_PER_MEMBER} reactions on one message"


def _add_to_thread(state: CircleState, item_id: bytes, parent: bytes | None) -> None:
    if parent is None:
        state.push(state.roots, item_id)
        return
    children = state.replies.get(parent)
    if children is None:
        state.put(state.replies, parent, [item_id])
    else:
        state.push(children, item_id)


def msg_post(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    body = schema.exact_keys(body, _POST_KEYS, "body")
    content = schema.content_blob(body["content"], "content", state.epochs)
    reply_to = schema.optional_op_ref(body["reply_to"], "reply_to")
    urgent = schema.boolean(body["urgent"], "urgent")
    keys.require_fresh_key(state, op, content)
    if reply_to is not None and reply_to not in state.messages and reply_to not in state.checkins:
        raise OpRejected(BAD_REPLY_TO)
    state.put(
        state.messages,
        signed.id,
        Message(op.author, op.lamport, op.ts, content, reply_to, urgent, 0, False),
    )
    _add_to_thread(state, signed.id, reply_to)


def _own_live_message(state: CircleState, op: Op, target: bytes) -> Message:
    message = state.messages.get(target)
    if message is None:
        raise OpRejected(NOT_A_MESSAGE)
    if message.author != op.author:
        raise OpRejected(NOT_AUTHOR)
    if message.deleted:
        raise OpRejected(IS_DELETED)
    return message


def msg_edit(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    body = schema.exact_keys(body, _EDIT_KEYS, "body")
    target = schema.op_ref(body["target"], "target")
    content = schema.content_blob(body["content"], "content", state.epochs)
    keys.require_fresh_key(state, op, content)
    message = _own_live_message(state, op, target)
    if target in state.hidden:
        raise OpRejected(IS_HIDDEN)
    state.put(state.messages, target, message._replace(content=content, edits=message.edits + 1))


def msg_delete(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    body = schema.exact_keys(body, _DELETE_KEYS, "body")
    target = schema.op_ref(body["target"], "target")
    message = _own_live_message(state, op, target)
    state.put(state.messages, target, message._replace(content=b"", deleted=True))


def msg_react(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    """Add (``on``) or take back one emoji reaction; repeating either is a no-op."""
    body = schema.exact_keys(body, _REACT_KEYS, "body")
    target = schema.op_ref(body["target"], "target")
    emoji = schema.short_text(body["emoji"], "emoji", schema.MAX_EMOJI_CHARS)
    on = schema.boolean(body["on"], "on")
    message = state.messages.get(target)
    if message is None and target not in state.checkins:
        raise OpRejected(NOT_REACTABLE)
    if message is not None and message.deleted:
        raise OpRejected(IS_DELETED)
    by_member = state.reactions.get(target)
    mine = () if by_member is None else by_member.get(op.author, ())
    if on == (emoji in mine):
        return
    if on:
        if len(mine) >= MAX_REACTIONS_PER_MEMBER:
            raise OpRejected(TOO_MANY_REACTIONS)
        updated = tuple(sorted((*mine, emoji)))
    else:
        updated = tuple(e for e in mine if e != emoji)
    if by_member is None:
        by_member = {}
        state.put(state.reactions, target, by_member)
    if updated:
        state.put(by_member, op.author, updated)
    else:
        state.drop(by_member, op.author)
        if not by_member:
            state.drop(state.reactions, target)


def checkin(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    body = schema.exact_keys(body, _CHECKIN_KEYS, "body")
    status = schema.one_of(body["status"], CHECKIN_STATUSES, "status")
    content = schema.content_blob(body["content"], "content", state.epochs)
    keys.require_fresh_key(state, op, content)
    state.put(state.checkins, signed.id, Checkin(op.author, op.lamport, op.ts, status, content))
    _add_to_thread(state, signed.id, None)


HANDLERS: dict[str, Handler] = {
    OpKind.MSG_POST: msg_post,
    OpKind.MSG_EDIT: msg_edit,
    OpKind.MSG_DELETE: msg_delete,
    OpKind.MSG_REACT: msg_react,
    OpKind.CHECKIN: checkin,
}
