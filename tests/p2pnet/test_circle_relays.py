"""A circle's relays on real nodes: members dial them, invites and welcomes carry them, a
newcomer who can reach only the relay gets in through it, and backups carry them."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from p2pnet_harness import PASS, address, allow_on_relay, call, is_member, make_home, running, wait_until

from kith.p2pnet.keyfile import Keystore
from kith.sync.invites import InviteCode

pytestmark = pytest.mark.trio


async def test_a_circle_relay_is_dialed_carried_and_enough_for_a_newcomer(tmp_path: Path) -> None:
    alice_home, bob_home = make_home(tmp_path, "alice"), make_home(tmp_path, "bob")
    relay_home = make_home(tmp_path, "relay", relay=True)
    with trio.fail_after(120):
        async with running(alice_home) as alice:
            circle = (await call(alice, "circle.create", name="Riverside"))["id"]
            token = (await call(alice, "circle.relay_token", circle=circle, label="riverside"))["token"]
            allow_on_relay(relay_home, token)
            async with running(relay_home, relay=True) as relay:
                where = address(relay)
                assert (await call(alice, "relay.add", circle=circle, address=where))["rejected"] is None
                # Alice's node dials the circle's relay by itself, and says it reaches it.
                await wait_until(lambda: relay.net.peer_id in alice.peers)
                status = await call(alice, "status")
                assert status["circles"][0]["relay_reachable"]
                assert status["circles"][0]["relays"][0]["address"] == where
                assert (await call(alice, "relays", circle=circle))[0]["connected"]
                # What a backup carries (the keystore on disk; a restored node dials it first) leads with it.
                assert Keystore.unlock(alice_home.keystore, PASS).data.relays[0] == where
                # Invites carry the relay first.
                code = (await call(alice, "invite.create", circle=circle, uses=1))["code"]
                assert InviteCode.decode(code).addresses[0] == where
                # Bob cannot reach alice at all (blocked), only the relay: he gets in through it.
                async with running(bob_home) as bob:
                    bob.block(alice.net.peer_id, 600)
                    await call(bob, "join", code=code)
                    await wait_until(lambda: is_member(bob, circle), timeout=60)
                    assert alice.net.peer_id not in bob.peers
                    # The welcome named the relay: bob's node keeps it connected and lists it.
                    await wait_until(lambda: bob.circles.get(circle).replica.state.relays.keys() == {where})
                    assert (await call(bob, "relays", circle=circle))[0]["connected"]
                # Removing it takes it off the list members dial and backups carry.
                assert (await call(alice, "relay.remove", circle=circle, address=where))["rejected"] is None
                await wait_until(lambda: where not in alice.keystore.data.relays)
                assert where not in alice.dial_targets()
                assert (await call(alice, "status"))["circles"][0]["relays"] == []
