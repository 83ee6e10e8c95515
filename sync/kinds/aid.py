"""Mutual-aid kinds: pledges (offers to give), requests (needs), matches, fulfilment.

Lifecycle of an item: ``open`` -> ``matched`` -> ``fulfilled``, or ``withdrawn`` by its
author while not fulfilled. A pledge is matched to at most one request, by the pledge's
author; a request may gather several pledges. Only the requester confirms fulfilment,
which fulfils the pledges matched to it. Withdrawing a matched pledge takes it off its
request; withdrawing a request releases its pledges. Expiry is only shown, never
enforced: the fold has no clock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kith.sync.kinds import keys, recurring, schema
from kith.sync.kinds.common import Handler, OpRejected, has_role
from kith.sync.kinds.records import FULFILLED, MATCHED, OPEN, ORGANIZER, WITHDRAWN, AidItem
from kith.sync.opkind import OpKind

if TYPE_CHECKING:
    from kith.sync.ops import Op, SignedOp
    from kith.sync.state import CircleState

CATEGORIES = ("money", "housing", "ride", "food", "time", "skill", "other")

_ITEM_KEYS = frozenset({"category", "content", "amount", "unit", "expires"})
_REQUEST_KEYS = _ITEM_KEYS | {"private"}
_PRIVATE_KEYS = frozenset({"ref", "boxes"})
MAX_PRIVATE_BOX = 4096
MAX_PRIVATE_BOXES = 32
_ITEM_CONTENT_KEYS = frozenset({"description"})
_MONTHLY = frozenset({recurring.MONTHLY})


def item_content(fields: Any) -> dict[str, Any]:
    """Validate the sealed fields of a pledge or request: what it is about."""
    content = schema.exact_keys(fields, _ITEM_CONTENT_KEYS, "content")
    schema.long_text(content["description"], "description", schema.MAX_DESCRIPTION_CHARS)
    return content


_MATCH_KEYS = frozenset({"pledge", "request"})
_FULFIL_KEYS = frozenset({"request"})
_WITHDRAW_KEYS = frozenset({"item"})

NOT_A_PLEDGE = "pledge is not a pledge of this circle"
NOT_A_REQUEST = "request is not a request of this circle"
NOT_PLEDGER = "only the pledge's author may match it"
PLEDGE_NOT_OPEN = "the pledge is not open"
REQUEST_CLOSED = "the request is already fulfilled or withdrawn"
OWN_REQUEST = "a pledge cannot be matched to its author's own request"
NOT_REQUESTER = "only the requester may confirm fulfilment"
NOT_AN_ITEM = "item is not a pledge or request of this circle"
NOT_ITEM_AUTHOR = "only its author may withdraw a pledge or request"
ITEM_CLOSED = "the item is already fulfilled or withdrawn"
PRIVATE_NOT_ORGANIZER = "a private request may be sealed only to organizers, by an organizer"


def _private(state: CircleState, op: Op, value: Any) -> dict[str, Any] | None:
    """A private request: who asked and why, sealed to each organizer (``boxes``), posted
    by an organizer on the requester's behalf; ``ref`` names the requester's envelope."""
    if value is None:
        return None
    private = schema.exact_keys(value, _PRIVATE_KEYS, "private")
    schema.fixed_bytes(private["ref"], "private.ref", 32)
    boxes = private["boxes"]
    if type(boxes) is not dict:
        raise schema.InvalidBody("private.boxes", "wrong type")
    if not 1 <= len(boxes) <= MAX_PRIVATE_BOXES:
        raise schema.InvalidBody("private.boxes", "too many items")
    for member, box in boxes.items():
        schema.member_ref(member, "private.boxes key")
        if type(box) is not bytes or not 48 < len(box) <= MAX_PRIVATE_BOX:
            raise schema.InvalidBody("private.boxes value", "wrong size")
    organizers = {m for m, member in state.members.items() if ORGANIZER in member.roles}
    if not has_role(state, op.author, ORGANIZER) or not set(boxes) <= organizers:
        raise OpRejected(PRIVATE_NOT_ORGANIZER)
    return private


def _item(state: CircleState, signed: SignedOp, op: Op, body: Any, kind: str) -> None:
    if kind == OpKind.AID_REQUEST:
        body = schema.exact_keys(body, _REQUEST_KEYS, "body")
    else:
        body = schema.exact_keys_optional(body, _ITEM_KEYS, _MONTHLY, "body")
    category = schema.one_of(body["category"], CATEGORIES, "category")
    content = schema.content_blob(body["content"], "content", state.epochs)
    amount = schema.optional_amount(body["amount"])
    unit = schema.optional_short(body["unit"], "unit", schema.MAX_UNIT_CHARS)
    expires = schema.optional_timestamp(body["expires"], "expires")
    if (amount is None) != (unit is None):
        raise schema.InvalidBody("unit", "must be null exactly when amount is null")
    private = _private(state, op, body["private"]) if kind == OpKind.AID_REQUEST else None
    first = recurring.first_month(state, body) if kind == OpKind.AID_PLEDGE else None
    keys.require_fresh_key(state, op, content)
    item_type = "pledge" if kind == OpKind.AID_PLEDGE else "request"
    item = AidItem(
        item_type, op.author, op.lamport, op.ts, category, content, amount, unit, expires, OPEN, (), None, private
    )
    state.put(state.aid, signed.id, item)
    recurring.start(state, signed.id, first)


def aid_pledge(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    _item(state, signed, op, body, OpKind.AID_PLEDGE)


def aid_request(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    _item(state, signed, op, body, OpKind.AID_REQUEST)


def aid_match(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    body = schema.exact_keys(body, _MATCH_KEYS, "body")
    pledge_id = schema.op_ref(body["pledge"], "pledge")
    request_id = schema.op_ref(body["request"], "request")
    pledge = state.aid.get(pledge_id)
    if pledge is None or pledge.type != "pledge":
        raise OpRejected(NOT_A_PLEDGE)
    request = state.aid.get(request_id)
    if request is None or request.type != "request":
        raise OpRejected(NOT_A_REQUEST)
    if pledge.author != op.author:
        raise OpRejected(NOT_PLEDGER)
    if pledge.status != OPEN:
        raise OpRejected(PLEDGE_NOT_OPEN)
    if request.status not in (OPEN, MATCHED):
        raise OpRejected(REQUEST_CLOSED)
    if request.author == op.author:
        raise OpRejected(OWN_REQUEST)
    state.put(state.aid, pledge_id, pledge._replace(status=MATCHED, matched=(request_id,)))
    state.put(state.aid, request_id, request._replace(status=MATCHED, matched=(*request.matched, pledge_id)))


def aid_fulfil(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    body = schema.exact_keys(body, _FULFIL_KEYS, "body")
    request_id = schema.op_ref(body["request"], "request")
    request = state.aid.get(request_id)
    if request is None or request.type != "request":
        raise OpRejected(NOT_A_REQUEST)
    if request.author != op.author:
        raise OpRejected(NOT_REQUESTER)
    if request.status not in (OPEN, MATCHED):
        raise OpRejected(REQUEST_CLOSED)
    state.put(state.aid, request_id, request._replace(status=FULFILLED, closed_by=signed.id))
    for pledge_id in request.matched:
        state.put(state.aid, pledge_id, state.aid[pledge_id]._replace(status=FULFILLED, closed_by=signed.id))


def aid_withdraw(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    body = schema.exact_keys(body, _WITHDRAW_KEYS, "body")
    item_id = schema.op_ref(body["item"], "item")
    item = state.aid.get(item_id)
    if item is None:
        raise OpRejected(NOT_AN_ITEM)
    if item.author != op.author:
        raise OpRejected(NOT_ITEM_AUTHOR)
    if item.status not in (OPEN, MATCHED):
        raise OpRejected(ITEM_CLOSED)
    if item.type == "pledge":
        for request_id in item.matched:
            request = state.aid[request_id]
            remaining = tuple(p for p in request.matched if p != item_id)
            state.put(state.aid, request_id, request._replace(status=MATCHED if remaining else OPEN, matched=remaining))
    else:
        for pledge_id in item.matched:
            state.put(state.aid, pledge_id, state.aid[pledge_id]._replace(status=OPEN, matched=()))
    state.put(state.aid, item_id, item._replace(status=WITHDRAWN, matched=(), closed_by=signed.id))


HANDLERS: dict[str, Handler] = {
    OpKind.AID_PLEDGE: aid_pledge,
    OpKind.AID_REQUEST: aid_request,
    OpKind.AID_MATCH: aid_match,
    OpKind.AID_FULFIL: aid_fulfil,
    OpKind.AID_WITHDRAW: aid_withdraw,
}
