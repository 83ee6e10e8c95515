"""Membership kinds: who counts as a member, and with which roles.

``member.add`` (an organizer, or any member if the charter lets members invite),
``member.remove`` (an organizer, or anyone removing themselves: leaving), and
``role.grant``/``role.revoke`` (an organizer; anyone may give up their own role). No
op may leave the circle without an organizer.

Organizers are ordered by seniority (docs/OPS.md §2b): only a strictly more senior
organizer may remove or demote another, so two organizers can never remove each other.
A removal or demotion strikes its target's ops it had not seen (`CircleState.strike_unseen`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kith.identity.errors import LocalProtocolError
from kith.identity.keys import IdentityCard
from kith.sync.kinds import keys, schema, stewardship
from kith.sync.kinds.common import (
    LAST_ORGANIZER,
    NOT_SENIOR,
    TARGET_NOT_MEMBER,
    Handler,
    OpRejected,
    has_role,
    is_senior,
    may_invite,
    organizer_count,
    require_role,
)
from kith.sync.kinds.governance import drop_member, settle
from kith.sync.kinds.records import ORGANIZER, ROLES, Grant, Member
from kith.sync.opkind import OpKind

if TYPE_CHECKING:
    from kith.sync.ops import Op, SignedOp
    from kith.sync.state import CircleState

MAX_MEMBERS = 1_000
"""A circle is a group of people who know each other; this bounds every per-member scan."""

_ADD_KEYS = frozenset({"member", "vouch", "card", "invite", "request"})
REQUEST_BYTES = 16
"""The nonce a join request carries; the member.add answering it names it."""
_REMOVE_KEYS = frozenset({"member", "reason"})
_ROLE_KEYS = frozenset({"member", "role"})

ALREADY_MEMBER = "that person is already a member"
CIRCLE_FULL = f"the circle already has {MAX_MEMBERS} members"
NOT_INVITER = "only an organizer may add members (the charter does not let members invite)"
ALREADY_HAS_ROLE = "that member already has this role"
LACKS_ROLE = "that member does not have this role"
REQUEST_USED = "that join request was already used to let someone in"
CONFIRM_JOINS = "the charter says an organizer confirms every join"


def member_add(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    body = schema.exact_keys(body, _ADD_KEYS, "body")
    newcomer = schema.member_ref(body["member"], "member")
    vouch = schema.optional_long(body["vouch"], "vouch", schema.MAX_NOTE_CHARS)
    dh_public = keys.card_key(body["card"], "card", newcomer)
    invite = None if body["invite"] is None else schema.fixed_bytes(body["invite"], "invite", 16)
    request = None if body["request"] is None else schema.fixed_bytes(body["request"], "request", REQUEST_BYTES)
    may_invite(state, op.author, NOT_INVITER)
    if state.info["charter"].confirm_joins and not has_role(state, op.author, ORGANIZER):
        raise OpRejected(CONFIRM_JOINS)  # members may still invite; only organizers let people in
    if newcomer in state.members:
        raise OpRejected(ALREADY_MEMBER)
    if len(state.members) >= MAX_MEMBERS:
        raise OpRejected(CIRCLE_FULL)
    if request is not None and request in state.admissions:
        raise OpRejected(REQUEST_USED)
    if invite is not None:
        keys.use_invite(state, invite, op)
    state.put(state.members, newcomer, Member((), op.lamport, signed.id, op.author, vouch))
    state.put(state.cards, newcomer, dh_public)
    if request is not None:
        state.put(state.admissions, request, signed.id)


def member_add_body(
    card: bytes, *, vouch: str | None = None, invite: bytes | None = None, request: bytes | None = None
) -> dict[str, Any]:
    """The body of a ``member.add`` for the person whose encoded identity card is ``card``
    (``request``: the nonce of the join request it answers, which admits once)."""
    return {
        "member": IdentityCard.from_bytes(card).member_id,
        "vouch": vouch,
        "card": card,
        "invite": invite,
        "request": request,
    }


def _check_power_over(state: CircleState, author: bytes, target: bytes, target_is_organizer: bool) -> None:
    """May organizer ``author`` remove or demote ``target`` (someone else)?"""
    record = require_role(state, author, ORGANIZER)
    if target_is_organizer and not is_senior(record, state.members[target]):
        raise OpRejected(NOT_SENIOR)


def member_remove(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    body = schema.exact_keys(body, _REMOVE_KEYS, "body")
    target = schema.member_ref(body["member"], "member")
    schema.optional_long(body["reason"], "reason", schema.MAX_NOTE_CHARS)
    member = state.members.get(target)
    if member is None:
        raise OpRejected(TARGET_NOT_MEMBER)
    if target != op.author:
        _check_power_over(state, op.author, target, ORGANIZER in member.roles)
    if ORGANIZER in member.roles and organizer_count(state) == 1:
        raise OpRejected(LAST_ORGANIZER)
    if target != op.author:
        anchors = (member.joined_op, *(grant.op for grant in member.grants))
        state.strike_unseen(signed, target, "member", (member.joined_lamport, member.joined_op), anchors)
    drop_member(state, target, signed)
    settle(state, signed)


def _role_change(state: CircleState, op: Op, body: Any, kind: str) -> tuple[bytes, Member, str]:
    body = schema.exact_keys(body, _ROLE_KEYS, "body")
    target = schema.member_ref(body["member"], "member")
    role = schema.one_of(body["role"], ROLES, "role")
    member = state.members.get(target)
    if member is None:
        raise OpRejected(TARGET_NOT_MEMBER)
    return target, member, role


def role_grant(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    target, member, role = _role_change(state, op, body, OpKind.ROLE_GRANT)
    granter = require_role(state, op.author, ORGANIZER)
    if role in member.roles:
        raise OpRejected(ALREADY_HAS_ROLE)
    path = member.path
    if role == ORGANIZER:
        # Seniority follows the granting chain: the granter's, then the grant's place in
        # the granter's own history (which nobody else can reorder). It is fixed at the
        # first grant: an organizer demoted and appointed again keeps their place.
        path = state.seniority.get(target)
        if path is None:
            if granter.path is None:
                raise LocalProtocolError("an organizer without a seniority path granted a role")
            path = (*granter.path, op.seq)
            state.put(state.seniority, target, path)
    state.put(
        state.members,
        target,
        member._replace(
            roles=tuple(sorted((*member.roles, role))),
            # A grant to oneself is in one's own chain already: nothing to acknowledge.
            grants=tuple(sorted((*member.grants, Grant(role, signed.id, target == op.author)))),
            path=path,
        ),
    )


def role_revoke(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    target, member, role = _role_change(state, op, body, OpKind.ROLE_REVOKE)
    if target != op.author:
        require_role(state, op.author, ORGANIZER)
    grant = member.grant(role)
    if grant is None:
        raise OpRejected(LACKS_ROLE)
    if target != op.author:
        _check_power_over(state, op.author, target, role == ORGANIZER)
    if role == ORGANIZER and organizer_count(state) == 1:
        raise OpRejected(LAST_ORGANIZER)
    if target != op.author:
        granted = state.causal.get(grant.op)
        start = (0 if granted is None else granted.lamport, grant.op)
        state.strike_unseen(signed, target, role, start, (grant.op,))
    state.put(
        state.members,
        target,
        member._replace(
            roles=tuple(r for r in member.roles if r != role),
            grants=tuple(g for g in member.grants if g.role != role),
            path=None if role == ORGANIZER else member.path,
        ),
    )


HANDLERS: dict[str, Handler] = {
    OpKind.ROLE_HANDOVER: stewardship.role_handover,
    OpKind.MEMBER_ADD: member_add,
    OpKind.MEMBER_REMOVE: member_remove,
    OpKind.ROLE_GRANT: role_grant,
    OpKind.ROLE_REVOKE: role_revoke,
}
