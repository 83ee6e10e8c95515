"""A circle's relay list (relay.add / relay.remove): who may change it, and what it may hold.

Attack first: each hostile op is signed as a modified client would (the honest client's
precheck would refuse it before signing), and the fold must refuse it with its reason and
leave the list as it was, while the circle goes on working.
"""

from __future__ import annotations

from typing import Any

import pytest
from circle_support import Circle

import kith.sync.invites as sync_invites
from kith.identity.keys import MemberIdentity
from kith.sync.envelope import Envelope, epoch_id
from kith.sync.invites import MAX_ADDRESSES, InviteCode, circle_check, open_welcome, seal_welcome
from kith.sync.kinds.keys import MAX_RELAYS, RELAYS_FULL, relay_address_problem
from kith.sync.precheck import Refused, check_action

PEER = "12D3KooWBhA7J2B7q1FQzSvVMfu9ojN7yo8TGxUEp7pZYfCFe6wm"
RELAY = f"/dns4/relay.example.org/tcp/4747/p2p/{PEER}"


def relay(n: int) -> str:
    return f"/ip4/203.0.113.{n}/tcp/4747/p2p/{PEER}"


def forge(circle: Circle, who: str, kind: str, body: dict[str, Any]) -> str | None:
    """Sign as a modified client would (no precheck) and return the fold's verdict."""
    signed = circle.sign(who, kind, body)
    circle.replica.ingest(signed)
    return circle.reason(signed)


def test_an_organizer_adds_and_removes_relays_members_read(circle: Circle) -> None:
    added = circle.act("alice", "relay.add", {"address": RELAY})
    assert circle.reason(added) is None and circle.state.relays == {RELAY: added.id}
    removed = circle.act("alice", "relay.remove", {"address": RELAY})
    assert circle.reason(removed) is None and circle.state.relays == {}


def test_a_member_who_is_not_an_organizer_cannot_add_or_remove_a_relay(circle: Circle) -> None:
    circle.act("alice", "relay.add", {"address": RELAY})
    # The honest client refuses before signing, with what to do.
    with pytest.raises(Refused, match="only an organizer may change the circle's relays"):
        check_action(circle.state, circle.member("carol"), "relay.add", {"address": relay(9)})
    # A modified client signs anyway: the fold refuses both, and the list is unchanged.
    assert forge(circle, "carol", "relay.add", {"address": relay(9)}) == "only an organizer may do this"
    assert forge(circle, "bob", "relay.remove", {"address": RELAY}) == "only an organizer may do this"
    assert list(circle.state.relays) == [RELAY]
    assert circle.reason(circle.post("carol", "still here")) is None  # the circle goes on


@pytest.mark.parametrize(
    "junk",
    [
        "/ip4/0.0.0.0/tcp/4747/p2p/" + PEER,  # means "this machine" to every member
        "/ip6/::/tcp/4747/p2p/" + PEER,
        "/ip4/203.0.113.5/tcp/4747",  # no peer id: nobody can check whom they reached
        "/ip4/203.0.113.5/tcp/70000/p2p/" + PEER,
        "/ip4/203.0.113.5/udp/4747/p2p/" + PEER,
        "/ip4/203.0.113.5/tcp/4747/p2p/" + PEER + "/p2p-circuit",
        "/unix/tmp/x/p2p/" + PEER,
        "http://relay.example.org/p2p/" + PEER,
        "/ip4/203.0.113.5/tcp/4747/p2p/not-a-peer-id",
        "/dns4/relay example.org/tcp/4747/p2p/" + PEER,
        "/ip4/203.0.113.5/tcp/4747/p2p/" + PEER + "\n",
        "/dns4/" + "a" * 300 + "/tcp/1/p2p/" + PEER,
    ],
)
def test_junk_addresses_are_refused_by_the_client_and_by_the_fold(circle: Circle, junk: str) -> None:
    assert relay_address_problem(junk) is not None
    with pytest.raises(Refused, match="not a relay address members can dial"):
        check_action(circle.state, circle.member("alice"), "relay.add", {"address": junk})
    reason = forge(circle, "alice", "relay.add", {"address": junk})
    assert reason is not None and reason.startswith("invalid body: address"), reason
    assert circle.state.relays == {}


@pytest.mark.parametrize("body", [{}, {"address": 7}, {"address": RELAY, "extra": 1}, {"address": [RELAY]}])
def test_malformed_bodies_are_refused(circle: Circle, body: dict[str, Any]) -> None:
    reason = forge(circle, "alice", "relay.add", body)
    assert reason is not None and reason.startswith("invalid body"), reason
    assert circle.state.relays == {}


def test_a_circle_lists_at_most_max_relays(circle: Circle) -> None:
    for n in range(MAX_RELAYS):
        circle.act("alice", "relay.add", {"address": relay(n + 1)})
    with pytest.raises(Refused, match="remove one first"):
        check_action(circle.state, circle.member("alice"), "relay.add", {"address": relay(99)})
    # An organizer's modified client that floods the list: every extra one is refused.
    for n in range(50):
        assert forge(circle, "alice", "relay.add", {"address": relay(100 + n)}) == RELAYS_FULL
    assert len(circle.state.relays) == MAX_RELAYS
    circle.act("alice", "relay.remove", {"address": relay(1)})
    assert circle.reason(circle.act("alice", "relay.add", {"address": relay(99)})) is None


def test_adding_a_listed_relay_or_removing_an_unlisted_one_is_refused(circle: Circle) -> None:
    circle.act("alice", "relay.add", {"address": RELAY})
    with pytest.raises(Refused, match="already lists"):
        check_action(circle.state, circle.member("alice"), "relay.add", {"address": RELAY})
    with pytest.raises(Refused, match="does not list"):
        check_action(circle.state, circle.member("alice"), "relay.remove", {"address": relay(3)})
    assert forge(circle, "alice", "relay.add", {"address": RELAY}) == "that relay is already listed"
    assert forge(circle, "alice", "relay.remove", {"address": relay(3)}) == "that relay is not listed"


def test_a_welcome_from_a_modified_client_cannot_hand_over_junk_or_a_huge_relay_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    newcomer = MemberIdentity("Robin", bytes([5]) * 32, bytes([6]) * 32, 0)
    approver = MemberIdentity("Alex", bytes([15]) * 32, bytes([16]) * 32, 0)
    circle_id, secret, request, key = bytes([3]) * 16, bytes([9]) * 32, bytes([17]) * 16, bytes([4]) * 32
    epoch = epoch_id(key)
    junk = ["/ip4/0.0.0.0/tcp/4747/p2p/" + PEER, "http://evil.example/", "/ip4/203.0.113.9/tcp/22"]
    offered = junk + [relay(n) for n in range(1, 600)]  # as many as an envelope holds
    monkeypatch.setattr(sync_invites, "MAX_ADDRESSES", 10_000)  # the modified client seals them all
    welcome = seal_welcome(
        newcomer.card(), approver=approver, request=request, circle=circle_id, name="Night owls",
        epochs={epoch: key}, contents={epoch: bytes([11]) * 32}, current=epoch, relays=offered,
        secret=secret, ts=5,
    )  # fmt: skip
    monkeypatch.undo()
    code = InviteCode(secret, circle_check(circle_id, secret), (), None)
    opened = open_welcome(Envelope.decode(welcome.data), newcomer, request, code)
    assert opened.relays == tuple(relay(n) for n in range(1, MAX_ADDRESSES + 1))
