"""Invites as join-only capabilities on their own topics (issue: metadata privacy).

A code holds an invite's secret and nothing of the circle: join requests and welcomes
travel on the invite's own topic, which members and relays serve only while the invite is
open. Attacks are real peers with real keys: a holder of a revoked code, and a holder of a
relay key (an old member, a seized relay token) that floods authentic junk.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
import trio
from p2pnet_harness import address, allow_on_relay, call, is_member, make_home, running, share_circle, wait_until

from kith.identity.crypto import random_bytes
from kith.identity.keys import NetworkKey
from kith.p2pnet.netstack import NetStack, open_netstack
from kith.p2pnet.node import Node
from kith.p2pnet.syncproto import PROTOCOL, AcceptResult, SyncPeer, run_initiator
from kith.sync.envelope import Envelope, Kind, hint_key, hinted_nonce, relay_key, seal
from kith.sync.invites import InviteCode
from kith.sync.reconcile import ItemIndex

pytestmark = pytest.mark.trio
LOOPBACK = ["/ip4/127.0.0.1/tcp/0"]


def _stored_bytes(node: Node) -> int:
    return sum(node.store.bytes_in_topic(topic) for topic in node.store.topics())


async def _push(attacker: NetStack, target: Node, topic: bytes, key: bytes, junk: list[Envelope]) -> int:
    """One sync session in which the attacker proves ``key`` for ``topic`` and offers
    ``junk`` as envelopes the target lacks; returns how many topics were shared."""
    by_id = {e.id: e.data for e in junk}

    async def accept(topic: bytes, envelopes: list[Envelope], peer: str) -> AcceptResult:
        return AcceptResult()

    host = SyncPeer(
        attacker.peer_id,
        lambda: {topic: [key]},
        lambda t: ItemIndex([(e.ts, e.id) for e in junk]),
        lambda ids: {i: by_id[i] for i in ids if i in by_id},
        accept,
    )
    try:
        stream = await attacker.open_stream(target.net.peer_id, PROTOCOL)  # type: ignore[union-attr]
    except Exception:  # noqa: BLE001 - banned by now: the connection is refused
        return 0
    stats = await run_initiator(host, stream, target.net.peer_id)  # type: ignore[union-attr]
    return len(stats.shared_topics)


def _join_shaped_junk(code: InviteCode, count: int) -> list[Envelope]:
    """Authentic under the invite's capability, but not a join request anyone can open."""
    return [
        Envelope.build(
            code.topic,
            code.epoch,
            1_700_000_000 + i,
            hinted_nonce(hint_key(code.secret, Kind.JOIN), random_bytes),
            secrets.token_bytes(3000),
            relay_key=code.mac_key,
        )  # fmt: skip
        for i in range(count)
    ]


async def test_a_newcomer_joins_through_a_relay_while_the_inviter_is_offline(tmp_path: Path) -> None:
    alice_home, bob_home = make_home(tmp_path, "alice"), make_home(tmp_path, "bob")
    relay_home = make_home(tmp_path, "relay", relay=True)
    with trio.fail_after(120):
        async with running(alice_home) as alice:
            circle = (await call(alice, "circle.create", name="Night shift"))["id"]
            token = (await call(alice, "circle.relay_token", circle=circle, label="riverside"))["token"]
        allow_on_relay(relay_home, token)
        async with running(relay_home, relay=True) as relay:
            async with running(alice_home) as alice:
                await alice.connect(address(relay))
                code = (await call(alice, "invite.create", circle=circle))["code"]
                invite = InviteCode.decode(code)
                await call(alice, "sync")
                # The relay learned the invite's topic from the signed invite grant.
                await wait_until(lambda: invite.topic in relay.relay_invites)
            # Alice is gone; bob asks through the relay, which keeps his request.
            async with running(bob_home) as bob:
                await bob.connect(address(relay))
                await call(bob, "join", code=code)
                await wait_until(lambda: relay.store.count(invite.topic) == 1)  # type: ignore[union-attr]
            # Alice comes back, lets him in; her welcome waits at the relay for him.
            async with running(alice_home) as alice:
                await alice.connect(address(relay))
                await wait_until(lambda: len(alice.circles.get(circle).replica.state.members) == 2)  # type: ignore[union-attr]
                await wait_until(lambda: relay.store.count(invite.topic) == 2)  # type: ignore[union-attr]
                # She quits at once. Her admission of bob travels on the new epoch's topic (he
                # may not read what came before), which the relay serves only once the grant
                # sent with that rotation reaches it: her clean stop hands it on first.
                new_topic = alice.circles.get(circle).current_topic  # type: ignore[union-attr]
            assert relay.store.count(new_topic) > 0  # type: ignore[union-attr]
            async with running(bob_home) as bob:
                await bob.connect(address(relay))
                await wait_until(lambda: not bob.lifecycle.joins(), timeout=30)  # type: ignore[union-attr]
                # He folds his own admission from what the relay holds, alice still away.
                await wait_until(lambda: is_member(bob, circle), timeout=30)
                # A member now, bob's node keeps the invite's topic only as a member keeps any
                # invite of the circle that is open or closed less than INVITE_GRACE_S ago (so
                # a last welcome or refusal can still reach someone).
                assert bob.gate.serves(invite.topic) == (invite.topic in bob.lifecycle.invite_topics)  # type: ignore[union-attr]


async def test_a_revoked_codes_holder_stores_nothing_anywhere(tmp_path: Path) -> None:
    """junk_stored_bytes: a holder of a code floods a member and a relay with join-shaped
    junk, before and after the code is revoked; neither stores a byte of it."""
    alice_home, bob_home = make_home(tmp_path, "alice"), make_home(tmp_path, "bob")
    relay_home = make_home(tmp_path, "relay", relay=True)
    with trio.fail_after(120):
        async with running(alice_home) as alice:
            circle = (await call(alice, "circle.create", name="Closed door"))["id"]
            token = (await call(alice, "circle.relay_token", circle=circle))["token"]
        allow_on_relay(relay_home, token)
        async with (
            running(relay_home, relay=True) as relay,
            running(alice_home) as alice,
            running(bob_home) as bob,
            open_netstack(NetworkKey.generate(), LOOPBACK) as attacker,
        ):
            await alice.connect(address(relay))
            await share_circle(alice, circle, bob)
            code = InviteCode.decode((await call(alice, "invite.create", circle=circle))["code"])
            await call(alice, "sync")
            await wait_until(lambda: code.topic in relay.relay_invites)
            for target in (alice, relay):
                await attacker.connect(address(target))
            before = {n.net.peer_id: _stored_bytes(n) for n in (alice, relay)}  # type: ignore[union-attr]
            # While the code is open: the member opens what arrives and refuses junk; the
            # relay cannot open it, so its quota for the invite's topic is all it keeps.
            assert await _push(attacker, alice, code.topic, code.mac_key, _join_shaped_junk(code, 40)) == 1
            assert _stored_bytes(alice) == before[alice.net.peer_id]  # type: ignore[union-attr]
            assert alice.gate.refused["junk: authentic but does not open"] >= 1
            await _push(attacker, relay, code.topic, code.mac_key, _join_shaped_junk(code, 200))
            assert relay.store.bytes_in_topic(code.topic) <= 256 * 1024  # type: ignore[union-attr]

            invite_id = code.invite_id.hex()
            await call(alice, "invite.revoke", circle=circle, invite=invite_id)
            await call(alice, "sync")
            await wait_until(lambda: not alice.gate.serves(code.topic) and not relay.gate.serves(code.topic))
            await wait_until(lambda: not bob.gate.serves(code.topic))
            # The relay dropped what the topic held, and everyone refuses it from now on.
            assert relay.store.count(code.topic) == 0  # type: ignore[union-attr]
            before = {n.net.peer_id: _stored_bytes(n) for n in (alice, relay)}  # type: ignore[union-attr]
            for _ in range(3):
                for target in (alice, relay):
                    assert await _push(attacker, target, code.topic, code.mac_key, _join_shaped_junk(code, 40)) == 0
            for node in (alice, relay):
                assert _stored_bytes(node) == before[node.net.peer_id]  # type: ignore[union-attr]
            # The circle goes on.
            assert (await call(alice, "post", circle=circle, text="still here"))["rejected"] is None


async def test_junk_from_a_relay_key_holder_is_refused_and_its_sender_banned(tmp_path: Path) -> None:
    """Whoever holds a circle's relay key (a relay, or an old member who kept it) can make
    envelopes every relay accepts. Members open before storing: the junk is refused, not
    stored, and a peer that keeps sending it is banned like any other."""
    alice_home = make_home(tmp_path, "alice")
    with trio.fail_after(120):
        async with running(alice_home) as alice, open_netstack(NetworkKey.generate(), LOOPBACK) as attacker:
            circle = (await call(alice, "circle.create", name="Flooded"))["id"]
            state = alice.circles.get(circle)  # type: ignore[union-attr]
            topic, epoch_key = state.current_topic, state.keys.current_key
            key = relay_key(epoch_key)
            await attacker.connect(address(alice))
            before = _stored_bytes(alice)

            def junk(count: int) -> list[Envelope]:
                wrong = secrets.token_bytes(32)  # sealed with a key that is not the epoch's
                envelopes = []
                for i in range(count):
                    fake = seal(secrets.token_bytes(500), epoch_key=wrong, ts=1_700_000_000 + i)
                    envelopes.append(
                        Envelope.build(topic, state.keys.current, fake.ts, fake.nonce, fake.ciphertext, relay_key=key)
                    )
                return envelopes

            rounds = 0
            while not alice.is_banned(attacker.peer_id) and rounds < 20:
                await _push(attacker, alice, topic, key, junk(100))
                rounds += 1
            assert alice.is_banned(attacker.peer_id)
            assert _stored_bytes(alice) == before
            assert (await call(alice, "post", circle=circle, text="business as usual"))["rejected"] is None
