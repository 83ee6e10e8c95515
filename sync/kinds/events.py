"""Event kinds: ``event.create`` and ``event.rsvp`` (a member's latest answer counts)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kith.sync.kinds import keys, schema
from kith.sync.kinds.common import Handler, OpRejected
from kith.sync.kinds.records import Event
from kith.sync.opkind import OpKind

if TYPE_CHECKING:
    from kith.sync.ops import Op, SignedOp
    from kith.sync.state import CircleState

RSVP_ANSWERS = ("yes", "no", "maybe")

_EVENT_KEYS = frozenset({"starts", "content"})
_EVENT_CONTENT_KEYS = frozenset({"title", "place_hint", "text"})


def event_content(fields: Any) -> dict[str, Any]:
    """Validate the sealed fields of an event."""
    content = schema.exact_keys(fields, _EVENT_CONTENT_KEYS, "content")
    schema.short_text(content["title"], "title", schema.MAX_TITLE_CHARS)
    schema.optional_short(content["place_hint"], "place_hint", schema.MAX_SHORT_CHARS)
    schema.optional_long(content["text"], "text", schema.MAX_DESCRIPTION_CHARS)
    return content


_RSVP_KEYS = frozenset({"event", "answer"})

NOT_AN_EVENT = "event is not an event of this circle"


def event_create(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    body = schema.exact_keys(body, _EVENT_KEYS, "body")
    event = Event(
        op.author,
        op.lamport,
        op.ts,
        schema.timestamp(body["starts"], "starts"),
        schema.content_blob(body["content"], "content", state.epochs),
    )
    keys.require_fresh_key(state, op, event.content)
    state.put(state.events, signed.id, event)


def event_rsvp(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    body = schema.exact_keys(body, _RSVP_KEYS, "body")
    event_id = schema.op_ref(body["event"], "event")
    answer = schema.one_of(body["answer"], RSVP_ANSWERS, "answer")
    if event_id not in state.events:
        raise OpRejected(NOT_AN_EVENT)
    answers = state.rsvps.get(event_id)
    if answers is None:
        answers = {}
        state.put(state.rsvps, event_id, answers)
    state.put(answers, op.author, answer)


HANDLERS: dict[str, Handler] = {
    OpKind.EVENT_CREATE: event_create,
    OpKind.EVENT_RSVP: event_rsvp,
}
