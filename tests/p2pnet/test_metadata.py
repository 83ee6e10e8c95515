"""What a stranger with a socket learns about a member's circles (issue: metadata privacy).

The stranger is a real libp2p host with its own key and no circle keys. It knows a circle's
topic (from an old observation, say) and tries everything: it listens to the gossip
subscriptions announced to it, subscribes to the topic, GRAFTs it, asks for the messages
by id, and opens sync sessions with made-up proofs. Against a member and against a relay it
must learn 0 topics and receive 0 envelopes, while a real member, connected the same way,
gets everything: the control that shows each probe would have seen a leak.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
import trio
from p2pnet_harness import address, allow_on_relay, call, make_home, post_when_ready, running, share_circle, wait_until

from kith.identity.keys import NetworkKey
from kith.p2pnet.gossip import topic_name
from kith.p2pnet.netstack import NetStack, open_netstack
from kith.p2pnet.node import Node
from kith.p2pnet.syncproto import PROTOCOL, AcceptResult, SyncPeer, run_initiator
from kith.sync.envelope import Envelope
from kith.sync.reconcile import ItemIndex

pytestmark = pytest.mark.trio
LOOPBACK = ["/ip4/127.0.0.1/tcp/0"]


class Probe:
    """Everything the stranger saw."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.shared_topics: list[bytes] = []
        self.gossip_messages = 0

    async def accept(self, topic: bytes, envelopes: list[Envelope], peer: str) -> AcceptResult:
        self.envelopes.extend(envelopes)
        return AcceptResult(new=list(envelopes))


def _announced(stranger: NetStack, peer: str) -> list[str]:
    """The topics ``peer`` told the stranger it follows."""
    return [name for name, peers in stranger.pubsub.peer_topics.items() if any(p.to_base58() == peer for p in peers)]


async def _probe(stranger: NetStack, target: Node, topic: bytes, keys: list[bytes], probe: Probe) -> None:
    """One sync session with made-up proofs for ``topic``, and one with none at all."""
    for proof_keys in ({topic: keys}, {}):
        host = SyncPeer(
            stranger.peer_id,
            lambda pk=proof_keys: pk,  # type: ignore[misc]
            lambda t: ItemIndex([]),
            lambda ids: {},
            probe.accept,
        )
        stream = await stranger.open_stream(target.net.peer_id, PROTOCOL)  # type: ignore[union-attr]
        stats = await run_initiator(host, stream, target.net.peer_id)  # type: ignore[union-attr]
        assert stats.error is None, stats.error
        probe.shared_topics.extend(stats.shared_topics)


async def _listen(stranger: NetStack, name: str, probe: Probe) -> None:
    while True:
        await stranger.next_message(name)
        probe.gossip_messages += 1


async def _attack(stranger: NetStack, target: Node, topic: bytes, nursery: trio.Nursery, probe: Probe) -> None:
    peer = target.net.peer_id  # type: ignore[union-attr]
    name = topic_name(topic)
    await stranger.connect(address(target))
    await wait_until(lambda: any(p.to_base58() == peer for p in stranger.pubsub.peers))
    # Subscribe, say so to the target, and GRAFT the topic: a leaky node would now put the
    # stranger in its mesh and forward the circle's gossip to it.
    await stranger.subscribe(name)
    nursery.start_soon(_listen, stranger, name, probe)
    stranger.allow_gossip(peer, name)
    target_id = next(p for p in stranger.pubsub.peers if p.to_base58() == peer)
    await stranger.router.emit_graft(name, target_id)
    await _probe(stranger, target, topic, [secrets.token_bytes(32)], probe)


async def test_a_stranger_learns_no_topic_and_receives_no_envelope(tmp_path: Path) -> None:
    alice_home, bob_home = make_home(tmp_path, "alice"), make_home(tmp_path, "bob")
    relay_home = make_home(tmp_path, "relay", relay=True)
    with trio.fail_after(120):
        async with running(alice_home) as alice:
            circle = (await call(alice, "circle.create", name="Quiet circle"))["id"]
            token = (await call(alice, "circle.relay_token", circle=circle, label="riverside"))["token"]
            topic = alice.circles.get(circle).current_topic  # type: ignore[union-attr]
        allow_on_relay(relay_home, token)
        async with (
            running(alice_home) as alice,
            running(bob_home) as bob,
            running(relay_home, relay=True) as relay,
            open_netstack(NetworkKey.generate(), LOOPBACK) as stranger,
            trio.open_nursery() as nursery,
        ):
            # The stranger hears every gossip topic and every subscription anyone offers it.
            stranger.set_gossip_policy(lambda peer, name: True)
            await alice.connect(address(relay))
            await share_circle(alice, circle, bob)
            probes = {"member": Probe(), "relay": Probe()}
            await _attack(stranger, alice, topic, nursery, probes["member"])
            await _attack(stranger, relay, topic, nursery, probes["relay"])

            # The circle is busy: posts gossip to bob and reach the relay.
            for i in range(5):
                await post_when_ready(alice, circle, f"meeting notes {i}")
            await wait_until(lambda: len(bob.indexes[topic]) == len(alice.indexes[topic]))
            await wait_until(lambda: len(relay.indexes[topic]) == len(alice.indexes[topic]))
            # Control: bob proved the topic, so alice told him she follows it and gossips it to him.
            assert topic in bob.proved.get(alice.net.peer_id, set())  # type: ignore[union-attr]
            assert alice.gossip.stats.published_messages > 0  # type: ignore[union-attr]

            # Ask for alice's messages by id, with their real ids (an oracle: the attacker's
            # best case); a leaky node would answer an IWANT from anyone.
            alice_id = next(p for p in stranger.pubsub.peers if p.to_base58() == alice.net.peer_id)  # type: ignore[union-attr]
            await stranger.router.emit_iwant(list(alice.gossip._published), alice_id)  # type: ignore[union-attr]
            # Probe again now that there are envelopes to leak, then compare.
            for target, probe in ((alice, probes["member"]), (relay, probes["relay"])):
                await _probe(stranger, target, topic, [secrets.token_bytes(32)], probe)
            for target in (alice, relay):
                assert _announced(stranger, target.net.peer_id) == []  # type: ignore[union-attr]
                assert stranger.peer_id not in target.proved
            for probe in probes.values():
                assert probe.shared_topics == []
                assert probe.envelopes == []
                assert probe.gossip_messages == 0
            # Both refused the stranger's gossip-side advances without banning anyone honest.
            assert bob.net.peer_id in alice.net.connected_peers()  # type: ignore[union-attr]
            nursery.cancel_scope.cancel()


async def _circle_with_a_post(alice: Node, name: str) -> tuple[str, bytes, list[bytes]]:
    """A new circle with one post: its id, current topic and that topic's relay keys."""
    circle = (await call(alice, "circle.create", name=name))["id"]
    await post_when_ready(alice, circle, "hello")
    topic = alice.circles.get(circle).current_topic  # type: ignore[union-attr]
    return circle, topic, list(alice.gate.relay_keys[topic].values())


async def test_a_holder_of_the_key_passes_the_same_probe(tmp_path: Path) -> None:
    """The probe is not blind: with the circle's real relay key it is told the topic and served."""
    alice_home = make_home(tmp_path, "alice")
    with trio.fail_after(60):
        async with running(alice_home) as alice, open_netstack(NetworkKey.generate(), LOOPBACK) as prober:
            circle, topic, keys = await _circle_with_a_post(alice, "Open to key holders")
            await prober.connect(address(alice))
            probe = Probe()
            await _probe(prober, alice, topic, keys, probe)
            assert probe.shared_topics == [topic]
            assert len(probe.envelopes) == len(alice.indexes[topic])


async def test_an_old_key_proves_only_its_own_epoch_and_sees_nothing_said_after(tmp_path: Path) -> None:
    """A removed member or a dropped relay kept a relay key. After the next rotation the
    circle talks on a topic that key cannot name or prove: a sync with everything the holder
    has returns the old epoch's envelopes and none of what was said since."""
    alice_home = make_home(tmp_path, "alice")
    with trio.fail_after(60):
        async with running(alice_home) as alice, open_netstack(NetworkKey.generate(), LOOPBACK) as holder:
            circle, old_topic, old_keys = await _circle_with_a_post(alice, "Moving on")
            await call(alice, "rotate", circle=circle)
            after = {await post_when_ready(alice, circle, f"after the rotation {i}") for i in range(3)}
            new_topic = alice.circles.get(circle).current_topic  # type: ignore[union-attr]
            assert new_topic != old_topic and len(alice.indexes[new_topic]) >= len(after)
            await holder.connect(address(alice))
            probe = Probe()
            await _probe(holder, alice, old_topic, old_keys, probe)
            assert probe.shared_topics == [old_topic]  # the control: the old key still works there
            assert {e.id for e in probe.envelopes} == {i for _ts, i in alice.indexes[old_topic]}
            said_after = {i for _ts, i in alice.indexes[new_topic]}
            assert not {e.id for e in probe.envelopes} & said_after
            assert all(e.topic == old_topic for e in probe.envelopes)
