"""A relay's gossip mesh holds every member that proved a topic (real libp2p hosts, loopback).

Members connect to their circle's relays and often to nobody else. With gossipsub's usual
mesh of 6-12 a relay of a larger circle pruned most of them every heartbeat, and a member
left out by every relay heard of a post only through IHAVE gossip or the next
reconciliation, seconds later (the soak's median). A relay is a hub: it keeps them all.
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import AsyncExitStack
from typing import Any

import pytest
import trio
from libp2p.peer.id import ID
from p2pnet_harness import wait_until

from kith.identity.keys import NetworkKey
from kith.p2pnet.netstack import NetStack, open_netstack

pytestmark = pytest.mark.trio

SPOKES = 15  # more than gossipsub's usual degree_high of 12
TOPIC = "kith/1/hub-test"


def _everyone_proved(stack: NetStack) -> None:
    stack.set_gossip_policy(lambda peer, topic: True)


def _heartbeats(stack: NetStack) -> list[int]:
    """A counter of the router's mesh maintenance rounds (where it grafts and prunes)."""
    count = [0]
    maintain = stack.router.mesh_heartbeat

    def counted() -> Any:
        count[0] += 1
        return maintain()

    stack.router.mesh_heartbeat = counted  # type: ignore[method-assign]
    return count


async def _after_heartbeats(count: list[int], rounds: int = 3) -> None:
    start = count[0]
    await wait_until(lambda: count[0] >= start + rounds, timeout=30)


async def _star(stack: AsyncExitStack, *, hub: bool) -> tuple[NetStack, list[NetStack]]:
    center = await stack.enter_async_context(open_netstack(NetworkKey.generate(), ["/ip4/127.0.0.1/tcp/0"], hub=hub))
    spokes = [
        await stack.enter_async_context(open_netstack(NetworkKey.generate(), ["/ip4/127.0.0.1/tcp/0"]))
        for _ in range(SPOKES)
    ]
    for node in (center, *spokes):
        _everyone_proved(node)
        await node.subscribe(TOPIC)
    where = f"{center.listen_addresses()[0]}/p2p/{center.peer_id}"
    for spoke in spokes:
        await spoke.connect(where)
        spoke.allow_gossip(center.peer_id, TOPIC)
        center.allow_gossip(spoke.peer_id, TOPIC)
    return center, spokes


async def test_a_relay_keeps_every_proved_member_in_its_mesh_and_forwards_to_all() -> None:
    with trio.fail_after(90):
        async with AsyncExitStack() as stack:
            relay, members = await _star(stack, hub=True)
            heartbeats = _heartbeats(relay)
            everyone = {m.peer_id for m in members}
            await wait_until(lambda: set(relay.mesh_peers(TOPIC)) == everyone, timeout=30)
            # Heartbeats come and go and nobody is pruned.
            await _after_heartbeats(heartbeats)
            assert set(relay.mesh_peers(TOPIC)) == everyone
            # A post from one member reaches every other through the relay's mesh.
            await members[0].publish(TOPIC, b"rent is due on friday")
            for member in members[1:]:
                with trio.fail_after(20):
                    assert await member.next_message(TOPIC) == b"rent is due on friday"


async def test_a_member_keeps_gossipsubs_usual_mesh() -> None:
    """The same star around a member node: its mesh stays within gossipsub's bounds (what
    the relay's used to be), so the test above is about the hub setting."""
    with trio.fail_after(90):
        async with AsyncExitStack() as stack:
            center, _members = await _star(stack, hub=False)
            heartbeats = _heartbeats(center)
            await wait_until(lambda: len(center.mesh_peers(TOPIC)) >= 4, timeout=30)
            await _after_heartbeats(heartbeats)
            assert len(center.mesh_peers(TOPIC)) <= 12


def _freeze_heartbeat(stack: NetStack) -> None:
    """No more grafts, prunes or IHAVE gossip from this router: what it sends is only what it
    decides per message."""
    router = stack.router
    router.mesh_heartbeat = lambda: (defaultdict(list), defaultdict(list))  # type: ignore[method-assign]
    router.gossip_heartbeat = lambda: defaultdict(dict)  # type: ignore[method-assign]


async def test_a_relay_forwards_to_a_member_that_follows_the_topic_but_is_not_in_its_mesh_yet() -> None:
    """A member joins a relay's mesh at the relay's next heartbeat after it subscribed; a post
    in between reached it only by IHAVE gossip a heartbeat later (or reconciliation): after a
    partition healed, posts to members who had just reconnected came 1-2 s late."""
    with trio.fail_after(90):
        async with AsyncExitStack() as stack:
            relay, members = await _star(stack, hub=True)
            await wait_until(lambda: len(relay.mesh_peers(TOPIC)) == SPOKES, timeout=30)
            late = members[-1]
            await wait_until(
                lambda: ID.from_base58(late.peer_id) in relay.pubsub.peer_topics.get(TOPIC, ()), timeout=30
            )
            _freeze_heartbeat(relay)
            relay.router.mesh[TOPIC].discard(ID.from_base58(late.peer_id))  # subscribed, not grafted yet
            await members[0].publish(TOPIC, b"can someone drive me on tuesday")
            with trio.fail_after(20):
                assert await late.next_message(TOPIC) == b"can someone drive me on tuesday"


async def test_a_members_own_post_goes_to_every_peer_following_the_topic_but_it_forwards_only_to_its_mesh() -> None:
    with trio.fail_after(90):
        async with AsyncExitStack() as stack:
            member, peers = await _star(stack, hub=False)
            everyone = {ID.from_base58(p.peer_id) for p in peers}
            await wait_until(lambda: member.pubsub.peer_topics.get(TOPIC, set()) >= everyone, timeout=30)
            _freeze_heartbeat(member)
            member.router.mesh[TOPIC].clear()  # nobody grafted yet (a reconnect a moment ago)
            router, me = member.router, ID.from_base58(member.peer_id)
            assert set(router._get_peers_to_send([TOPIC], me, ID(b""))) == everyone
            # Someone else's message is forwarded to the mesh only (here: nobody).
            forwarder = ID.from_base58(peers[0].peer_id)
            assert set(router._get_peers_to_send([TOPIC], forwarder, ID(b""))) == set()
            # A peer that has not proved the topic gets nothing, even of our own posts.
            refused = peers[1].peer_id
            member.set_gossip_policy(lambda peer, topic: peer != refused)
            assert ID.from_base58(refused) not in set(router._get_peers_to_send([TOPIC], me, ID(b"")))
            member.set_gossip_policy(lambda peer, topic: True)
            await member.publish(TOPIC, b"food bank is open late tonight")
            for peer in peers:
                with trio.fail_after(20):
                    assert await peer.next_message(TOPIC) == b"food bank is open late tonight"
