"""A membership review's reason, sealed to the organizers (docs/OPS.md §6a).

The reviewer's node seals the reason once per organizer (except the member under review)
with an anonymous sealed box; the fold checks only who the boxes are for and their sizes.
The sealed CBOR names the circle and the member under review, so a box copied from one
review into another (or another circle) is refused when opened rather than shown as the
reason for something else.
"""

from __future__ import annotations

from typing import Any

from kith.identity import codec
from kith.identity.crypto import RandomBytes, open_sealed, seal_to
from kith.identity.errors import Malformed, Undecryptable
from kith.identity.keys import MemberIdentity
from kith.sync.kinds import schema
from kith.sync.kinds.records import ORGANIZER, ReviewDetails
from kith.sync.kinds.stewardship import MAX_REASON_BOXES
from kith.sync.state import CircleState

MAX_REASON_CHARS = 1000
_FIELDS = frozenset({"reason", "circle", "member"})


def review_details(state: CircleState, member: bytes, reason: str, rand: RandomBytes | None = None) -> dict[str, Any]:
    """The ``details`` of a review of ``member``: the reason sealed to every current organizer
    but them. Raises `Malformed` for a reason the fold's readers would refuse."""
    try:
        text = schema.long_text(reason, "reason", MAX_REASON_CHARS)
    except schema.InvalidBody as exc:
        raise Malformed(f"the review's reason is not valid: {exc}") from None
    plain = codec.encode({"reason": text, "circle": state.circle_id, "member": member})
    organizers = sorted(m for m, record in state.members.items() if ORGANIZER in record.roles and m != member)
    boxes = {m: seal_to(state.cards[m], plain, rand) for m in organizers[:MAX_REASON_BOXES]}
    return {"member": member, "reasons": boxes}


def open_review_reason(state: CircleState, details: ReviewDetails, me: MemberIdentity) -> str | None:
    """The reason of a review, if it was sealed to ``me`` and opens as this review's; else None."""
    box = details.reasons.get(me.member_id)
    if box is None:
        return None
    try:
        raw = codec.decode(open_sealed(me.dh_public, me.dh_secret, box), max_size=8192, what="review reason")
    except (Undecryptable, Malformed):
        return None
    if type(raw) is not dict or set(raw) != _FIELDS:
        return None
    if raw["circle"] != state.circle_id or raw["member"] != details.member or type(raw["reason"]) is not str:
        return None
    return raw["reason"]
