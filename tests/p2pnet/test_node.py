"""Real member and relay nodes on loopback: delivery, reconciliation, relays, hostile peers."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
import trio
from p2pnet_harness import (
    address,
    allow_on_relay,
    call,
    make_home,
    post_when_ready,
    running,
    share_circle,
    state_hash,
    wait_until,
)

from kith.identity.errors import UsageError
from kith.p2pnet.node import MISSING_PARENT_GRACE_S, REGOSSIP_BURST, Node
from kith.p2pnet.ratelimit import TokenBucket
from kith.sync.envelope import Envelope
from kith.sync.kinds.keys import invite_id

pytestmark = pytest.mark.trio


async def test_gossip_and_sync_between_two_members(tmp_path: Path) -> None:
    alice_home, bob_home = make_home(tmp_path, "alice"), make_home(tmp_path, "bob")
    with trio.fail_after(60):
        async with running(alice_home) as alice, running(bob_home) as bob:
            circle = (await call(alice, "circle.create", name="Riverside"))["id"]
            for i in range(20):
                await call(alice, "post", circle=circle, text=f"before bob connects {i}")
            await share_circle(alice, circle, bob)
            await bob.connect(address(alice))
            await wait_until(lambda: state_hash(bob, circle) == state_hash(alice, circle))
            # Live: a new post reaches bob without an explicit sync.
            result = await call(alice, "post", circle=circle, text="are you all ok?", urgent=True)
            views = lambda: bob.circles.get(circle).replica.views()  # noqa: E731
            await wait_until(lambda: any(item.id.hex() == result["id"] for item in views().feed))
            reply = await call(bob, "post", circle=circle, text="I am here", reply_to=result["id"])
            assert reply["rejected"] is None
            await wait_until(lambda: state_hash(bob, circle) == state_hash(alice, circle))
            status = await call(alice, "status")
            assert status["peers"] and status["circles"][0]["ops"] >= 23
            # Each peer's count is what that peer gave us, not what the last sync found new
            # (which is 0 once in step): bob got alice's 21 posts from her, alice bob's reply.
            (from_alice,) = (await call(bob, "status"))["peers"]
            assert 21 <= from_alice["received"] <= bob.stats.accepted
            assert from_alice["connections"] == 1 and isinstance(from_alice["syncing"], bool)
            assert 1 <= status["peers"][0]["received"] <= alice.stats.accepted


async def test_offline_member_catches_up_from_a_relay_that_cannot_read(tmp_path: Path) -> None:
    alice_home, bob_home = make_home(tmp_path, "alice"), make_home(tmp_path, "bob")
    relay_home = make_home(tmp_path, "relay", relay=True)
    with trio.fail_after(90):
        async with running(alice_home) as alice, running(bob_home) as bob:
            circle = (await call(alice, "circle.create", name="Mutual aid"))["id"]
            await share_circle(alice, circle, bob)
            token = (await call(alice, "circle.relay_token", circle=circle, label="riverside"))["token"]
        allow_on_relay(relay_home, token)
        async with running(relay_home, relay=True) as relay:
            async with running(alice_home) as alice:
                await alice.connect(address(relay))
                for i in range(50):
                    await call(alice, "post", circle=circle, text=f"while bob is away {i}")
                await call(alice, "request", circle=circle, category="housing", description="a bed for two nights")
                await call(alice, "sync")
                # Everything alice holds (bob may hold one more op: his key.ack, if alice had
                # stopped before it reached her, so compare ops, not state hashes).
                expected = {op.id for op in alice.circles.get(circle).replica.ops()}
                topic = alice.circles.get(circle).current_topic
                await wait_until(lambda: len(relay.indexes[topic]) == len(alice.indexes[topic]))
            # Alice is gone. Bob only ever talks to the relay.
            async with running(bob_home) as bob:
                await bob.connect(address(relay))
                replica = bob.circles.get(circle).replica
                await wait_until(lambda: all(replica.has(op_id) for op_id in expected))
            # The relay stored ciphertext only.
            for path in relay_home.root.iterdir():
                if path.is_file():
                    assert b"while bob is away" not in path.read_bytes()
                    assert b"a bed for two nights" not in path.read_bytes()


async def test_relay_refuses_topics_and_forgeries_it_was_not_given(tmp_path: Path) -> None:
    alice_home = make_home(tmp_path, "alice")
    relay_home = make_home(tmp_path, "relay", relay=True)
    with trio.fail_after(60):
        async with running(relay_home, relay=True) as relay, running(alice_home) as alice:
            circle = (await call(alice, "circle.create", name="Not on this relay"))["id"]
            await alice.connect(address(relay))
            for i in range(5):
                await call(alice, "post", circle=circle, text=f"secret {i}")
            result = await call(alice, "sync")
            assert all(r["error"] is None for r in result["synced"])
            assert relay.store.count() == 0


async def test_the_peer_table_follows_the_host_and_blocks_hold(tmp_path: Path) -> None:
    """A connection event can be missed (two connections to one peer, one closing) or a
    connection can outlive a block (a dial in flight): once a second the node makes its
    peer table match the host's connections and drops blocked peers again."""
    from kith.p2pnet.netstack import NetError
    from kith.p2pnet.node import PeerState

    with trio.fail_after(60):
        async with running(make_home(tmp_path, "alice")) as alice, running(make_home(tmp_path, "bob")) as bob:
            await bob.connect(address(alice))
            bob_id = bob.net.peer_id
            await wait_until(lambda: bob_id in alice.peers)
            del alice.peers[bob_id]  # as if the event was lost
            alice.peers["12D3KooWGhostPeerThatIsNotConnected"] = PeerState("12D3KooWGhostPeerThatIsNotConnected", 0.0)
            await wait_until(lambda: bob_id in alice.peers and "12D3KooWGhostPeerThatIsNotConnected" not in alice.peers)
            alice.guard.block(bob_id, 60)  # a block whose disconnect never happened
            await wait_until(lambda: bob_id not in alice.net.connected_peers() and bob_id not in alice.peers)
            with contextlib.suppress(NetError):  # bob's side ignores the block: alice drops it again
                await bob.net.connect(address(alice))
            # Alice's side drops it (its once-a-second check), and bob sees the link go. (Bob's
            # side may settle first: a dial alice's host accepted is only dropped by that check.)
            await wait_until(lambda: bob_id not in alice.net.connected_peers() and bob_id not in alice.peers)
            await wait_until(lambda: alice.net.peer_id not in bob.net.connected_peers())


async def test_reconciliation_never_dials_so_a_block_is_not_undone_by_a_session(tmp_path: Path) -> None:
    """py-libp2p opens a stream to a peer it is not connected to by dialling it: a session
    begun as the node blocked (or lost) that peer went on to dial it, for up to 10 s, and the
    peer stayed in the node's peer table (as connected, in `status`) all that time: the
    soak's partition check saw peers across the cut 10 s after it. A session now needs a
    live connection and fails at once without one."""
    with trio.fail_after(60):
        async with running(make_home(tmp_path, "alice")) as alice, running(make_home(tmp_path, "bob")) as bob:
            await alice.connect(address(bob))  # alice knows where to dial bob
            bob_id = bob.net.peer_id
            await wait_until(lambda: bob_id in alice.peers)
            alice.block(bob_id, 60)
            await wait_until(lambda: bob_id not in alice.net.connected_peers())
            await wait_until(lambda: alice.net.peer_id not in bob.net.connected_peers())
            stats = await alice.sync_now(bob_id)
            assert stats.error is not None and "not connected" in stats.error
            assert bob_id not in alice.net.connected_peers()
            assert alice.net.peer_id not in bob.net.connected_peers()
            await wait_until(lambda: bob_id not in alice.peers)


async def test_an_op_our_own_fold_rejects_is_still_offered_so_later_ops_are_heard(tmp_path: Path) -> None:
    """Bob's node signs an op the circle rejects (an invite, which only organizers may make:
    a modified client, or a charter change that arrives just after he checked). His later
    ops cite it as a parent; were it stored but never offered, every one of them would wait
    for it on every other node, and Bob would be silenced without knowing. Before the fix,
    the node raised before gossiping it, and reconciliation never offered it either."""
    alice_home, bob_home = make_home(tmp_path, "alice"), make_home(tmp_path, "bob")
    with trio.fail_after(90):
        async with running(alice_home) as alice, running(bob_home) as bob:
            circle_id = (await call(alice, "circle.create", name="Riverside"))["id"]
            await share_circle(alice, circle_id, bob)
            # The honest path refuses before signing: nothing is made.
            with pytest.raises(UsageError, match="only an organizer may invite"):
                await call(bob, "invite.create", circle=circle_id)
            # A node that signs it anyway (skipping the check, as a modified client would).
            assert bob.circles is not None
            circle = bob.circles.get(circle_id)
            secret = bytes(32)
            body = {"invite": invite_id(secret), "secret": secret, "uses": 1, "expires": None}
            async with circle.authoring:  # the node's author turn (its lifecycle may hold it now)
                _envelope, result = bob.circles.author(circle, "invite.create", body)
            (refused,) = result.applied
            assert dict(result.rejected)[refused.id].startswith("only an organizer may invite")
            after = await call(bob, "post", circle=circle_id, text="still here")
            assert after["rejected"] is None
            alice_circle = alice.circles.get(circle_id)  # type: ignore[union-attr]
            await wait_until(lambda: alice_circle.replica.has(bytes.fromhex(after["id"])), timeout=60)
            assert refused.id.hex() in {r["op"] for r in (await call(alice, "views", circle=circle_id))["rejected"]}
            await wait_until(lambda: state_hash(alice, circle_id) == state_hash(bob, circle_id))


async def test_one_of_two_connections_closing_is_not_the_peer_leaving(tmp_path: Path) -> None:
    """Two connections join two nodes for a moment (both ends dialled at once, a redial),
    and libp2p reports each one's close. The older one closing left the peer forgotten
    while the newer carried on, and nothing redialled it (a dial finds the live
    connection): a newcomer's relay showed as unreachable right after he got in through it."""
    from multiaddr import Multiaddr

    from kith.p2pnet.netstack import parse_peer_id

    def settled(node: Node) -> bool:  # every connection report so far handled by the node
        return node.stats.connection_events == node.net.notifee.emitted

    with trio.fail_after(60):
        async with running(make_home(tmp_path, "alice")) as alice, running(make_home(tmp_path, "bob")) as bob:
            # Two dials at once share one connection.
            async with trio.open_nursery() as nursery:
                for _ in range(3):
                    nursery.start_soon(bob.connect, address(alice))
            alice_id, bob_id = parse_peer_id(alice.net.peer_id), parse_peer_id(bob.net.peer_id)
            network = bob.net.host.get_network()
            assert len(network.connections[alice_id]) == 1
            await wait_until(lambda: alice.net.peer_id in bob.peers and bob.net.peer_id in alice.peers)
            left: list[str] = []
            for node in (alice, bob):
                node.listeners.append(
                    lambda event, data: left.append(data["peer"]) if event == "peer" and not data["connected"] else None
                )
            first = network.connections[alice_id][0]
            transport = address(alice).rsplit("/p2p/", 1)[0]
            await network.dial_addr(Multiaddr(transport), alice_id)  # a second connection, as a redial opens
            await first.close()
            await wait_until(lambda: len(alice.net.host.get_network().connections.get(bob_id, ())) == 1)
            await wait_until(lambda: len(network.connections.get(alice_id, ())) == 1)
            await wait_until(
                lambda: settled(alice) and settled(bob) and min(alice.net.notifee.emitted, bob.net.notifee.emitted) >= 3
            )
            assert left == []
            assert alice.net.peer_id in bob.peers and bob.net.peer_id in alice.peers
            # The last one closing is the peer leaving.
            await network.connections[alice_id][0].close()
            await wait_until(lambda: alice.net.peer_id not in bob.peers and bob.net.peer_id not in alice.peers)
            assert sorted(left) == sorted([alice.net.peer_id, bob.net.peer_id])


async def test_the_ops_event_says_how_each_op_came(tmp_path: Path) -> None:
    """What the soak's tail breakdown reads (docs/API.md, `ops`): gossip or reconciliation,
    and which ops had arrived earlier and waited for a parent."""
    with trio.fail_after(90):
        async with running(make_home(tmp_path, "alice")) as alice, running(make_home(tmp_path, "bob")) as bob:
            circle = (await call(alice, "circle.create", name="Porch"))["id"]
            await share_circle(alice, circle, bob)
            seen: list[dict[str, Any]] = []
            bob.listeners.append(lambda event, data: seen.append(data) if event == "ops" else None)
            posted = await post_when_ready(alice, circle, "by gossip")
            await wait_until(lambda: any(op["id"] == posted for e in seen for op in e["ops"]))
            (event,) = [e for e in seen if any(op["id"] == posted for op in e["ops"])]
            assert event["via"] in ("gossip", "sync") and not event["ops"][0]["waited"]
            # Two more ops that bob gets child first, by hand, as a reconciliation would hand them.
            await bob.net.disconnect(alice.net.peer_id)  # type: ignore[union-attr]
            await wait_until(lambda: alice.net.peer_id not in bob.peers)
            bob.block(alice.net.peer_id, 600)
            topic = alice.circles.get(circle).current_topic  # type: ignore[union-attr]
            envelopes: dict[str, Envelope] = {}
            for text in ("first", "second"):
                before = set(alice.disk.store.iter_topic(topic))
                op_id = (await call(alice, "post", circle=circle, text=text))["id"]
                (data,) = set(alice.disk.store.iter_topic(topic)) - before
                envelopes[op_id] = Envelope.decode(data)
            parent, child = envelopes
            seen.clear()
            await bob.accept(topic, [envelopes[child]], "a peer")
            assert seen == []  # waiting for its parent
            await bob.accept(topic, [envelopes[parent]], "a peer")
            (event,) = seen
            assert event["via"] == "sync"
            assert {op["id"]: op["waited"] for op in event["ops"]} == {parent: False, child: True}


async def test_a_missing_parent_is_fetched_only_if_gossip_does_not_bring_it_in_a_moment(tmp_path: Path) -> None:
    """An op whose parent is a moment behind (gossip reorders) costs no reconciliation; one
    whose parent does not come is fetched from peers after `MISSING_PARENT_GRACE_S`."""
    with trio.fail_after(90):
        async with running(make_home(tmp_path, "alice")) as alice, running(make_home(tmp_path, "bob")) as bob:
            circle = (await call(alice, "circle.create", name="Stoop"))["id"]
            await share_circle(alice, circle, bob)
            topic = alice.circles.get(circle).current_topic  # type: ignore[union-attr]
            # Ops bob does not get by gossip (blocked), to hand over by hand in any order.
            await bob.net.disconnect(alice.net.peer_id)  # type: ignore[union-attr]
            await wait_until(lambda: alice.net.peer_id not in bob.peers)
            bob.block(alice.net.peer_id, 600)
            envelopes: list[tuple[str, Envelope]] = []
            for text in ("one", "two", "three", "four"):
                before = set(alice.disk.store.iter_topic(topic))
                op_id = (await call(alice, "post", circle=circle, text=text))["id"]
                (data,) = set(alice.disk.store.iter_topic(topic)) - before
                envelopes.append((op_id, Envelope.decode(data)))

            def folded(op_id: str) -> bool:
                return bytes.fromhex(op_id) in bob.circles.get(circle).replica.dag  # type: ignore[union-attr]

            # The child first, its parent half a grace later: one look, no fetch.
            checks, fetches = bob.stats.parent_checks, bob.stats.parent_fetches
            await bob.accept(topic, [envelopes[1][1]], "a peer")
            await trio.sleep(MISSING_PARENT_GRACE_S / 2)
            await bob.accept(topic, [envelopes[0][1]], "a peer")
            await wait_until(lambda: bob.stats.parent_checks == checks + 1)
            assert folded(envelopes[1][0]) and bob.stats.parent_fetches == fetches
            # A child whose parent does not come by gossip: after the grace, reconciliation
            # is asked for it (and brings it once a peer is there).
            await bob.accept(topic, [envelopes[3][1]], "a peer")
            await wait_until(lambda: bob.stats.parent_checks == checks + 2)
            assert bob.stats.parent_fetches == fetches + 1 and not folded(envelopes[3][0])
            bob.guard.unblock(alice.net.peer_id)
            await bob.connect(address(alice))
            await wait_until(lambda: folded(envelopes[3][0]), timeout=30)


async def test_a_manual_sync_reconciles_with_every_peer_at_once(tmp_path: Path) -> None:
    """`sync` with every peer: a peer that is slow to answer does not hold up the others.
    Bob answers only once Carol has answered. When the sessions ran one after another (Bob,
    the first connected, first) the request waited on Bob forever."""
    alice_home, bob_home, carol_home = (make_home(tmp_path, n) for n in ("alice", "bob", "carol"))
    with trio.fail_after(90):
        async with (
            running(alice_home, sync_interval_s=3600.0) as alice,
            running(bob_home, sync_interval_s=3600.0) as bob,
            running(carol_home, sync_interval_s=3600.0) as carol,
        ):
            circle = (await call(alice, "circle.create", name="At once"))["id"]
            await share_circle(alice, circle, bob, carol)
            assert list(alice.peers) == [bob.net.peer_id, carol.net.peer_id]  # type: ignore[union-attr]
            quiet = lambda: not any(s.syncing or s.again for n in (alice, bob, carol) for s in n.peers.values())  # noqa: E731
            await wait_until(quiet)
            carol_answered = trio.Event()
            bob_respond, carol_respond = bob._respond_sync, carol._respond_sync

            async def bob_waits(stream: Any, peer: str) -> None:
                await carol_answered.wait()
                await bob_respond(stream, peer)

            async def carol_answers(stream: Any, peer: str) -> None:
                await carol_respond(stream, peer)
                carol_answered.set()

            bob._respond_sync = bob_waits  # type: ignore[method-assign]
            carol._respond_sync = carol_answers  # type: ignore[method-assign]
            synced = (await call(alice, "sync"))["synced"]
            assert [s["peer"] for s in synced] == list(alice.peers)
            assert [s["error"] for s in synced] == [None, None]


async def test_a_manual_sync_cut_short_does_not_stop_reconciliation_with_that_peer(tmp_path: Path) -> None:
    """A `kith sync` runs under the control API's deadline; a session it cancelled part-way
    (the deadline, as the soak's repeated nudges met with slow sessions when they ran one
    peer after another) left the peer marked as syncing, and the node never began another
    session with it. Alice's manual sync with Bob is cancelled while Bob answers: Alice must
    reconcile with Bob again on her own, and with gossip dropped both ways a rotation she
    makes must reach Bob by reconciliation. (Before the fix Alice stayed 'syncing' with Bob
    and never started another session with him.)"""
    alice_home, bob_home = make_home(tmp_path, "alice"), make_home(tmp_path, "bob")
    with trio.fail_after(90):
        async with running(alice_home) as alice, running(bob_home, sync_interval_s=3600.0) as bob:
            circle = (await call(alice, "circle.create", name="Cut short"))["id"]
            await share_circle(alice, circle, bob)
            await wait_until(lambda: state_hash(bob, circle) == state_hash(alice, circle))
            bob_id = bob.net.peer_id  # type: ignore[union-attr]
            alice_id = alice.net.peer_id  # type: ignore[union-attr]
            quiet = lambda: not any(s.syncing or s.again for n in (alice, bob) for s in n.peers.values())  # noqa: E731
            await wait_until(lambda: bob_id in alice.peers and alice_id in bob.peers and quiet())
            for node in (alice, bob):  # gossip dropped both ways: only reconciliation carries anything
                node.net.set_gossip_policy(lambda peer, topic: False, on_unproved=lambda peer, topic: None)  # type: ignore[union-attr]
            # Bob's side of a session holds until Alice's manual sync is cancelled.
            entered, release = trio.Event(), trio.Event()
            respond = bob._respond_sync

            async def held(stream: Any, peer: str) -> None:
                entered.set()
                await release.wait()
                await respond(stream, peer)

            bob._respond_sync = held  # type: ignore[method-assign]
            async with trio.open_nursery() as nursery:
                manual = trio.CancelScope()

                async def sync_by_hand() -> None:
                    with manual:
                        await alice.sync_now(bob_id)

                nursery.start_soon(sync_by_hand)
                await entered.wait()
                manual.cancel()
            bob._respond_sync = respond  # type: ignore[method-assign]
            release.set()
            cancelled_at = alice.stats.syncs
            await wait_until(lambda: alice.stats.syncs > cancelled_at, timeout=30)  # her own next session
            epoch = bytes.fromhex((await call(alice, "rotate", circle=circle))["epoch"])
            await wait_until(lambda: epoch in bob.circles.get(circle).keys.epochs, timeout=45)  # type: ignore[union-attr]


async def test_what_reconciliation_brings_is_gossiped_on_up_to_a_bucket_not_a_whole_rebuild(tmp_path: Path) -> None:
    """Envelopes a node gets by reconciliation are gossiped on once (a healed partition's
    backlog reaches the rest of the mesh at once), but not a rebuild's thousand: a relay that
    lost its database gossiped everything its members gave back to all of them, and in
    default soaks the relays' queues then grew for a minute (`REGOSSIP_BURST`)."""
    alice_home, bob_home = make_home(tmp_path, "alice"), make_home(tmp_path, "bob")
    with trio.fail_after(120):
        async with running(alice_home, sync_interval_s=3600.0) as alice, running(bob_home) as bob:
            circle = (await call(alice, "circle.create", name="Backlog"))["id"]
            await share_circle(alice, circle, bob)
            await wait_until(lambda: state_hash(bob, circle) == state_hash(alice, circle))
            bob_id = bob.net.peer_id  # type: ignore[union-attr]
            await wait_until(lambda: bob_id in alice.peers and not any(s.syncing for s in alice.peers.values()))
            for node in (alice, bob):  # gossip dropped both ways: only reconciliation carries anything
                node.net.set_gossip_policy(lambda peer, topic: False, on_unproved=lambda peer, topic: None)  # type: ignore[union-attr]
            alice._regossip = TokenBucket(0.0, REGOSSIP_BURST)  # no refill: the counts are exact
            # (Counted from here: a session Bob starts may bring Alice one of his late acks too.)
            regossiped, not_regossiped = alice.stats.regossiped, alice.stats.not_regossiped
            await call(bob, "post_many", circle=circle, texts=[f"small {i}" for i in range(5)])
            await alice.sync_now(bob_id)  # (or a session Bob began meanwhile brought them)
            assert alice.stats.regossiped - regossiped >= 5
            assert alice.stats.not_regossiped == not_regossiped
            await call(bob, "post_many", circle=circle, texts=[f"large {i}" for i in range(REGOSSIP_BURST + 100)])
            await alice.sync_now(bob_id)
            # The bucket is empty: the rest (at least 105 of the 361) is left to the peers.
            assert alice.stats.regossiped - regossiped == REGOSSIP_BURST
            assert alice.stats.not_regossiped - not_regossiped >= 105
