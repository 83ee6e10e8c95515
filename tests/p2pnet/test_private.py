"""Private requests and check-ins: organizers learn who asked and why; the circle does not."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import trio
from p2pnet_harness import (
    address,
    allow_on_relay,
    call,
    make_home,
    running,
    share_circle,
    state_hash,
    wait_until,
)

from kith.identity.errors import RemoteProtocolError
from kith.sync.envelope import Envelope

pytestmark = pytest.mark.trio


async def test_a_private_request_shows_only_that_it_exists(tmp_path: Path) -> None:
    homes = [make_home(tmp_path, n) for n in ("alice", "bob", "carol")]
    with trio.fail_after(90):
        async with AsyncExitStack() as stack:
            alice, bob, carol = nodes = [await stack.enter_async_context(running(h)) for h in homes]
            circle = (await call(alice, "circle.create", name="Quiet help"))["id"]
            await share_circle(alice, circle, bob, carol)
            await wait_until(lambda: len({state_hash(n, circle) for n in nodes}) == 1)
            why = "I was evicted and need two nights somewhere safe"
            sent = await call(carol, "request", circle=circle, category="housing", description=why, private=True)
            assert sent["private"] and sent["id"] is None

            def board(node):  # type: ignore[no-untyped-def]
                return [r for r in node.circles.get(circle).replica.views(
                    reader=node.circles.reader(node.circles.get(circle))).aid.open_requests]  # fmt: skip

            await wait_until(lambda: all(board(n) for n in nodes), timeout=30)
            carol_id = carol.circles.identity.member_id
            (on_alice,), (on_bob,), (on_carol,) = board(alice), board(bob), board(carol)
            assert on_alice.description == why and on_alice.requester == carol_id
            assert on_bob.category == "housing" and on_bob.description == "" and on_bob.requester is None
            assert on_bob.author == alice.circles.identity.member_id  # posted by an organizer, not by carol
            assert on_carol.description == why
            # Nothing in bob's or the relays' bytes names carol as the one who asked.
            for envelope_data in bob.store.iter_topic(bob.circles.get(circle).current_topic):
                assert why.encode() not in envelope_data
            # Exactly one organizer posted it: once bob has reconciled with every peer he has
            # (a barrier, not a pause), he holds everything they hold.
            assert alice.net.peer_id in bob.peers
            for peer in list(bob.peers):
                assert not (await bob.sync_now(peer)).error
            assert len(board(bob)) == 1


async def test_a_private_check_in_reaches_organizers_only(tmp_path: Path) -> None:
    homes = [make_home(tmp_path, n) for n in ("alice", "bob", "carol")]
    with trio.fail_after(90):
        async with AsyncExitStack() as stack:
            alice, bob, carol = nodes = [await stack.enter_async_context(running(h)) for h in homes]
            circle = (await call(alice, "circle.create", name="Check-ins"))["id"]
            await share_circle(alice, circle, bob, carol)
            await wait_until(lambda: len({state_hash(n, circle) for n in nodes}) == 1)
            before = state_hash(alice, circle)
            await call(carol, "checkin", circle=circle, status="need-help", note="please call me", private=True)
            await wait_until(lambda: bool(alice.lifecycle.private_checkins.get(alice.circles.get(circle).id)))
            (note,) = (await call(alice, "views", circle=circle))["private_checkins"]
            assert (note["member"], note["status"], note["note"]) == (
                carol.circles.identity.member_id.hex(),
                "need-help",
                "please call me",
            )
            assert alice.net.peer_id in bob.peers
            for peer in list(bob.peers):  # a barrier: bob now holds all that his peers hold
                assert not (await bob.sync_now(peer)).error
            assert (await call(bob, "views", circle=circle))["private_checkins"] == []
            assert state_hash(alice, circle) == before  # no op: the circle's record does not change


async def test_a_member_who_records_everything_cannot_tell_who_asked(tmp_path: Path) -> None:
    """bob records everything his node receives while carol asks privately for rent money
    and checks in privately: every gossip message (its origin fields), every sender, every
    envelope. Members reach each other through a relay (and the inviter, whose address the
    code carried). Nothing he holds points at carol: messages name no origin, none came from
    her node, the envelopes do not open for him, the placeholder is alice's and its
    reference matches nothing he holds, and the request and the check-in are the same size.
    (A member directly connected to the requester could still time what arrives first from
    her node: README, "What is not done yet".)"""
    from kith.sync.private import open_private

    alice_home, bob_home, carol_home = (make_home(tmp_path, n) for n in ("alice", "bob", "carol"))
    relay_home = make_home(tmp_path, "relay", relay=True)
    with trio.fail_after(120):
        async with running(alice_home) as alice:
            circle = (await call(alice, "circle.create", name="Rent help"))["id"]
            token = (await call(alice, "circle.relay_token", circle=circle))["token"]
        allow_on_relay(relay_home, token)
        async with AsyncExitStack() as stack:
            relay = await stack.enter_async_context(running(relay_home, relay=True))
            homes = (alice_home, bob_home, carol_home)
            alice, bob, carol = [await stack.enter_async_context(running(h)) for h in homes]
            await alice.connect(address(relay))
            code = (await call(alice, "invite.create", circle=circle, uses=2))["code"]
            await call(alice, "sync")
            await wait_until(lambda: len(relay.relay_invites) == 1)
            for member in (bob, carol):
                await member.connect(address(relay))
                await call(member, "join", code=code)
            nodes = (alice, bob, carol)
            await wait_until(lambda: all(_member_of(n, circle) for n in nodes), timeout=60)
            await wait_until(lambda: len({state_hash(n, circle) for n in nodes}) == 1, timeout=60)

            # bob's recorder: every gossip message's origin fields, every sender of anything.
            origins: list[tuple[bytes, bytes, bytes, bytes]] = []
            senders: set[str] = set()
            pubsub = bob.net.pubsub  # type: ignore[union-attr]
            validate = pubsub.validate_msg

            async def spy_gossip(forwarder, msg):  # type: ignore[no-untyped-def]
                origins.append((msg.from_id, msg.seqno, msg.signature, msg.key))
                return await validate(forwarder, msg)

            pubsub.validate_msg = spy_gossip
            accept = bob.accept

            async def spy_accept(topic, envelopes, source, **kw):  # type: ignore[no-untyped-def]
                senders.add(source)
                return await accept(topic, envelopes, source, **kw)

            bob.accept = spy_accept  # type: ignore[method-assign]
            bob.runtime.sync_host.accept = spy_accept

            why = "Short on rent this month: 300 EUR would save us"
            sent = await call(carol, "request", circle=circle, category="money", description=why, private=True)
            checked = await call(carol, "checkin", circle=circle, status="need-help", note="call me", private=True)
            topic = bob.circles.get(circle).current_topic  # type: ignore[union-attr]

            def placeholder():  # type: ignore[no-untyped-def]
                state = bob.circles.get(circle).replica.state  # type: ignore[union-attr]
                return next((item for item in state.aid.values() if item.private), None)

            await wait_until(lambda: placeholder() is not None, timeout=60)
            request_id, checkin_id = bytes.fromhex(sent["private"]), bytes.fromhex(checked["private"])
            await wait_until(lambda: {request_id, checkin_id} <= {i for _t, i in bob.indexes[topic]}, timeout=30)
            held = {item_id for _ts, item_id in bob.indexes[topic]}

            # bob talks to the relay and to the inviter whose address the code carried (either may
            # bring him everything first); never to carol.
            assert senders and carol.net.peer_id not in senders, senders  # type: ignore[union-attr]
            assert senders <= {relay.net.peer_id, alice.net.peer_id, "self"}, senders  # type: ignore[union-attr]
            assert origins and all(fields == (b"", b"", b"", b"") for fields in origins)
            # The sealed envelopes do not open for bob, and are one size: which is which is hidden too.
            stored = {i: Envelope.decode(d) for i, d in bob.store.get_many([request_id, checkin_id]).items()}  # type: ignore[union-attr]
            for envelope in stored.values():
                with pytest.raises(RemoteProtocolError):
                    open_private(envelope, bob.circles.identity)  # type: ignore[union-attr]
            assert len(stored[request_id].data) == len(stored[checkin_id].data)
            # The circle's placeholder is alice's, and its reference is nothing bob holds.
            item = placeholder()
            assert item.author == alice.circles.identity.member_id  # type: ignore[union-attr]
            assert item.private["ref"] not in held
            assert bob.lifecycle.open_private_item(item.private) is None  # type: ignore[union-attr]
            carol_id = carol.circles.identity.member_id  # type: ignore[union-attr]
            assert all(carol_id not in data for data in bob.store.iter_topic(topic))  # type: ignore[union-attr]


def _member_of(node, circle_id: str) -> bool:  # type: ignore[no-untyped-def]
    try:
        circle = node.circles.get(circle_id)
    except Exception:  # noqa: BLE001 - not there yet
        return False
    return node.circles.identity.member_id in circle.replica.state.members
