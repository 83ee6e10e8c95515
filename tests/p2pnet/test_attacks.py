"""Attacks by a modified client, against real nodes on loopback (issue: causal authority).

Each attacker signs what the honest client never would, with real keys, and sends it over
the real network; the honest nodes must refuse it, list why, and stay usable.
"""

from __future__ import annotations

import itertools
import secrets
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import trio
from p2pnet_harness import address, allow_on_relay, call, make_home, post_when_ready, running, share_circle, wait_until

from kith.identity import codec
from kith.identity.crypto import aead_encrypt, random_bytes, sign, signing_keypair
from kith.identity.keys import MemberIdentity
from kith.p2pnet.node import Node
from kith.sync.envelope import Envelope, Kind, epoch_id, header_bytes, hint_key, hinted_nonce, pad, relay_key, seal
from kith.sync.invites import _GRANT_DOMAIN, _grant_key
from kith.sync.kinds.common import STRUCK_REMOVED
from kith.sync.kinds.keys import SEALED_KEY_BYTES
from kith.sync.kinds.membership import member_add_body
from kith.sync.ops import Op, SignedOp
from kith.sync.state import fold_key

pytestmark = pytest.mark.trio


def _circle(node: Node, circle_id: str):  # type: ignore[no-untyped-def]
    assert node.circles is not None
    return node.circles.get(circle_id)


async def _inject(node: Node, envelope: Envelope) -> None:
    """What a modified client does with an op it forged: store it and gossip it."""
    await node.accept(envelope.topic, [envelope], "self")
    node.publish_nowait(envelope)


async def _bob_organizes(alice: Node, bob: Node, carol: Node, name: str) -> tuple[str, bytes]:
    """alice's circle with bob and carol; bob made organizer, and he has acknowledged it."""
    await carol.connect(address(bob))
    circle = (await call(alice, "circle.create", name=name))["id"]
    await share_circle(alice, circle, bob, carol)
    bob_id = bob.circles.identity.member_id  # type: ignore[union-attr]
    await call(alice, "role.grant", circle=circle, member=bob_id.hex(), role="organizer")
    await wait_until(lambda: "organizer" in _circle(bob, circle).replica.state.members[bob_id].roles)
    await post_when_ready(bob, circle, "glad to help organize")
    return circle, bob_id


async def test_a_removed_organizers_back_dated_sock_puppet_is_struck_everywhere(tmp_path: Path) -> None:
    homes = [make_home(tmp_path, n) for n in ("alice", "bob", "carol")]
    with trio.fail_after(120):
        async with AsyncExitStack() as stack:
            alice, bob, carol = [await stack.enter_async_context(running(h)) for h in homes]
            circle, bob_id = await _bob_organizes(alice, bob, carol, "Infiltrated")
            # Alice must hold Bob's whole chain: a forgery continuing an older link would
            # fork it, a different attack (equivocation) with a different outcome.
            await wait_until(
                lambda: (
                    _circle(alice, circle).replica.state.chains.get(bob_id)
                    == _circle(bob, circle).replica.state.chains.get(bob_id)
                ),
                timeout=60,
            )
            seq, last = _circle(alice, circle).replica.state.chains[bob_id]
            removal = await call(alice, "member.remove", circle=circle, member=bob_id.hex())
            await wait_until(lambda: bob_id not in _circle(bob, circle).replica.state.members)
            # Bob's modified client: a member.add of a sock puppet continuing his chain from
            # before the removal (so it sorts before it), sealed with a key he still holds.
            # The fold orders by (lamport, id): where the lamports tie, his client grinds the
            # ts until the id sorts before the removal's too (taking the smallest of a fixed
            # number of ids lost that race about one run in thirty).
            puppet = MemberIdentity.generate("puppet", now=1_700_000_000)
            replica = _circle(bob, circle).replica
            (removal_op,) = [s for s in replica.ops() if s.op.kind == "member.remove"]
            lamport = 1 + replica.dag.lamport_of(last)
            body = member_add_body(puppet.card().to_bytes())
            forged = next(
                signed
                for ts in itertools.count(1)
                if fold_key(
                    signed := SignedOp.create(
                        Op(bytes.fromhex(circle), bob_id, (last,), lamport, ts, "member.add", body, seq=seq + 1),
                        bob.circles.identity,  # type: ignore[union-attr]
                    )
                )
                < fold_key(removal_op)
            )
            old_key = next(iter(_circle(bob, circle).keys.epochs.values()))
            envelope = seal(forged.data, epoch_key=old_key, ts=forged.op.ts)
            await _inject(bob, envelope)
            for node in (alice, carol):
                # Carol may hold the forgery (it continues Bob's chain from before the
                # removal) before the removal reaches her: until then it is applied there.
                await wait_until(
                    lambda n=node: all(_circle(n, circle).replica.has(i) for i in (forged.id, removal_op.id)),
                    timeout=30,
                )
                state = _circle(node, circle).replica.state
                assert state.is_rejected(forged.id) == STRUCK_REMOVED
                assert puppet.member_id not in state.members
            assert removal["rejected"] is None
            # The honest organizer's later keys go to members only, and the circle works.
            await call(alice, "rotate", circle=circle)
            after = await post_when_ready(alice, circle, "still safe")
            await wait_until(lambda: _circle(carol, circle).replica.has(bytes.fromhex(after)), timeout=30)
            for signed in _circle(alice, circle).replica.ops():
                if signed.op.kind in ("key.rotate", "key.share"):
                    assert puppet.member_id not in signed.op.body["sealed"]


async def test_a_junk_rotation_from_an_organizers_client_does_not_freeze_the_circle(tmp_path: Path) -> None:
    homes = [make_home(tmp_path, n) for n in ("alice", "bob", "carol")]
    with trio.fail_after(150):
        async with AsyncExitStack() as stack:
            alice, bob, carol = [await stack.enter_async_context(running(h)) for h in homes]
            circle, bob_id = await _bob_organizes(alice, bob, carol, "Junk")
            # Bob's modified client announces a new key whose boxes nobody can open.
            state = _circle(bob, circle).replica.state
            junk_epoch = epoch_id(secrets.token_bytes(32))
            sealed = {m: secrets.token_bytes(SEALED_KEY_BYTES) for m in state.members if m != bob_id}
            body = {"epoch": junk_epoch, "previous": state.info["epoch"], "sealed": sealed}
            # (In the circle's author turn, as the node's own authoring is: its lifecycle may
            # hold the turn at this moment, and authoring beside it is refused.)
            async with _circle(bob, circle).authoring:
                envelope, _result = bob.circles.author(_circle(bob, circle), "key.rotate", body)  # type: ignore[union-attr]
            bob.publish_nowait(envelope)
            for node in (alice, carol):
                await wait_until(lambda n=node: junk_epoch in _circle(n, circle).replica.state.epochs, timeout=30)
            # Alice's node cannot open its box: it replaces the key; everyone posts again.
            await wait_until(lambda: _circle(alice, circle).replica.state.info["epoch"] != junk_epoch, timeout=60)
            posted = await post_when_ready(alice, circle, "we are back")
            await wait_until(lambda: _circle(carol, circle).replica.has(bytes.fromhex(posted)), timeout=60)
            reply = await post_when_ready(carol, circle, "me too")
            await wait_until(lambda: _circle(alice, circle).replica.has(bytes.fromhex(reply)), timeout=60)
            assert _circle(alice, circle).replica.state.is_rejected(bytes.fromhex(reply)) is None


def _forged_grant(
    topic: bytes, topic_epoch: bytes, previous_relay_key: bytes, epoch: bytes, new_relay_key: bytes, signer: bytes
) -> Envelope:
    """A relay grant as a forger builds it: encrypted and authenticated with a relay key they
    hold (from an invite code), signed with a key of their choosing."""
    ts = 1_700_000_000
    header = header_bytes(topic, topic_epoch, ts)
    _public, secret = signing_keypair(signer)
    grant_public, _ = signing_keypair(secrets.token_bytes(32))
    body = {"v": 1, "epoch": epoch, "relay_key": new_relay_key, "grant_key": grant_public}
    signature = sign(secret, _GRANT_DOMAIN, header + codec.encode(body))
    plaintext = codec.encode({**body, "sig": signature})
    nonce = hinted_nonce(hint_key(previous_relay_key, Kind.GRANT), random_bytes)
    ciphertext = aead_encrypt(_grant_key(previous_relay_key), nonce, pad(plaintext), header)
    return Envelope.build(topic, topic_epoch, ts, nonce, ciphertext, relay_key=previous_relay_key)


async def test_a_forged_relay_grant_changes_nothing_and_honest_members_stay_welcome(tmp_path: Path) -> None:
    alice_home, relay_home = make_home(tmp_path, "alice"), make_home(tmp_path, "relay", relay=True)
    with trio.fail_after(90):
        async with running(alice_home) as alice:
            circle = (await call(alice, "circle.create", name="Guarded"))["id"]
            token = (await call(alice, "circle.relay_token", circle=circle))["token"]
        allow_on_relay(relay_home, token)
        async with running(alice_home) as alice, running(relay_home, relay=True) as relay:
            await alice.connect(address(relay))
            circle_state = _circle(alice, circle)
            topic, current = circle_state.current_topic, circle_state.keys.current
            current_relay_key = relay_key(circle_state.keys.current_key)
            held_before = {t: dict(keys) for t, keys in relay.gate.relay_keys.items()}
            # Whoever holds the relay key (an invite code is enough) tries to replace the
            # current epoch's key and to add an epoch of their own.
            junk_key = secrets.token_bytes(32)
            for epoch in (current, secrets.token_bytes(16)):
                forged = _forged_grant(topic, current, current_relay_key, epoch, junk_key, secrets.token_bytes(32))
                await relay.accept(topic, [forged], "forger-peer")
            assert relay.gate.relay_keys == held_before  # no key replaced, no epoch topic added
            # Honest envelopes still pass, and alice is not banned.
            posted = await call(alice, "post", circle=circle, text="business as usual")
            assert posted["rejected"] is None
            await call(alice, "sync")
            await wait_until(lambda: set(alice.indexes[topic]) <= set(relay.indexes[topic]))
            assert not relay.is_banned(alice.net.peer_id)  # type: ignore[union-attr]
            # The relay cannot check a grant's signature before storing it; alice can, and
            # refuses both forgeries when the relay offers them (they open under no key of hers).
            assert len(relay.indexes[topic]) == len(alice.indexes[topic]) + 2
            assert alice.gate.refused["junk: authentic but does not open"] >= 2


async def test_a_removed_member_is_not_let_back_in_when_the_organizers_node_restarts(tmp_path: Path) -> None:
    """The organizer's node replays every stored join request at start-up; the one that let
    bob in once must not let him in again (the invite had a second use left)."""
    alice_home, bob_home = make_home(tmp_path, "alice"), make_home(tmp_path, "bob")
    with trio.fail_after(120):
        async with running(alice_home) as alice, running(bob_home) as bob:
            circle = (await call(alice, "circle.create", name="Once"))["id"]
            code = (await call(alice, "invite.create", circle=circle, uses=2))["code"]
            await bob.connect(address(alice))
            await call(bob, "join", code=code)
            bob_id = bob.circles.identity.member_id  # type: ignore[union-attr]
            await wait_until(lambda: bob_id in _circle(alice, circle).replica.state.members, timeout=30)
            await call(alice, "member.remove", circle=circle, member=bob_id.hex())
        async with running(alice_home) as alice:
            # Start-up replayed the stored request (synchronously, before the node was up).
            state = _circle(alice, circle).replica.state
            assert bob_id not in state.members
            (invite,) = state.invites.values()
            assert invite.used == 1
            assert not alice.lifecycle.pending_requests(_circle(alice, circle))  # type: ignore[union-attr]
