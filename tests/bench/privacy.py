"""Privacy figures: what a stranger learns by probing, and what junk a revoked code stores.

``topic_probe_leaks``: circles a stranger with no keys is told or served, after trying every
probe against a member and a relay (gossip subscriptions announced to it, subscribing to and
GRAFTing a circle's topic it knows from elsewhere, sync sessions with made-up proofs);
``topic_probe_envelopes``: envelopes it received doing so. Both must be 0.

``junk_stored_bytes``: bytes a member stores while the holder of a revoked invite code
floods it for 30 s (sync sessions offering join-shaped junk on the invite's topic,
authenticated with the code's capability, and gossip on that topic). Must be 0.
"""

from __future__ import annotations

import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import Figures, register

FLOOD_S = 30.0


@register("topic_probe_leaks", "topic_probe_envelopes", "junk_stored_bytes")
def bench_privacy() -> Figures:
    import trio

    from kith.identity.crypto import random_bytes
    from kith.identity.keys import MemberIdentity, NetworkKey
    from kith.identity.keystore import TEST_KDF, KeystoreData
    from kith.p2pnet.api import allow_relay_topic, build_methods
    from kith.p2pnet.config import NodeConfig
    from kith.p2pnet.gossip import encode_batch, topic_name
    from kith.p2pnet.home import Home
    from kith.p2pnet.keyfile import Keystore
    from kith.p2pnet.netstack import NetStack, open_netstack
    from kith.p2pnet.node import Node
    from kith.p2pnet.syncproto import PROTOCOL, AcceptResult, SyncPeer, run_initiator
    from kith.sync.envelope import Envelope, Kind, hint_key, hinted_nonce
    from kith.sync.invites import InviteCode
    from kith.sync.reconcile import ItemIndex
    from kith.sync.relaytoken import RelayToken

    figures: Figures = {}
    config = NodeConfig(listen=["/ip4/127.0.0.1/tcp/0"], sync_interval_s=2.0, redial_interval_s=0.5)

    def home(root: Path, name: str, *, relay: bool = False) -> tuple[Home, Keystore]:
        place = Home(root / name)
        place.ensure()
        identity = None if relay else MemberIdentity.generate(name, now=int(time.time()))
        return place, Keystore.create(place.keystore, "bench passphrase", KeystoreData.generate(identity), TEST_KDF)

    def stored(node: Node) -> int:
        assert node.store is not None
        return sum(node.store.bytes_in_topic(topic) for topic in node.store.topics())

    seen: dict[str, Any] = {"topics": set(), "envelopes": 0}

    async def accept(topic: bytes, envelopes: list[Envelope], peer: str) -> AcceptResult:
        seen["envelopes"] += len(envelopes)
        return AcceptResult()

    async def session(me: NetStack, target: Node, keys: dict[bytes, list[bytes]], items: list[Envelope]) -> int:
        by_id = {e.id: e.data for e in items}
        host = SyncPeer(
            me.peer_id, lambda: keys, lambda t: ItemIndex([(e.ts, e.id) for e in items]),
            lambda ids: {i: by_id[i] for i in ids if i in by_id}, accept,
        )  # fmt: skip
        assert target.net is not None
        try:
            stream = await me.open_stream(target.net.peer_id, PROTOCOL)
        except Exception:  # noqa: BLE001 - refused (banned): nothing gets through either way
            return 0
        stats = await run_initiator(host, stream, target.net.peer_id)
        seen["topics"].update(stats.shared_topics)
        return len(stats.shared_topics)

    async def listen(me: NetStack, name: str) -> None:
        while True:
            await me.next_message(name)
            seen["envelopes"] += 1

    async def main(root: Path) -> None:
        alice_home, alice_keys = home(root, "alice")
        relay_home, relay_keys = home(root, "relay", relay=True)
        alice = Node(alice_home, alice_keys, config)
        async with trio.open_nursery() as nursery:
            await nursery.start(alice.run)
            a = build_methods(alice)
            circle = (await a["circle.create"]({"name": "Probed"}))["id"]
            token = (await a["circle.relay_token"]({"circle": circle}))["token"]
            allow_relay_topic(relay_keys.data.extra, RelayToken.decode(token))
            relay_keys.save()
            relay = Node(relay_home, relay_keys, config, relay=True)
            await nursery.start(relay.run)
            assert alice.net is not None and relay.net is not None and alice.circles is not None
            await alice.connect(relay.net.listen_addresses()[0])
            topic = alice.circles.get(circle).current_topic
            for i in range(20):
                await a["post"]({"circle": circle, "text": f"notes {i}"})
            async with open_netstack(NetworkKey.generate(), config.listen) as stranger, trio.open_nursery() as probe:
                stranger.set_gossip_policy(lambda peer, name: True)
                await stranger.subscribe(topic_name(topic))
                probe.start_soon(listen, stranger, topic_name(topic))
                for target in (alice, relay):
                    assert target.net is not None
                    await stranger.connect(target.net.listen_addresses()[0])
                    with trio.fail_after(10):
                        while not any(p.to_base58() == target.net.peer_id for p in stranger.pubsub.peers):
                            await trio.sleep(0.05)
                    peer = next(p for p in stranger.pubsub.peers if p.to_base58() == target.net.peer_id)
                    stranger.allow_gossip(target.net.peer_id, topic_name(topic))
                    await stranger.router.emit_graft(topic_name(topic), peer)
                    for keys in ({topic: [secrets.token_bytes(32)]}, {}):
                        await session(stranger, target, keys, [])
                for i in range(20):
                    await a["post"]({"circle": circle, "text": f"more notes {i}"})
                with trio.fail_after(30):
                    while len(relay.indexes.get(topic, ())) < len(alice.indexes[topic]):
                        await trio.sleep(0.05)
                for name, peers in stranger.pubsub.peer_topics.items():
                    if any(p.to_base58() in (alice.net.peer_id, relay.net.peer_id) for p in peers):
                        seen["topics"].add(name)
                figures["topic_probe_leaks"] = len(seen["topics"])
                figures["topic_probe_envelopes"] = seen["envelopes"]
                probe.cancel_scope.cancel()

            # A code handed out, then revoked; its holder floods alice for FLOOD_S seconds.
            code = InviteCode.decode((await a["invite.create"]({"circle": circle}))["code"])
            await a["invite.revoke"]({"circle": circle, "invite": code.invite_id.hex()})
            with trio.fail_after(30):
                while alice.gate.serves(code.topic):
                    await trio.sleep(0.05)
            async with open_netstack(NetworkKey.generate(), config.listen) as holder:
                holder.set_gossip_policy(lambda peer, name: True)
                await holder.connect(alice.net.listen_addresses()[0])
                before = stored(alice)
                deadline = time.monotonic() + FLOOD_S
                while time.monotonic() < deadline:
                    junk = [
                        Envelope.build(
                            code.topic,
                            code.epoch,
                            int(time.time()) + i,
                            hinted_nonce(hint_key(code.secret, Kind.JOIN), random_bytes),
                            secrets.token_bytes(3000),
                            relay_key=code.mac_key,
                        )  # fmt: skip
                        for i in range(50)
                    ]
                    await session(holder, alice, {code.topic: [code.mac_key]}, junk)
                    try:
                        await holder.publish(topic_name(code.topic), encode_batch([e.data for e in junk[:20]]))
                    except Exception:  # noqa: BLE001, S110 - no route: the flood simply goes nowhere
                        pass
                    await trio.sleep(0.05)
                figures["junk_stored_bytes"] = stored(alice) - before
            alice.stop()
            relay.stop()

    with tempfile.TemporaryDirectory(prefix="kith-bench-") as tmp:
        trio.run(main, Path(tmp))
    return figures
