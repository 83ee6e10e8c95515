"""Membership kinds: who counts as a member, and with which roles.

``member.add`` (an organizer, or any member if the charter lets members invite),
``member.remove`` (an organizer, or anyone removing themselves: leaving), and
``role.grant``/``role.revoke`` (an organizer; anyone may give up their own role). No
op may leave the circle without an organizer. Keys and key rotation come later; this is
only the roll the fold checks authority against.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from identity.keys import IdentityCard
from sync.kinds import keys, schema
from sync.kinds.common import (
    LAST_ORGANIZER,
    NOT_ORGANIZER,
    TARGET_NOT_MEMBER,
    OpRejected,
    organizer_count,
)
from sync.kinds.governance import drop_member, settle
from sync.kinds.records import ORGANIZER, ROLES, Member

if TYPE_CHECKING:
    from sync.ops import Op, SignedOp
    from sync.state import CircleState

MAX_MEMBERS = 1_000
"""A circle is a group of people who know each other; this bounds every per-member scan."""

_ADD_KEYS = frozenset({"member", "vouch", "card", "invite", "epoch"})
_REMOVE_KEYS = frozenset({"member", "reason"})
_ROLE_KEYS = frozenset({"member", "role"})

ALREADY_MEMBER = "that person is already a member"
CIRCLE_FULL = f"the circle already has {MAX_MEMBERS} members"
NOT_INVITER = "only an organizer may add members (the charter does not let members invite)"
ALREADY_HAS_ROLE = "that member already has this role"
LACKS_ROLE = "that member does not have this role"


def member_add(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    body = schema.exact_keys(body, _ADD_KEYS, "body")
    newcomer = schema.member_ref(body["member"], "member")
    vouch = schema.optional_long(body["vouch"], "vouch", schema.MAX_NOTE_CHARS)
    dh_public = keys.card_key(body["card"], "card", newcomer)
    invite = None if body["invite"] is None else schema.fixed_bytes(body["invite"], "invite", 16)
    epoch = keys.optional_epoch_ref(body["epoch"], "epoch")
    if ORGANIZER not in state.members[op.author].roles and not state.info["charter"].members_can_invite:
        raise OpRejected(NOT_INVITER)
    if newcomer in state.members:
        raise OpRejected(ALREADY_MEMBER)
    if len(state.members) >= MAX_MEMBERS:
        raise OpRejected(CIRCLE_FULL)
    holders = None
    if epoch is not None:
        holders = state.holders.get(epoch)
        if holders is None:
            raise OpRejected(keys.EPOCH_UNKNOWN)
    if invite is not None:
        keys.use_invite(state, invite, op)
    state.put(state.members, newcomer, Member((), op.lamport, signed.id, op.author, vouch))
    state.put(state.cards, newcomer, dh_public)
    if holders is not None and newcomer not in holders:
        state.put(holders, newcomer, signed.id)
    if epoch is not None:
        _credit_welcome_epochs(state, signed, op.author, newcomer, epoch)


def _credit_welcome_epochs(
    state: CircleState, signed: SignedOp, approver: bytes, newcomer: bytes, epoch: bytes
) -> None:
    """The welcome carried every epoch key the approver holds: record the newcomer as a
    holder of the epochs before ``epoch`` on its chain that the fold knows the approver
    holds. (Epochs it may lack, e.g. begun concurrently elsewhere, are then shared by
    organizers: see `keys.members_missing_key`.)"""
    for previous in keys.epochs_before(state, epoch):
        older = state.holders.get(previous)
        if older is not None and approver in older and newcomer not in older:
            state.put(older, newcomer, signed.id)


def member_add_body(
    card: bytes, *, vouch: str | None = None, invite: bytes | None = None, epoch: bytes | None = None
) -> dict[str, Any]:
    """The body of a ``member.add`` for the person whose encoded identity card is ``card``."""
    return {
        "member": IdentityCard.from_bytes(card).member_id,
        "vouch": vouch,
        "card": card,
        "invite": invite,
        "epoch": epoch,
    }


def member_remove(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    body = schema.exact_keys(body, _REMOVE_KEYS, "body")
    target = schema.member_ref(body["member"], "member")
    schema.optional_long(body["reason"], "reason", schema.MAX_NOTE_CHARS)
    member = state.members.get(target)
    if member is None:
        raise OpRejected(TARGET_NOT_MEMBER)
    if target != op.author and ORGANIZER not in state.members[op.author].roles:
        raise OpRejected(NOT_ORGANIZER)
    if ORGANIZER in member.roles and organizer_count(state) == 1:
        raise OpRejected(LAST_ORGANIZER)
    drop_member(state, target)
    settle(state, signed.id)


def _role_change(state: CircleState, op: Op, body: Any, kind: str) -> tuple[bytes, Member, str]:
    body = schema.exact_keys(body, _ROLE_KEYS, "body")
    target = schema.member_ref(body["member"], "member")
    role = schema.one_of(body["role"], ROLES, "role")
    member = state.members.get(target)
    if member is None:
        raise OpRejected(TARGET_NOT_MEMBER)
    return target, member, role


def role_grant(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    target, member, role = _role_change(state, op, body, "role.grant")
    if ORGANIZER not in state.members[op.author].roles:
        raise OpRejected(NOT_ORGANIZER)
    if role in member.roles:
        raise OpRejected(ALREADY_HAS_ROLE)
    state.put(state.members, target, member._replace(roles=tuple(sorted((*member.roles, role)))))


def role_revoke(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    target, member, role = _role_change(state, op, body, "role.revoke")
    if target != op.author and ORGANIZER not in state.members[op.author].roles:
        raise OpRejected(NOT_ORGANIZER)
    if role not in member.roles:
        raise OpRejected(LACKS_ROLE)
    if role == ORGANIZER and organizer_count(state) == 1:
        raise OpRejected(LAST_ORGANIZER)
    state.put(state.members, target, member._replace(roles=tuple(r for r in member.roles if r != role)))


HANDLERS = {
    "member.add": member_add,
    "member.remove": member_remove,
    "role.grant": role_grant,
    "role.revoke": role_revoke,
}
