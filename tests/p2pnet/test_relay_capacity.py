"""A relay holds more members than py-libp2p's defaults allow (real hosts, loopback).

With py-libp2p's defaults a host admits 250 inbound connections (its swarm's 300 minus 50)
and closes the 251st before the handshake, silently; a relay for a few large circles (or 100
circles of 20) serves more members than that. limits.py sizes a relay's limits for
`RELAY_MAX_PEERS` and leaves a member's at the defaults.
"""

from __future__ import annotations

import resource
from contextlib import AsyncExitStack

import multiaddr
import pytest
import trio
from libp2p.peer.peerinfo import info_from_p2p_addr
from p2pnet_harness import wait_until

from kith.identity.keys import NetworkKey
from kith.p2pnet import netstack
from kith.p2pnet.limits import MEMBER_MAX_PEERS, RELAY_MAX_PEERS, peer_limits

MEMBERS = MEMBER_MAX_PEERS + 10
TOPIC = "kith/1/capacity-test"


@pytest.mark.slow
@pytest.mark.trio
async def test_a_relay_holds_more_members_than_libp2ps_default_and_still_serves_them() -> None:
    assert RELAY_MAX_PEERS > MEMBERS
    refused, held, heard = "", 0, b""
    # (Nothing is asserted inside the stack: py-libp2p's hosts, unwound by an exception after
    # a refused dial, corrupt trio's nursery stack and hide the message.)
    with trio.fail_after(300):
        async with AsyncExitStack() as stack:
            relay = await stack.enter_async_context(
                netstack.open_netstack(NetworkKey.generate(), ["/ip4/127.0.0.1/tcp/0"], hub=True)
            )
            relay.set_gossip_policy(lambda peer, topic: True)
            await relay.subscribe(TOPIC)
            where = f"{relay.listen_addresses()[0]}/p2p/{relay.peer_id}"
            info = info_from_p2p_addr(multiaddr.Multiaddr(where))
            # Bare libp2p hosts (a member's limits, no gossip) stand in for most members:
            # holding the connection is what is tested, and they are cheap.
            for n in range(MEMBERS):
                host = netstack._make_host(NetworkKey.generate(), [], peer_limits(relay=False))
                await stack.enter_async_context(host.run(listen_addrs=[]))
                try:
                    await host.connect(info)
                except Exception as exc:  # noqa: BLE001 - the refusal is what the test looks for
                    refused = f"member {n + 1} of {MEMBERS} refused: {netstack._why(exc)}"
                    break
            held = len(relay.host.get_network().get_connections())
            if not refused:
                heard = await _one_more_member_hears(stack, relay, where)
    assert not refused, refused
    assert held == MEMBERS
    assert heard == b"the food bank opens at nine"


async def _one_more_member_hears(stack: AsyncExitStack, relay: netstack.NetStack, where: str) -> bytes:
    """One more, a real member, still gets in and hears the relay's gossip."""
    member = await stack.enter_async_context(netstack.open_netstack(NetworkKey.generate(), ["/ip4/127.0.0.1/tcp/0"]))
    member.set_gossip_policy(lambda peer, topic: True)
    await member.subscribe(TOPIC)
    await member.connect(where)
    member.allow_gossip(relay.peer_id, TOPIC)
    relay.allow_gossip(member.peer_id, TOPIC)
    await wait_until(lambda: member.peer_id in relay.mesh_peers(TOPIC), timeout=60)
    await relay.publish(TOPIC, b"the food bank opens at nine")
    with trio.fail_after(30):
        return await member.next_message(TOPIC)


def test_a_member_keeps_libp2ps_defaults_and_a_relay_raises_its_open_file_limit() -> None:
    member = peer_limits(relay=False)
    assert member.max_peers == MEMBER_MAX_PEERS
    relay = peer_limits(relay=True)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft == resource.RLIM_INFINITY or soft >= min(hard, relay.max_peers)
    config = relay.connection_config()
    assert config.max_connections - config.min_connections >= relay.max_peers
    assert relay.resource_manager().connection_limits.max_established_per_peer is None
