"""The sans-IO membership lifecycle: events in, actions out (`sync.lifecycle`).

Each test drives a `MembershipLifecycle` with a real folded circle and real join-request
envelopes, and checks the decisions a node would carry out: no re-admission from a stored
request, no join request forgotten because it came before its invite, junk keys repaired,
keys shared again to members who never acknowledged them.
"""

from __future__ import annotations

from typing import Any

from circle_support import PEOPLE, Circle
from sync_support import FIRST_EPOCH

from kith.sync.invites import InviteCode, circle_check, seal_join_request
from kith.sync.kinds import keys
from kith.sync.kinds.circle import charter_body
from kith.sync.kinds.membership import member_add_body
from kith.sync.lifecycle import (
    Ack,
    Approve,
    CircleView,
    Introduce,
    JoinRequestShown,
    MembershipLifecycle,
    Refuse,
    Rotate,
    Share,
)

SECRET = bytes([0x33]) * 32


def view(circle: Circle, held: tuple[bytes, ...] = (FIRST_EPOCH,)) -> CircleView:
    return CircleView(circle.state.circle_id, circle.state, frozenset(held))


def invite(circle: Circle, by: str = "alice", uses: int = 2) -> InviteCode:
    invite_ref = keys.invite_id(SECRET)
    circle.act(by, "invite.create", {"invite": invite_ref, "secret": SECRET, "uses": uses, "expires": None})
    return code_for(circle)


def code_for(circle: Circle) -> InviteCode:
    return InviteCode(SECRET, circle_check(circle.state.circle_id, SECRET), (), None)


def request_from(code: InviteCode, who: str, nonce_seed: int = 1) -> Any:
    stream = iter(bytes([nonce_seed]) * 64)
    return seal_join_request(code, PEOPLE[who], ts=10, rand=lambda n: bytes(next(stream) for _ in range(n)))


def test_the_inviters_node_approves_and_a_stored_request_never_readmits() -> None:
    circle = Circle()
    code = invite(circle)
    envelope, nonce = request_from(code, "eve")
    alice = MembershipLifecycle(circle.member("alice"))
    actions = alice.join_request(view(circle), envelope, now=100)
    assert [type(a) for a in actions] == [Approve]
    assert actions[0].request.request == nonce
    circle.act(
        "alice", "member.add", member_add_body(PEOPLE["eve"].card().to_bytes(), invite=code.invite_id, request=nonce)
    )
    circle.act("alice", "member.remove", {"member": circle.member("eve"), "reason": "abusive"})
    # The organizer's node restarts and replays every stored join request.
    restarted = MembershipLifecycle(circle.member("alice"))
    assert restarted.join_request(view(circle), envelope, now=200) == []
    assert circle.state.invites[code.invite_id].used == 1


def test_a_circle_that_confirms_joins_lets_nobody_in_on_a_code_alone() -> None:
    """A leaked code is not enough where the charter says so: even the inviter's node shows
    the request to its organizer instead of letting the holder in."""
    circle = Circle(charter_body("Ask first.", confirm_joins=True))
    assert circle.state.info["charter"].confirm_joins
    code = invite(circle)
    envelope, _nonce = request_from(code, "eve")
    alice = MembershipLifecycle(circle.member("alice"))
    actions = alice.join_request(view(circle), envelope, now=100)
    assert [type(a) for a in actions] == [JoinRequestShown]
    assert [p.request.card.member_id for p in alice.pending_requests(view(circle))] == [circle.member("eve")]
    # A member's modified client that adds the holder anyway (the charter lets members
    # invite) is refused by every fold; only an organizer's member.add lets them in.
    members_invite = Circle(charter_body("Ask first.", members_can_invite=True, confirm_joins=True))
    members_invite.add("bob")
    card = PEOPLE["eve"].card().to_bytes()
    forced = members_invite.act("bob", "member.add", member_add_body(card))
    assert members_invite.state.is_rejected(forced.id) == "the charter says an organizer confirms every join"
    members_invite.act("alice", "member.add", member_add_body(card))
    assert members_invite.member("eve") in members_invite.state.members
    # The setting is part of the charter's wire form only when on (old charters unchanged).
    assert "confirm_joins" not in charter_body("Trust the code.")


def test_a_request_before_its_invite_is_kept_and_answered_when_the_invite_arrives() -> None:
    circle = Circle()
    circle.add("bob")
    circle.grant("bob", "organizer")
    circle.post("bob", "hi")
    bob = MembershipLifecycle(circle.member("bob"))
    # bob's node stores the request before alice's invite.create reaches it.
    envelope, _nonce = request_from(code_for(circle), "eve")
    assert bob.join_request(view(circle), envelope, now=1) == []
    invite(circle)  # alice's invite: only alice's node approves by itself; bob shows it
    actions = bob.folded(view(circle), {"invite.create"}, now=2)
    assert [type(a) for a in actions] == [JoinRequestShown]
    assert [p.request.card.member_id for p in bob.pending_requests(view(circle))] == [circle.member("eve")]


def test_a_used_up_invite_is_refused_by_its_inviter_only() -> None:
    circle = Circle()
    circle.add("bob")
    circle.grant("bob", "organizer")
    circle.post("bob", "hi")
    code = invite(circle, uses=1)
    first, nonce = request_from(code, "eve", 1)
    circle.act(
        "alice", "member.add", member_add_body(PEOPLE["eve"].card().to_bytes(), invite=code.invite_id, request=nonce)
    )
    second, _ = request_from(code, "mallory", 2)
    refused = MembershipLifecycle(circle.member("alice")).join_request(view(circle), second, now=5)
    assert [type(a) for a in refused] == [Refuse] and "used up" in refused[0].reason
    assert MembershipLifecycle(circle.member("bob")).join_request(view(circle), second, now=5) == []


def test_an_organizer_whose_current_key_is_junk_rotates_at_their_turn() -> None:
    circle = Circle()
    circle.add("bob")
    circle.grant("bob", "organizer")
    circle.post("bob", "hi")
    new = bytes([0x61]) * 16
    junk = {circle.member("alice"): bytes(keys.SEALED_KEY_BYTES)}
    circle.act("bob", "key.rotate", {"epoch": new, "previous": FIRST_EPOCH, "sealed": junk})
    alice = MembershipLifecycle(circle.member("alice"), turn_delay=4)
    alice.key_unusable(circle.state.circle_id, new)
    first = alice.tick(view(circle), now=100)
    later = alice.tick(view(circle), now=108)
    # Whether alice is first or second in turn order, she rotates within one turn delay.
    assert [type(a) for a in first + later] == [Rotate]
    # A plain member who lacks the key waits for a share: no rotation from them.
    circle.add("carol")
    carol = MembershipLifecycle(circle.member("carol"))
    assert carol.tick(view(circle), now=100) == [] and carol.tick(view(circle), now=1000) == []


def test_an_organizer_who_never_gets_the_key_rotates_after_the_repair_delay() -> None:
    circle = Circle()
    circle.add("bob")
    circle.grant("bob", "organizer")
    circle.post("bob", "hi")
    new = bytes([0x62]) * 16
    circle.act("bob", "key.rotate", {"epoch": new, "previous": FIRST_EPOCH, "sealed": {}})
    alice = MembershipLifecycle(circle.member("alice"), turn_delay=4, repair_after=30)
    assert alice.tick(view(circle), now=0) == []
    assert alice.tick(view(circle), now=29) == []
    assert [type(a) for a in alice.tick(view(circle), now=30) + alice.tick(view(circle), now=34)] == [Rotate]


def test_members_who_do_not_acknowledge_a_key_are_sent_it_again() -> None:
    circle = Circle()
    circle.add("bob")
    alice = MembershipLifecycle(circle.member("alice"), ack_grace=10)
    assert alice.tick(view(circle), now=0) == []
    assert alice.tick(view(circle), now=9) == []
    shares = alice.tick(view(circle), now=10)
    assert shares == [Share(circle.state.circle_id, FIRST_EPOCH, (circle.member("bob"),))]
    circle.act("bob", "key.ack", {"epochs": [FIRST_EPOCH]})
    assert alice.tick(view(circle), now=100) == []


def test_installed_keys_are_acknowledged_once_and_a_newcomer_introduces_themselves_once() -> None:
    circle = Circle()
    circle.add("bob")
    bob = MembershipLifecycle(circle.member("bob"))
    circle_id = circle.state.circle_id
    assert bob.keys_installed(view(circle)) == [Ack(circle_id, (FIRST_EPOCH,)), Introduce(circle_id)]
    assert bob.keys_installed(view(circle)) == []
    # Someone who already has a profile (or holds no current key yet) signs none.
    circle.act("bob", "profile.set", {"display_name": "Bob", "pronouns": None, "skills": []})
    assert Introduce(circle_id) not in MembershipLifecycle(circle.member("bob")).keys_installed(view(circle))
    circle.add("carol")
    assert Introduce(circle_id) not in MembershipLifecycle(circle.member("carol")).keys_installed(view(circle, ()))
    outsider = MembershipLifecycle(PEOPLE["mallory"].member_id)
    assert outsider.keys_installed(view(circle)) == []


def test_someone_removed_and_added_again_acknowledges_the_keys_they_still_hold() -> None:
    """An acknowledgement the fold never counted (here it is simply never folded; in a soak
    it was voided as an op concurrent with the member's removal) belongs to the old
    membership: added again, the member acknowledges the keys they hold once more. Otherwise
    the organizers shared that key again every `ACK_GRACE_S` for ever (five minutes of
    key.share ops to one member, two organizers taking turns, until the soak gave up)."""
    circle = Circle()
    circle.add("bob")
    circle_id = circle.state.circle_id
    bob = MembershipLifecycle(circle.member("bob"))
    assert Ack(circle_id, (FIRST_EPOCH,)) in bob.keys_installed(view(circle))
    circle.act("alice", "member.remove", {"member": circle.member("bob"), "reason": None})
    assert bob.keys_installed(view(circle)) == []
    circle.add("bob")
    assert circle.member("bob") not in circle.state.holders.get(FIRST_EPOCH, {})
    assert Ack(circle_id, (FIRST_EPOCH,)) in bob.keys_installed(view(circle))
    assert Ack(circle_id, (FIRST_EPOCH,)) not in bob.keys_installed(view(circle))  # once per membership
    circle.act("bob", "key.ack", {"epochs": [FIRST_EPOCH]})
    assert circle.member("bob") in circle.state.holders[FIRST_EPOCH]  # nobody owes him a share now


def test_a_removal_makes_the_first_organizer_in_turn_rotate() -> None:
    circle = Circle()
    circle.add("bob")
    circle.act("alice", "member.remove", {"member": circle.member("bob"), "reason": None})
    assert circle.state.info["rotation_due"]
    actions = MembershipLifecycle(circle.member("alice")).tick(view(circle), now=0)
    assert [type(a) for a in actions] == [Rotate]


def test_the_organizer_who_removed_someone_rotates_at_once_whatever_the_turn_order() -> None:
    """Until the key changes nobody can seal anything; the first organizer in turn may be
    offline, each absent one costing a turn delay, while the remover is online and knew first."""
    circle = Circle()
    circle.add("bob")
    circle.add("carol")
    circle.add("dana")
    for organizer in ("bob", "carol"):
        circle.grant(organizer, "organizer")
    circle.act("alice", "member.remove", {"member": circle.member("dana"), "reason": None})
    ranks = {who: MembershipLifecycle(circle.member(who), turn_delay=4) for who in ("alice", "bob", "carol")}
    # In the turn order only one of the three organizers acts at once.
    at_once = [who for who, node in ranks.items() if node.tick(view(circle), now=0)]
    assert len(at_once) == 1
    remover = MembershipLifecycle(circle.member("alice"), turn_delay=4)
    assert remover.rotate_first(view(circle)) == [Rotate(circle.state.circle_id, "we removed someone")]
    # Nothing due, no current key held, or no longer a member: nothing to rotate.
    assert remover.rotate_first(view(circle, held=())) == []
    bob = MembershipLifecycle(circle.member("bob"), turn_delay=4)
    new = bytes([0x63]) * 16
    everyone = {circle.member(w): bytes(keys.SEALED_KEY_BYTES) for w in ("alice", "bob", "carol")}
    circle.act("alice", "key.rotate", {"epoch": new, "previous": FIRST_EPOCH, "sealed": everyone})
    assert not circle.state.info["rotation_due"]
    assert bob.rotate_first(view(circle, held=(FIRST_EPOCH, new))) == []
    circle.act("alice", "member.remove", {"member": circle.member("carol"), "reason": None})
    assert MembershipLifecycle(circle.member("carol")).rotate_first(view(circle, held=(new,))) == []
