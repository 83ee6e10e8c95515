"""kill -9 a member in the middle of a sync: it restarts and loses nothing it acknowledged."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.cluster import NodeProcess, wait_for
from p2pnet_harness import PASS, make_home

pytestmark = pytest.mark.slow


def _state(node: NodeProcess, circle: str) -> tuple[str, int] | None:
    try:
        result = node.call("state_hash", circle=circle)
    except Exception:  # noqa: BLE001 - not ready yet
        return None
    return result["state_hash"], result["ops"]


def test_member_killed_mid_sync_restarts_and_loses_nothing(tmp_path: Path) -> None:
    secret = tmp_path / "pass"
    secret.write_text(PASS)
    alice_home, bob_home = make_home(tmp_path, "alice"), make_home(tmp_path, "bob")
    relay_home = make_home(tmp_path, "relay", relay=True)
    alice = NodeProcess(alice_home, secret).start()
    relay = bob = None
    try:
        circle = alice.call("circle.create", name="Crash test")["id"]
        relay = NodeProcess(relay_home, secret, relay=True).start()
        relay.call("relay.allow", token=alice.call("circle.relay_token", circle=circle)["token"])
        alice.call("connect", address=relay.address)

        # Bob joins with an invite, through the relay, and catches up.
        code = alice.call("invite.create", circle=circle)["code"]
        bob = NodeProcess(bob_home, secret).start()
        bob.call("connect", address=relay.address)
        bob.call("join", code=code)
        wait_for(lambda: _state(bob, circle) == _state(alice, circle))
        acknowledged = [bob.call("post", circle=circle, text=f"bob wrote {i}")["id"] for i in range(20)]
        bob.call("sync")
        bob.stop()

        # While Bob is away, a long backlog builds up on the relay.
        for i in range(2000):
            alice.call("post", circle=circle, text=f"backlog {i} " + "x" * 200)
        alice.call("sync")
        wait_for(lambda: relay.call("status")["relay_topics"][0]["envelopes"] >= 2027)

        bob = NodeProcess(bob_home, secret).start()
        base_ops = bob.call("state_hash", circle=circle)["ops"]
        bob.call("connect", address=relay.address)
        # Kill Bob while the backlog streams in.
        wait_for(lambda: bob.call("status")["accepted"] > 50, timeout=60, interval=0.005)
        bob.kill9()

        bob = NodeProcess(bob_home, secret).start()
        feed_ids = {item["id"] for item in bob.call("views", circle=circle, feed_limit=10_000)["feed"]}
        assert set(acknowledged) <= feed_ids, "posts acknowledged before the crash must survive it"
        assert bob.call("state_hash", circle=circle)["ops"] >= base_ops
        bob.call("connect", address=relay.address)
        wait_for(lambda: _state(bob, circle) == _state(alice, circle), timeout=90)
        # genesis, profile, the creator's treasurer grant, invite, the rotation before bob's
        # welcome, member.add, bob's key.ack and profile, the posts
        assert _state(bob, circle)[1] == 8 + 20 + 2000  # type: ignore[index]
    finally:
        for node in (alice, relay, bob):
            if node is not None:
                node.stop()
