"""A relay's gossip mesh holds every member that proved a topic (real libp2p hosts, loopback).

Members connect to their circle's relays and often to nobody else. With gossipsub's usual
mesh of 6-12 a relay of a larger circle pruned most of them every heartbeat, and a member
left out by every relay heard of a post only through IHAVE gossip or the next
reconciliation, seconds later (the soak's median). A relay is a hub: it keeps them all.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import pytest
import trio
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
