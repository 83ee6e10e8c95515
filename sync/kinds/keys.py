"""Key and membership-lifecycle kinds: epochs, rotations, key shares and acks, invites, relays.

Theory of operation
-------------------
Every circle has epoch keys. Organizers rotate (and, when the charter lets members invite,
any member, since approving a newcomer rotates first); an organizer's node rotates when a
removal makes it due, or when the current key turned out to be junk. The fold cannot see
keys (they are sealed to members), only their public ids, and it tracks four things:

* the **current epoch**: the genesis epoch, then the epoch of the last ``key.rotate`` in
  fold order, so concurrent rotations converge;
* who a key was **offered** to (the recipients a rotation or ``key.share`` sealed it to);
* who **holds** it: its rotator, and every member who acknowledged it (``key.ack``, which a
  member's node sends once it has opened and saved the key). Offering is not holding: a
  rotation whose boxes do not open is never acknowledged, so nodes see who lacks the key
  and organizers share it again, or rotate if they cannot open it either;
* whether a **rotation is due**: a member left, was removed or reported compromised after
  the current epoch began, or a key was offered to someone no longer a member.

Content sealed with an epoch its author had acknowledged a newer one of is refused: an
author who knows the key changed cannot keep writing for whoever held the old one.

``invite.create`` records an invite (its id binds its secret), so every organizer can
read join requests made with it and the fold can count its uses; ``member.add`` may name
the invite, and is refused once the invite is revoked, used up or past its expiry (by
the approver's own claimed time). ``relay.add``/``relay.remove`` (organizers) keep the
list of relays members dial, at most `MAX_RELAYS`, each a dialable TCP multiaddr.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Any

from kith.identity.crypto import SEAL_OVERHEAD, blake2b
from kith.identity.errors import BadSignature, Malformed
from kith.identity.keys import IdentityCard
from kith.sync import limits
from kith.sync.kinds import schema
from kith.sync.kinds.common import TARGET_NOT_MEMBER, Handler, OpRejected, has_role, may_invite, require_role
from kith.sync.kinds.governance import drop_member, settle
from kith.sync.kinds.records import ORGANIZER, Epoch, Invite
from kith.sync.opkind import OpKind

if TYPE_CHECKING:
    from collections.abc import Iterator

    from kith.sync.ops import Op, SignedOp
    from kith.sync.state import CircleState

SEALED_KEY_BYTES = 64 + SEAL_OVERHEAD
"""A sealed epoch: its epoch key and content key (64 bytes) in a sealed box."""
MAX_SEALED_PER_OP = 300
"""Recipients one key op may carry (~46 KB); larger circles continue in ``key.share`` ops."""
MAX_INVITE_USES = 1000
MAX_ADDRESS_CHARS = 256
RESERVED_EPOCHS = (bytes(16), b"\xff" * 16, b"\xfe" * 16, b"\xfd" * 16)
"""Marker epochs of welcome, join, relay-grant and private envelopes; never a real epoch id."""

_ROTATE_KEYS = frozenset({"epoch", "previous", "sealed"})
_SHARE_KEYS = frozenset({"epoch", "sealed"})
_ACK_KEYS = frozenset({"epochs"})
MAX_ACKED = 64
"""Epochs one key.ack may acknowledge (a welcome carries every epoch: several acks)."""
_COMPROMISED_KEYS = frozenset({"note"})
_INVITE_KEYS = frozenset({"invite", "secret", "uses", "expires"})
_REVOKE_KEYS = frozenset({"invite"})
_RELAY_KEYS = frozenset({"address"})

EPOCH_KNOWN = "that epoch already exists"
STALE_KEY = "sealed with a key its author knew had been replaced"
EPOCH_UNKNOWN = "unknown epoch"
NOT_CURRENT = "a rotation must replace the current epoch"
INVITE_UNBOUND = "invite id does not match its secret"
INVITE_EXISTS = "that invite already exists"
INVITE_UNKNOWN = "unknown invite"
INVITE_REVOKED = "the invite was revoked"
INVITE_USED_UP = "the invite is used up"
INVITE_EXPIRED = "the invite had expired"
NOT_INVITER = "only an organizer may invite (the charter does not let members invite)"
NOT_INVITE_OWNER = "only the invite's author or an organizer may revoke it"
NOT_KEY_KEEPER = "only an organizer may rotate or share the circle's keys (the charter does not let members invite)"
RELAY_KNOWN = "that relay is already listed"
RELAY_UNKNOWN = "that relay is not listed"
MAX_RELAYS = 8
"""Relays one circle may list: every member's node keeps a connection to each."""
RELAYS_FULL = f"the circle already lists {MAX_RELAYS} relays; remove one first"


def invite_id(secret: bytes) -> bytes:
    """The public id of an invite: a hash of its secret."""
    return blake2b(secret, person=b"kith-invite-id", size=16)


def card_key(value: Any, field: str, member: bytes) -> bytes:
    """The X25519 key of an identity card that must belong to ``member``."""
    if type(value) is not bytes:
        raise schema.InvalidBody(field, "wrong type")
    try:
        card = IdentityCard.from_bytes(value)
    except (Malformed, BadSignature):
        raise schema.InvalidBody(field, "bad card") from None
    if card.member_id != member:
        raise schema.InvalidBody(field, "card of someone else")
    return card.dh_public


def epoch_ref(value: Any, field: str) -> bytes:
    epoch = schema.fixed_bytes(value, field, limits.EPOCH_ID_BYTES)
    if epoch in RESERVED_EPOCHS:
        raise schema.InvalidBody(field, "reserved value")
    return epoch


def optional_epoch_ref(value: Any, field: str) -> bytes | None:
    return None if value is None else epoch_ref(value, field)


def _record_epoch(state: CircleState, signed: SignedOp, op: Op, epoch: bytes, previous: bytes | None) -> None:
    """An epoch begun by ``signed``, held by its author, offered to nobody yet."""
    state.put(state.epochs, epoch, Epoch(signed.id, op.lamport, op.author, previous))
    state.put(state.holders, epoch, {op.author: signed.id})
    state.put(state.offers, epoch, {})


def start_epoch(state: CircleState, signed: SignedOp, op: Op, epoch: bytes, previous: bytes | None) -> None:
    """A new current epoch, held by its author."""
    _record_epoch(state, signed, op, epoch, previous)
    state.put_info("epoch", epoch)
    state.put_info("rotation_due", False)
    note_held(state, op.author, epoch)


def note_held(state: CircleState, member: bytes, epoch: bytes) -> None:
    """Keep `CircleState.newest_held` (the newest epoch each member holds) up to date.

    An epoch kept from a rotation that did not count (`keep_epoch`) never counts here: it
    replaced nothing, so holding it must not make the current key look stale (it may sort
    after it)."""
    if kept_epoch(state, epoch):
        return
    record = state.epochs[epoch]
    start = (record.lamport, record.op)
    current = state.newest_held.get(member)
    if current is None or start > current:
        state.put(state.newest_held, member, start)


def require_fresh_key(state: CircleState, op: Op, content: bytes) -> None:
    """Refuse content sealed with an epoch its author had already seen replaced (they
    acknowledged, or made, a newer one): checked right after the body's schema."""
    newest = state.newest_held.get(op.author)
    if newest is None:
        return
    record = state.epochs[content[: limits.EPOCH_ID_BYTES]]  # the blob's epoch (`sync.content`)
    if (record.lamport, record.op) < newest:
        raise OpRejected(STALE_KEY)


def _sealed(state: CircleState, value: Any, field: str) -> dict[bytes, bytes]:
    if type(value) is not dict:
        raise schema.InvalidBody(field, "wrong type")
    if len(value) > MAX_SEALED_PER_OP:
        raise schema.InvalidBody(field, "too many")
    for member, box in value.items():
        schema.member_ref(member, f"{field} key")
        schema.fixed_bytes(box, f"{field} value", SEALED_KEY_BYTES)
    return value


def _reached_outsiders(state: CircleState, sealed: dict[bytes, bytes]) -> bool:
    """Was a key sealed to a former member (its author had not yet seen them leave)?

    The op still counts, so what its author sealed with the key stays part of the circle,
    but the key has left the circle: a rotation becomes due."""
    return any(member not in state.members and member in state.cards for member in sealed)


def _require_organizer(state: CircleState, author: bytes) -> None:
    require_role(state, author, ORGANIZER)


def _rotate_body(state: CircleState, body: Any) -> tuple[bytes, bytes, dict[bytes, bytes]]:
    """A `key.rotate` body's (epoch, previous, sealed), or `InvalidBody`."""
    body = schema.exact_keys(body, _ROTATE_KEYS, "body")
    return (
        epoch_ref(body["epoch"], "epoch"),
        epoch_ref(body["previous"], "previous"),
        _sealed(state, body["sealed"], "sealed"),
    )


def key_rotate(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    epoch, previous, sealed = _rotate_body(state, body)
    may_invite(state, op.author, NOT_KEY_KEEPER)
    squatted = epoch in state.epochs and kept_epoch(state, epoch)
    if epoch in state.epochs and not squatted:
        raise OpRejected(EPOCH_KNOWN)
    if previous not in state.epochs:
        raise OpRejected(EPOCH_UNKNOWN)
    # A kept epoch's id gives way to a rotation that counts: else anyone whose rotation
    # may be kept could name the id of a rotation they saw coming (it is sealed with the
    # current key) and sort theirs first, to cancel it. The id is a hash of the key, so
    # whoever acknowledged the kept epoch holds this key: they keep holding it.
    held_before = dict(state.holders[epoch]) if squatted else {}
    if squatted:
        held_before.pop(state.epochs[epoch].author, None)
    start_epoch(state, signed, op, epoch, previous)
    for member, ack in sorted(held_before.items()):
        if member != op.author:
            state.put(state.holders[epoch], member, ack)
            note_held(state, member, epoch)
    _offer(state, signed, epoch, sealed)
    if _reached_outsiders(state, sealed):
        state.put_info("rotation_due", True)


MAX_KEPT_EPOCHS = 8
"""Epochs kept from one author's rotations that did not count (`keep_epoch`)."""


def keep_epoch(state: CircleState, signed: SignedOp) -> None:
    """A rotation that does not count because a removal or demotion of its author raced it
    (struck by it, or refused because it sorts after it): keep its epoch, never current.

    Its author's side installed the key before the removal reached them and sealed ops
    with it, members who did nothing wrong among them. Those ops belong to the circle, so
    every member must be able to open them and the fold must count what they say: the
    epoch stays in `CircleState.epochs` (with the members the rotation sealed it to), so
    acks and shares can name it, content sealed with it counts, and organizers hand it to
    members who lack it (a newcomer let in meanwhile). It never becomes current, starts no
    rotation and counts for no one's newest key (`note_held`); `kept_epoch` tells it. A
    rotation that counts and names a kept epoch's id takes the id over (`key_rotate`).

    Only a rotation that raced (`_raced`), with a new epoch replacing a known one, and at
    most `MAX_KEPT_EPOCHS` per author: a removed member can sign rotations without end, and
    every kept epoch costs each newcomer a share. So a removed member who back-dates junk
    rotations ahead of a real raced one can use up the cap, and what their side sealed with
    the real one is then refused, as it was before epochs were kept. A late rotation is
    folded the slow way (`key.rotate` is a governing kind), so what is kept is what a fresh
    fold keeps."""
    op = signed.op
    if not _raced(state, signed):
        return
    try:
        epoch, previous, sealed = _rotate_body(state, op.body)
    except schema.InvalidBody:
        return
    if epoch in state.epochs or previous not in state.epochs:
        return
    kept = sum(1 for e, record in state.epochs.items() if record.author == op.author and kept_epoch(state, e))
    if kept >= MAX_KEPT_EPOCHS:
        return
    _record_epoch(state, signed, op, epoch, previous)
    _offer(state, signed, epoch, sealed)


def _raced(state: CircleState, signed: SignedOp) -> bool:
    """Would this rotation (not counting) have counted, but for a removal or demotion of its
    author that it had not seen? Struck: its author was a member at its position, so it
    must pass the usual check of who may move keys there. Refused: its author's latest
    removal (or demotion from organizer) is not in its causal past, and they could move
    keys before it (an organizer once, or the charter lets members invite)."""
    op = signed.op
    if signed.id in state.struck:
        member = state.members.get(op.author)
        if member is None or not member.acked:
            return False
        try:
            may_invite(state, op.author, NOT_KEY_KEEPER)
        except OpRejected:
            return False
        return True
    removals = state.removals.get(op.author)
    if not removals:
        return False
    last = removals[-1]
    if last.scope not in ("member", ORGANIZER):
        return False
    if op.author not in state.seniority and not state.info["charter"].members_can_invite:
        return False
    return not state.causal.which_in_past((last.end_op,), signed.id)


def kept_epoch(state: CircleState, epoch: bytes) -> bool:
    """Is ``epoch`` one the fold kept from a rotation that did not count (`keep_epoch`)?
    Whoever was removed holds its key: nothing new is sealed with it."""
    record = state.epochs.get(epoch)
    return record is not None and (record.op in state.struck or record.op in state.rejected)


def _offer(state: CircleState, signed: SignedOp, epoch: bytes, sealed: dict[bytes, bytes]) -> None:
    offers = state.offers[epoch]
    for member in sealed:
        if member in state.members and member not in offers:
            state.put(offers, member, signed.id)


def key_share(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    body = schema.exact_keys(body, _SHARE_KEYS, "body")
    epoch = epoch_ref(body["epoch"], "epoch")
    sealed = _sealed(state, body["sealed"], "sealed")
    may_invite(state, op.author, NOT_KEY_KEEPER)
    if epoch not in state.epochs:
        raise OpRejected(EPOCH_UNKNOWN)
    _offer(state, signed, epoch, sealed)
    if epoch == state.info.get("epoch") and _reached_outsiders(state, sealed):
        state.put_info("rotation_due", True)


def key_ack(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    """A member's node opened and saved these epochs' keys: the member holds them now."""
    body = schema.exact_keys(body, _ACK_KEYS, "body")
    epochs = body["epochs"]
    if type(epochs) is not list:
        raise schema.InvalidBody("epochs", "wrong type")
    if not 1 <= len(epochs) <= MAX_ACKED:
        raise schema.InvalidBody("epochs", "too many items")
    for value in epochs:
        epoch_ref(value, "epochs item")
    if len(set(epochs)) != len(epochs):
        raise schema.InvalidBody("epochs", "repeated item")
    if any(epoch not in state.epochs for epoch in epochs):
        raise OpRejected(EPOCH_UNKNOWN)
    for epoch in epochs:
        holders = state.holders[epoch]
        if op.author not in holders:
            state.put(holders, op.author, signed.id)
            note_held(state, op.author, epoch)


def member_compromised(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    """A member's own signed warning that their device is compromised: they are removed
    at once (even the last organizer: the eldest member then leads) and a rotation is due."""
    body = schema.exact_keys(body, _COMPROMISED_KEYS, "body")
    schema.optional_long(body["note"], "note", schema.MAX_NOTE_CHARS)
    drop_member(state, op.author, signed)
    settle(state, signed)


def invite_create(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    body = schema.exact_keys(body, _INVITE_KEYS, "body")
    invite = schema.fixed_bytes(body["invite"], "invite", 16)
    secret = schema.fixed_bytes(body["secret"], "secret", 32)
    uses = schema.integer(body["uses"], "uses", 1, MAX_INVITE_USES)
    expires = schema.optional_timestamp(body["expires"], "expires")
    if invite_id(secret) != invite:
        raise schema.InvalidBody("invite", "does not match secret")
    may_invite(state, op.author, NOT_INVITER)
    if invite in state.invites:
        raise OpRejected(INVITE_EXISTS)
    state.put(state.invites, invite, Invite(op.author, op.lamport, signed.id, secret, uses, expires, 0, None))


def invite_revoke(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    body = schema.exact_keys(body, _REVOKE_KEYS, "body")
    invite_ref = schema.fixed_bytes(body["invite"], "invite", 16)
    invite = state.invites.get(invite_ref)
    if invite is None:
        raise OpRejected(INVITE_UNKNOWN)
    if op.author != invite.author and not has_role(state, op.author, ORGANIZER):
        raise OpRejected(NOT_INVITE_OWNER)
    if invite.revoked_by is not None:
        raise OpRejected(INVITE_REVOKED)
    state.put(state.invites, invite_ref, invite._replace(revoked_by=signed.id))


def use_invite(state: CircleState, invite_ref: bytes, op: Op) -> None:
    """Count one use of an invite by a ``member.add`` at ``op``; refuse dead invites."""
    invite = state.invites.get(invite_ref)
    if invite is None:
        raise OpRejected(INVITE_UNKNOWN)
    if invite.revoked_by is not None:
        raise OpRejected(INVITE_REVOKED)
    if invite.used >= invite.uses:
        raise OpRejected(INVITE_USED_UP)
    if invite.expires is not None and op.ts > invite.expires:
        raise OpRejected(INVITE_EXPIRED)
    state.put(state.invites, invite_ref, invite._replace(used=invite.used + 1))


_RELAY_ADDRESS = re.compile(
    r"/(?:ip4/(?P<ip4>[0-9.]{7,15})|ip6/(?P<ip6>[0-9A-Fa-f:.]{2,45})|dns[46]?/(?P<dns>[A-Za-z0-9][A-Za-z0-9.-]{0,252}))"
    r"/tcp/(?P<port>[1-9][0-9]{0,4})/p2p/[1-9A-HJ-NP-Za-km-z]{46,59}"
)
"""A relay address members can dial: ``/ip4|ip6|dns|dns4|dns6/HOST/tcp/PORT/p2p/PEER``."""


def relay_address_problem(address: str) -> str | None:
    """Why ``address`` is not a relay address members can dial, or None. Pure (no resolver):
    the same answer on every node, so the fold agrees."""
    match = _RELAY_ADDRESS.fullmatch(address)
    if match is None:
        return "bad format"
    if int(match["port"]) > 65535:
        return "bad port"
    for family, text in ((4, match["ip4"]), (6, match["ip6"])):
        if text is None:
            continue
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            return "bad format"
        if ip.version != family or ip.is_unspecified:
            return "not a dialable host"
    return None


def _address(value: Any) -> str:
    address = schema.short_text(value, "address", MAX_ADDRESS_CHARS)
    problem = relay_address_problem(address)
    if problem is not None:
        raise schema.InvalidBody("address", problem)
    return address


def relay_add(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    address = _address(schema.exact_keys(body, _RELAY_KEYS, "body")["address"])
    _require_organizer(state, op.author)
    if address in state.relays:
        raise OpRejected(RELAY_KNOWN)
    if len(state.relays) >= MAX_RELAYS:
        raise OpRejected(RELAYS_FULL)
    state.put(state.relays, address, signed.id)


def relay_remove(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    address = _address(schema.exact_keys(body, _RELAY_KEYS, "body")["address"])
    _require_organizer(state, op.author)
    if address not in state.relays:
        raise OpRejected(RELAY_UNKNOWN)
    state.drop(state.relays, address)


def members_missing_key(state: CircleState, epoch: bytes | None = None) -> list[bytes]:
    """Current members who have not acknowledged ``epoch`` (default: the current one), in id order."""
    epoch = epoch if epoch is not None else state.info.get("epoch")
    holders = state.holders.get(epoch, {}) if epoch is not None else {}
    return sorted(member for member in state.members if member not in holders and member in state.cards)


def epochs_before(state: CircleState, epoch: bytes | None) -> Iterator[bytes]:
    """The epochs before ``epoch`` on its chain (its ``previous``, then that one's, ...),
    as far as the fold knows them: what a welcome sent with ``epoch`` current carries."""
    record = state.epochs.get(epoch) if epoch is not None else None
    while record is not None and record.previous is not None:
        yield record.previous
        record = state.epochs.get(record.previous)


__all__ = [
    "TARGET_NOT_MEMBER", "HANDLERS", "MAX_RELAYS", "MAX_KEPT_EPOCHS", "epochs_before", "invite_id",
    "keep_epoch", "kept_epoch", "members_missing_key", "relay_address_problem",
]  # fmt: skip

HANDLERS: dict[str, Handler] = {
    OpKind.KEY_ROTATE: key_rotate,
    OpKind.KEY_SHARE: key_share,
    OpKind.KEY_ACK: key_ack,
    OpKind.MEMBER_COMPROMISED: member_compromised,
    OpKind.INVITE_CREATE: invite_create,
    OpKind.INVITE_REVOKE: invite_revoke,
    OpKind.RELAY_ADD: relay_add,
    OpKind.RELAY_REMOVE: relay_remove,
}
