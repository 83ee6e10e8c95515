"""Short references people type, expanded against one circle: id prefixes and member names.

Listings show 8 hex digits of an id and members by name; the control API accepts both
wherever it takes an op or a member (docs/API.md), and expands them here before the
parameters are checked (kith.p2pnet.actions), so the checks only ever see full ids.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kith.identity.errors import UsageError
from kith.p2pnet.paramspec import MemberRef, bad

if TYPE_CHECKING:
    from kith.p2pnet.circles import Circle

MIN_PREFIX = 6


def resolve_ids(circle: Circle, spec: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Let people type short id prefixes (as listings show them): expand them to full ids.

    ``spec``: parameter name -> `Id` (an op) or `MemberRef` (a member, also by display name)."""
    state = circle.replica.state
    resolved = dict(params)
    for name, kind in spec.items():
        value = params.get(name)
        if not isinstance(value, str) or len(value) >= 64:
            continue
        prefix = value.lower()
        is_hex = all(c in "0123456789abcdef" for c in prefix)
        if kind is MemberRef and not (is_hex and len(prefix) >= MIN_PREFIX):
            resolved[name] = member_by_name(state, value).hex()
            continue
        if len(prefix) < MIN_PREFIX or not is_hex:
            raise bad(f"{name} must be an id or at least {MIN_PREFIX} hex digits of one")
        if kind is MemberRef:
            tables: list[Any] = [state.members]
        else:
            tables = [state.messages, state.checkins, state.aid, state.proposals, state.contributions, state.events,
                      state.asks]  # fmt: skip
        matches = {key for table in tables for key in table if key.hex().startswith(prefix)}
        if not matches:
            raise UsageError(f"no {name} starting with {value} in this circle")
        if len(matches) > 1:
            raise UsageError(f"{value} matches several items; give more digits")
        resolved[name] = matches.pop().hex()
    return resolved


def looks_like_id(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdefABCDEF" for c in value)


def member_by_name(state: Any, name: str) -> bytes:
    """The one member whose display name is ``name`` (ignoring case), as listings show it."""
    wanted = name.strip().casefold()
    matches = [
        member
        for member in state.members
        if (profile := state.profiles.get(member)) is not None and profile.display_name.casefold() == wanted
    ]
    if not matches:
        raise UsageError(f"no member named {name!r} in this circle; 'kith members CIRCLE' lists them")
    if len(matches) > 1:
        raise UsageError(f"several members are named {name!r}; give their id (from 'kith members CIRCLE')")
    return matches[0]
