"""Key epochs, rotations, key shares, compromise, invites and relays in the fold."""

from __future__ import annotations

import random
from typing import Any

import pytest
from circle_support import PEOPLE
from forge_kit import B, M, causal_orders, feed
from sync_support import sealed_body

from kith.identity.crypto import seal_to
from kith.sync.kinds import keys
from kith.sync.kinds.common import NOT_MEMBER, NOT_ORGANIZER
from kith.sync.kinds.keys import invite_id, members_missing_key
from kith.sync.kinds.membership import member_add_body
from kith.sync.ops import SignedOp
from kith.sync.replica import CircleReplica
from kith.sync.state import CircleState, fold_key

FIRST = bytes([0x42]) * 16


def _sealed(circle: Any, *names: str) -> dict[bytes, bytes]:
    return {circle.member(n): seal_to(circle.people[n].dh_public, bytes(64)) for n in names}


def test_genesis_starts_the_first_epoch(circle: Any) -> None:
    state = circle.state
    assert state.info["epoch"] == FIRST and state.info["rotation_due"] is False
    assert state.cards[circle.member("alice")] == circle.people["alice"].dh_public
    # bob, carol and dana were added without a welcome epoch: they are missing the key.
    assert members_missing_key(state) == sorted(circle.member(n) for n in ("bob", "carol", "dana"))


def test_removal_makes_a_rotation_due_and_the_rotation_settles_it(circle: Any) -> None:
    circle.act("alice", "member.remove", {"member": circle.member("dana"), "reason": None})
    assert circle.state.info["rotation_due"] is True
    new = bytes([7]) * 16
    rotate = circle.act(
        "alice", "key.rotate", {"epoch": new, "previous": FIRST, "sealed": _sealed(circle, "bob", "carol")}
    )
    assert circle.reason(rotate) is None
    assert circle.state.info["epoch"] == new and circle.state.info["rotation_due"] is False
    # Offered is not held: bob and carol hold the key once their nodes acknowledge it.
    assert set(circle.state.offers[new]) == {circle.member(n) for n in ("bob", "carol")}
    assert set(circle.state.holders[new]) == {circle.member("alice")}
    assert members_missing_key(circle.state) == sorted(circle.member(n) for n in ("bob", "carol"))
    for name in ("bob", "carol"):
        assert circle.reason(circle.act(name, "key.ack", {"epochs": [new]})) is None
    assert members_missing_key(circle.state) == []


def test_rotation_authority_and_recipients(circle: Any) -> None:
    circle.act("alice", "member.remove", {"member": circle.member("dana"), "reason": None})
    by_outsider = circle.act("dana", "key.rotate", {"epoch": bytes([6]) * 16, "previous": FIRST, "sealed": {}})
    assert circle.reason(by_outsider) == NOT_MEMBER
    outsider = _sealed(circle, "bob")
    outsider[circle.member("eve")] = seal_to(circle.people["eve"].dh_public, bytes(64))
    to_outsider = circle.act("alice", "key.rotate", {"epoch": bytes([7]) * 16, "previous": FIRST, "sealed": outsider})
    # Someone who never was a member holds nothing the circle gave them: the rotation stands.
    assert circle.reason(to_outsider) is None
    assert circle.member("eve") not in circle.state.holders[bytes([7]) * 16]
    assert circle.state.info["rotation_due"] is False
    # Sealed to Dana, removed before it in fold order (its author had not seen that yet):
    # the rotation still counts, so ops sealed with it stay readable, but the key reached
    # her, so another rotation is due.
    leaked = _sealed(circle, "bob")
    leaked[circle.member("dana")] = seal_to(circle.people["dana"].dh_public, bytes(64))
    to_dana = circle.act("alice", "key.rotate", {"epoch": bytes([5]) * 16, "previous": bytes([7]) * 16,
                                                 "sealed": leaked})  # fmt: skip
    assert circle.reason(to_dana) is None
    assert circle.state.info["epoch"] == bytes([5]) * 16 and circle.state.info["rotation_due"] is True
    assert circle.member("dana") not in circle.state.holders[bytes([5]) * 16]
    reserved = circle.act("alice", "key.rotate", {"epoch": bytes(16), "previous": FIRST, "sealed": {}})
    assert "reserved value" in circle.reason(reserved)
    unknown_previous = circle.act(
        "alice", "key.rotate", {"epoch": bytes([8]) * 16, "previous": bytes([9]) * 16, "sealed": {}}
    )
    assert circle.reason(unknown_previous) == keys.EPOCH_UNKNOWN
    assert circle.state.info["epoch"] == bytes([5]) * 16


def test_concurrent_rotations_converge_on_the_later_in_fold_order(circle: Any) -> None:
    circle.grant("carol", "organizer")
    base = CircleReplica(circle.state.circle_id)
    base.ingest_many(circle.replica.ops())
    other = CircleReplica(circle.state.circle_id)
    other.ingest_many(circle.replica.ops())
    a = base.author_op(
        circle.people["alice"], "key.rotate", {"epoch": bytes([1]) * 16, "previous": FIRST, "sealed": {}}, ts=50
    )
    c = other.author_op(
        circle.people["carol"], "key.rotate", {"epoch": bytes([2]) * 16, "previous": FIRST, "sealed": {}}, ts=50
    )
    base.ingest_many([a, c])
    other.ingest_many([c, a])
    assert base.state_hash() == other.state_hash()
    winner = max((a, c), key=lambda s: (s.op.lamport, s.id))
    assert base.state.info["epoch"] == winner.op.body["epoch"]


def test_a_share_offers_and_an_ack_holds(circle: Any) -> None:
    share = circle.act("alice", "key.share", {"epoch": FIRST, "sealed": _sealed(circle, "bob")})
    assert circle.reason(share) is None
    assert circle.member("bob") in circle.state.offers[FIRST]
    assert circle.member("bob") not in circle.state.holders[FIRST]
    ack = circle.act("bob", "key.ack", {"epochs": [FIRST]})
    assert circle.reason(ack) is None and circle.state.holders[FIRST][circle.member("bob")] == ack.id
    circle.act("alice", "member.add", member_add_body(circle.people["eve"].card().to_bytes()))
    assert circle.member("eve") not in circle.state.holders[FIRST]  # until her node acknowledges the welcome
    circle.act("eve", "key.ack", {"epochs": [FIRST]})
    assert circle.member("eve") in circle.state.holders[FIRST]
    bad = circle.act("alice", "key.share", {"epoch": bytes([9]) * 16, "sealed": {}})
    assert circle.reason(bad) == keys.EPOCH_UNKNOWN
    assert circle.reason(circle.act("bob", "key.ack", {"epochs": [bytes([9]) * 16]})) == keys.EPOCH_UNKNOWN
    assert "repeated item" in circle.reason(circle.act("bob", "key.ack", {"epochs": [FIRST, FIRST]}))
    assert "too many items" in circle.reason(circle.act("bob", "key.ack", {"epochs": []}))


def test_only_organizers_move_keys_unless_members_may_invite(circle: Any) -> None:
    """A plain member cannot rotate (a junk rotation would freeze the circle) nor share."""
    junk = {circle.member("alice"): bytes(112), circle.member("carol"): bytes(112)}
    rotate = circle.act("dana", "key.rotate", {"epoch": bytes([3]) * 16, "previous": FIRST, "sealed": junk})
    assert circle.reason(rotate) == keys.NOT_KEY_KEEPER
    assert circle.state.info["epoch"] == FIRST
    share = circle.act("dana", "key.share", {"epoch": FIRST, "sealed": junk})
    assert circle.reason(share) == keys.NOT_KEY_KEEPER


def test_content_sealed_with_a_key_its_author_saw_replaced_is_refused(circle: Any) -> None:
    new = bytes([7]) * 16
    circle.act("alice", "key.rotate", {"epoch": new, "previous": FIRST, "sealed": _sealed(circle, "bob")})
    # bob has not acknowledged the new key yet: a post sealed with the old one is fine
    assert circle.reason(circle.post("bob", "still on the old key")) is None
    circle.act("bob", "key.ack", {"epochs": [new]})
    stale = circle.post("bob", "after acknowledging the new key")  # the test helper seals with FIRST
    assert circle.reason(stale) == keys.STALE_KEY
    assert circle.reason(circle.post("alice", "the rotator holds the new key")) == keys.STALE_KEY


def test_a_join_request_admits_once(circle: Any) -> None:
    nonce = bytes([4]) * 16
    first = circle.act("alice", "member.add", member_add_body(circle.people["eve"].card().to_bytes(), request=nonce))
    assert circle.reason(first) is None and circle.state.admissions[nonce] == first.id
    circle.act("alice", "member.remove", {"member": circle.member("eve"), "reason": None})
    again = circle.act("alice", "member.add", member_add_body(circle.people["eve"].card().to_bytes(), request=nonce))
    assert circle.reason(again) == "that join request was already used to let someone in"
    assert circle.member("eve") not in circle.state.members


def test_a_compromised_member_is_removed_even_as_last_organizer(circle: Any) -> None:
    warn = circle.act("alice", "member.compromised", {"note": "my phone was taken"})
    assert circle.reason(warn) is None
    assert circle.member("alice") not in circle.state.members
    assert circle.state.info["rotation_due"] is True
    # The eldest remaining member leads, so someone can rotate.
    assert any("organizer" in m.roles for m in circle.state.members.values())
    later = circle.post("alice", "still here?")
    assert circle.reason(later) == NOT_MEMBER


def test_invites_count_uses_expire_and_can_be_revoked(circle: Any) -> None:
    secret = bytes([5]) * 32
    invite = invite_id(secret)
    create = circle.act("alice", "invite.create", {"invite": invite, "secret": secret, "uses": 1, "expires": 100})
    assert circle.reason(create) is None
    first = circle.act("alice", "member.add", member_add_body(circle.people["eve"].card().to_bytes(), invite=invite))
    assert circle.reason(first) is None and circle.state.invites[invite].used == 1
    second = circle.act(
        "alice", "member.add", member_add_body(circle.people["mallory"].card().to_bytes(), invite=invite)
    )
    assert circle.reason(second) == keys.INVITE_USED_UP
    secret2 = bytes([6]) * 32
    circle.act("alice", "invite.create", {"invite": invite_id(secret2), "secret": secret2, "uses": 5, "expires": 3})
    late = circle.act(
        "alice", "member.add", member_add_body(circle.people["mallory"].card().to_bytes(), invite=invite_id(secret2))
    )
    assert circle.reason(late) == keys.INVITE_EXPIRED  # the approver's own time is past the expiry
    secret3 = bytes([7]) * 32
    circle.act("alice", "invite.create", {"invite": invite_id(secret3), "secret": secret3, "uses": 5, "expires": None})
    assert circle.reason(circle.act("dana", "invite.revoke", {"invite": invite_id(secret3)})) == keys.NOT_INVITE_OWNER
    assert circle.reason(circle.act("alice", "invite.revoke", {"invite": invite_id(secret3)})) is None
    revoked = circle.act(
        "alice", "member.add", member_add_body(circle.people["mallory"].card().to_bytes(), invite=invite_id(secret3))
    )
    assert circle.reason(revoked) == keys.INVITE_REVOKED
    unbound = circle.act("alice", "invite.create", {"invite": bytes(16), "secret": secret, "uses": 1, "expires": None})
    assert "does not match secret" in circle.reason(unbound)
    by_member = circle.act(
        "dana", "invite.create", {"invite": invite_id(bytes(32)), "secret": bytes(32), "uses": 1, "expires": None}
    )
    assert circle.reason(by_member) == keys.NOT_INVITER


def test_member_add_requires_the_newcomers_own_card(circle: Any) -> None:
    body = member_add_body(circle.people["eve"].card().to_bytes())
    body["card"] = circle.people["mallory"].card().to_bytes()
    assert "card of someone else" in circle.reason(circle.act("alice", "member.add", body))
    body["card"] = b"not a card"
    assert "bad card" in circle.reason(circle.act("alice", "member.add", body))


def test_relays_are_listed_by_organizers(circle: Any) -> None:
    address = "/ip4/203.0.113.5/tcp/4747/p2p/12D3KooWBhA7J2B7q1FQzSvVMfu9ojN7yo8TGxUEp7pZYfCFe6wm"
    assert circle.reason(circle.act("dana", "relay.add", {"address": address})) == NOT_ORGANIZER
    assert circle.reason(circle.act("alice", "relay.add", {"address": address})) is None
    assert address in circle.state.relays
    assert "bad format" in circle.reason(circle.act("alice", "relay.add", {"address": "http://evil"}))
    assert circle.reason(circle.act("alice", "relay.remove", {"address": address})) is None
    assert circle.state.relays == {}


def test_an_ack_its_removal_voided_never_counts_for_the_next_membership() -> None:
    """Acks are once per membership: a member removed by an op that had not seen their ack
    (the ack is struck with the rest of what the removal did not see) acknowledges again
    once added again. A modified client might replay the voided ack after its re-admission
    instead: in every arrival order it stays void, and only an ack signed as the member it
    is now counts. (An ack the removal had seen stands: the member does hold that key. An
    ack is a claim about one's own device, so a false one only keeps keys from its author.)"""
    b = B()
    admission = b.add("bob")
    old_ack = b.op("bob", "key.ack", {"epochs": [FIRST]}, cite=[admission.id])
    before_removal = feed(b.cid, b.ops).state
    assert before_removal.holders[FIRST][M["bob"]] == old_ack.id  # it counted, in its membership
    removal = b.remove("bob", cite=[admission.id])  # alice had not seen the ack
    readmission = b.add("bob", cite=[removal.id])
    replayed = [*b.ops, old_ack]  # the same signed op once more, after the re-admission
    for order in causal_orders(replayed, random.Random(7), 6):
        state = feed(b.cid, order).state
        assert M["bob"] in state.members
        assert M["bob"] not in state.holders.get(FIRST, {}), "a voided ack counted"
        assert state.is_rejected(old_ack.id) is not None
    honest_ack = b.op("bob", "key.ack", {"epochs": [FIRST]}, cite=[readmission.id])
    for order in causal_orders(b.ops, random.Random(8), 6):
        state = feed(b.cid, order).state
        assert state.holders[FIRST].get(M["bob"]) == honest_ack.id


# --- epochs of rotations that did not count (a removal raced them) ----------------------

E2 = bytes([0x22]) * 16


def _raced_rotation(removal_sorts_first: bool) -> tuple[B, dict[str, Any]]:
    """Bob (an organizer Alice outranks) rotates to E2 and Dana, on his side, acknowledges it
    and posts under it; Alice, who had seen none of that, removes Bob and lets Eve in. The
    removal sorts after Bob's rotation (it strikes it) or before it (the rotation is
    rejected: its author is no longer a member)."""
    b = B()
    adds = {who: b.add(who) for who in ("bob", "dana")}
    grant = b.grant("bob")
    start = b.op("bob", "profile.set", {"name": "Bob"}, cite=[adds["bob"].id, grant.id])
    dana_in = b.post("dana", "hello", cite=[adds["dana"].id])
    sealed = {M[n]: seal_to(PEOPLE[n].dh_public, bytes(64)) for n in ("alice", "dana")}
    rotation = b.op("bob", "key.rotate", {"epoch": E2, "previous": FIRST, "sealed": sealed}, cite=[dana_in.id])
    ack = b.op("dana", "key.ack", {"epochs": [E2]}, cite=[rotation.id])
    text = {"text": "under bob's key", "reply_to": None, "content_warning": None, "urgent": False}
    post = b.op("dana", "msg.post", sealed_body("msg.post", text, M["dana"], b.cid, epoch=E2), cite=[ack.id])
    if removal_sorts_first:
        removal = b.remove("bob", cite=[start.id], before=rotation)
    else:
        for i in range(6):  # Alice's side gets ahead, so her removal sorts after Bob's rotation
            b.post("alice", f"meanwhile {i}", cite=[start.id])
        removal = b.remove("bob")
        assert fold_key(removal) > fold_key(rotation)
    eve = b.add("eve", cite=[removal.id])
    return b, {"rotation": rotation, "ack": ack, "post": post, "removal": removal, "eve": eve}


@pytest.mark.parametrize("removal_sorts_first", [False, True], ids=["struck", "rejected"])
def test_a_rotation_a_removal_raced_keeps_its_epoch_for_what_members_sealed_with_it(removal_sorts_first: bool) -> None:
    """What Dana said under Bob's key counts on every node, whichever way the race went and
    whatever order the ops arrive in; the key never becomes current, and Eve (let in
    meanwhile) is owed it, so his node can open what was sealed with it."""
    b, ops = _raced_rotation(removal_sorts_first)
    hashes = set()
    for order in causal_orders(b.ops, random.Random(3), 8):
        state = feed(b.cid, order).state
        assert state.is_rejected(ops["rotation"].id) is not None  # the rotation itself does not count
        assert M["bob"] not in state.members
        assert state.info["epoch"] == FIRST and state.info["rotation_due"] is True
        assert keys.kept_epoch(state, E2) and not keys.kept_epoch(state, FIRST)
        assert state.is_rejected(ops["ack"].id) is None and M["dana"] in state.holders[E2]
        assert state.is_rejected(ops["post"].id) is None and ops["post"].id in state.messages
        assert M["eve"] in members_missing_key(state, E2)
        hashes.add(feed(b.cid, order).state_hash())
    assert len(hashes) == 1


def test_holding_a_kept_epoch_does_not_make_the_current_key_look_stale() -> None:
    """A kept epoch may sort after the current one. Dana acknowledged it (as her node does
    for every key it installs): her posts under the current key still count."""
    b, ops = _raced_rotation(removal_sorts_first=False)
    later = b.post("dana", "under the current key", cite=[ops["removal"].id, ops["post"].id])
    state = feed(b.cid, b.ops).state
    assert state.epochs[E2].lamport > state.epochs[FIRST].lamport
    assert state.is_rejected(later.id) is None


def test_a_removed_member_cannot_flood_the_circle_with_kept_epochs() -> None:
    """Attack: Bob, removed, signs rotation after rotation (back-dated forks and new ones).
    At most `MAX_KEPT_EPOCHS` of them are kept, none becomes current, and the circle goes on."""
    b = B()
    admission = b.add("bob")
    grant = b.grant("bob")
    start = b.op("bob", "profile.set", {"name": "Bob"}, cite=[admission.id, grant.id])
    removal = b.remove("bob", cite=[start.id])
    for i in range(3 * keys.MAX_KEPT_EPOCHS):
        epoch = bytes([0x30 + i]) * 16
        b.op("bob", "key.rotate", {"epoch": epoch, "previous": FIRST, "sealed": {}}, prev=start.id if i % 2 else None)
    after = b.post("alice", "still here", cite=[removal.id])
    for order in causal_orders(b.ops, random.Random(5), 4):
        state = feed(b.cid, order).state
        kept = [e for e in state.epochs if keys.kept_epoch(state, e)]
        assert len(kept) == keys.MAX_KEPT_EPOCHS
        assert state.info["epoch"] == FIRST
        assert state.is_rejected(after.id) is None


def test_a_stranger_gets_no_epoch_kept() -> None:
    """Only the rotations of someone a removal or demotion ended are kept: a plain member's
    refused rotation, or one by someone never in the circle, leaves no epoch behind."""
    b = B()
    admission = b.add("dana")
    plain = b.op("dana", "key.rotate", {"epoch": E2, "previous": FIRST, "sealed": {}}, cite=[admission.id])
    stranger = b.op("eve", "key.rotate", {"epoch": bytes([0x23]) * 16, "previous": FIRST, "sealed": {}})
    state = feed(b.cid, b.ops).state
    assert state.is_rejected(plain.id) == keys.NOT_KEY_KEEPER and state.is_rejected(stranger.id) == NOT_MEMBER
    assert set(state.epochs) == {FIRST}


def test_a_restored_snapshot_still_ignores_kept_epochs_for_stale_keys() -> None:
    """A state restored from its snapshot (the node's state cache) rebuilds each member's
    newest key without the kept epochs, as the fold does: the post after it still counts."""
    b, ops = _raced_rotation(removal_sorts_first=False)
    later = b.post("dana", "under the current key", cite=[ops["removal"].id, ops["post"].id])
    live = feed(b.cid, b.ops).state
    picture, tail = live.snapshot(sum(1 for signed in b.ops if fold_key(signed) >= fold_key(later)))
    assert tail[0] == later
    restored = CircleState.restore(b.cid, picture, causal=live.causal)
    for signed in tail:
        restored.add(signed)
    assert restored.is_rejected(later.id) is None
    assert restored.encode() == live.encode()


def test_a_kept_epoch_id_gives_way_to_a_rotation_that_counts() -> None:
    """Attack: Bob, removed, reads the id of the rotation Alice makes after removing him (it
    is sealed with the key he still holds) and signs a rotation naming it, not citing his
    removal, sorting before hers. His is kept (it raced the removal), but hers counts: it
    takes the id over, becomes current and settles the rotation that was due."""
    b, ops = _raced_rotation(removal_sorts_first=True)
    e3 = bytes([0x33]) * 16
    sealed = {M["dana"]: seal_to(PEOPLE["dana"].dh_public, bytes(64))}
    real = b.op("alice", "key.rotate", {"epoch": e3, "previous": FIRST, "sealed": sealed})  # after the removal
    squat = b.op("bob", "key.rotate", {"epoch": e3, "previous": FIRST, "sealed": {}}, before=real)
    hashes = set()
    for order in causal_orders(b.ops, random.Random(9), 6):
        replica = feed(b.cid, order)
        state = replica.state
        assert state.is_rejected(squat.id) is not None and state.is_rejected(real.id) is None
        assert state.info["epoch"] == e3 and state.info["rotation_due"] is False
        assert state.epochs[e3].op == real.id and not keys.kept_epoch(state, e3)
        assert set(state.holders[e3]) == {M["alice"]}
        hashes.add(replica.state_hash())
    assert len(hashes) == 1


def test_only_a_raced_rotation_by_someone_who_could_move_keys_is_kept() -> None:
    """Kept: an organizer's rotation that a demotion raced. Not kept: a rotation made after
    seeing the removal or demotion, a plain member's (they never could rotate), or one by a
    former organizer, who knew they could not, raced only by the loss of another role."""
    b = B()
    adds = {who: b.add(who) for who in ("bob", "carol", "dana", "eve")}
    grants = {"bob": b.grant("bob"), "carol": b.grant("carol"), "dana": b.grant("dana")}
    treasurer = b.grant("dana", "treasurer")
    starts = {w: b.op(w, "profile.set", {"name": w}, cite=[adds[w].id, *([grants[w].id] if w in grants else [])])
              for w in ("bob", "carol", "dana", "eve")}  # fmt: skip
    b.op("dana", "profile.set", {"name": "Dana T"}, cite=[treasurer.id])
    bob_out = b.revoke("bob", cite=[starts["bob"].id])
    carol_out = b.remove("carol", cite=[starts["carol"].id])
    dana_not_organizer = b.revoke("dana")
    dana_saw_it = b.op("dana", "profile.set", {"name": "Dana"}, cite=[dana_not_organizer.id])
    dana_out = b.revoke("dana", "treasurer")
    eve_out = b.remove("eve", cite=[starts["eve"].id])

    def rotate(who: str, epoch: int, *cite: bytes) -> SignedOp:
        body = {"epoch": bytes([epoch]) * 16, "previous": FIRST, "sealed": {}}
        return b.op(who, "key.rotate", body, cite=list(cite))

    raced = rotate("bob", 0x51)  # Bob had not seen his demotion
    after_demotion = rotate("bob", 0x52, bob_out.id)
    after_removal = rotate("carol", 0x53, carol_out.id)
    for i in range(8):  # Eve's chain gets ahead of her removal: her rotation is refused, not struck
        b.post("eve", f"still typing {i}")
    plain_raced = rotate("eve", 0x54)  # Eve never could rotate
    other_role = rotate("dana", 0x55, dana_saw_it.id)  # raced only by the loss of the treasurer role
    rotations = (raced, after_demotion, after_removal, plain_raced, other_role)
    state = feed(b.cid, b.ops).state
    assert fold_key(plain_raced) > fold_key(eve_out) and fold_key(other_role) > fold_key(dana_out)
    assert all(state.is_rejected(r.id) is not None for r in rotations)
    assert [r for r in rotations if r.op.body["epoch"] in state.epochs] == [raced]
    assert keys.kept_epoch(state, raced.op.body["epoch"])
