"""Op kinds of the circle-state fold: body schemas, authority rules and effects.

`HANDLERS` maps every kind this build understands to its handler (see
`kith.sync.kinds.common` for the handler contract). docs/OPS.md is the normative description.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kith.identity.crypto import RandomBytes, random_bytes
from kith.sync.content import seal_content
from kith.sync.kinds import aid, alloc, circle, decisions, events, fund, keys, membership, moderation, support
from kith.sync.kinds.common import Handler
from kith.sync.opkind import OpKind

_BY_MEMBER: dict[str, Handler] = {
    **circle.HANDLERS,
    **membership.HANDLERS,
    **support.HANDLERS,
    **aid.HANDLERS,
    **decisions.HANDLERS,
    **fund.HANDLERS,
    **alloc.HANDLERS,
    **events.HANDLERS,
    **keys.HANDLERS,
    **moderation.HANDLERS,
}
HANDLERS: dict[str, Handler] = {str(kind): handler for kind, handler in _BY_MEMBER.items()}
"""Keyed by the plain strings of the `OpKind` members: decoded ops carry exact ``str`` kinds,
and a dict whose keys are all exact ``str`` stays on CPython's fast lookup path (a third
faster per op than members as keys)."""


CONTENT_KINDS: dict[str, tuple[tuple[str, ...], Callable[[Any], dict[str, Any]]]] = {
    OpKind.MSG_POST: (("text", "content_warning"), support.post_content),
    OpKind.MSG_EDIT: (("text", "content_warning"), support.post_content),
    OpKind.CHECKIN: (("note",), support.checkin_content),
    OpKind.AID_PLEDGE: (("description",), aid.item_content),
    OpKind.AID_REQUEST: (("description",), aid.item_content),
    OpKind.EVENT_CREATE: (("title", "place_hint", "text"), events.event_content),
}
"""Kinds with sealed content: the plaintext fields inside their ``content`` blob, and the
validator of those fields (docs/OPS.md, "Sealed content")."""


def seal_plain_body(
    kind: str,
    body: dict[str, Any],
    *,
    circle: bytes,
    author: bytes,
    epoch: bytes,
    key: bytes,
    rand: RandomBytes = random_bytes,
) -> dict[str, Any]:
    """A body written with plaintext content fields, with those fields sealed into ``content``.

    Bodies of other kinds, or that already carry ``content``, are returned unchanged.
    """
    spec = CONTENT_KINDS.get(kind)
    if spec is None or "content" in body:
        return body
    fields, validate = spec
    content = validate({name: body.get(name) for name in fields})
    rest = {name: value for name, value in body.items() if name not in fields}
    return {
        **rest,
        "content": seal_content(content, circle=circle, author=author, kind=kind, epoch=epoch, key=key, rand=rand),
    }
