"""When a node reconciles with its peers: each peer on a timer of its own, at least every
``sync_interval_s`` (jittered; a session the peer started counts), and all of them at
once when asked. Run on trio's mock
clock: two minutes of a relay with 100 members take no real time."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
import trio
import trio.testing
from p2pnet_harness import PASS, loopback_config, make_home

from kith.p2pnet import node as node_module
from kith.p2pnet.keyfile import Keystore
from kith.p2pnet.node import Node, PeerState
from kith.p2pnet.syncproto import SyncStats

INTERVAL = 30.0


def test_periodic_sessions_are_spread_over_the_interval_and_a_request_reaches_everyone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One timer for all peers started all 100 sessions at the same moment every 30 s, and
    a relay's gossip waited seconds behind them (`kith bench relay_100_circles_forward_p99_ms`)."""
    monkeypatch.setattr(node_module, "random", random.Random(16))
    home = make_home(tmp_path, "relay", relay=True)
    node = Node(home, Keystore.unlock(home.keystore, PASS), loopback_config(sync_interval_s=INTERVAL), relay=True)
    started: list[tuple[float, str]] = []
    node._start_sync = lambda peer: started.append((trio.current_time(), peer))  # type: ignore[method-assign]
    peers = [f"member{i}" for i in range(100)]
    eager = [f"eager{i}" for i in range(10)]
    asked_at: list[float] = []

    async def they_sync_with_us_every_20_s() -> None:
        await trio.sleep(1)
        while True:
            for peer in eager:
                node._reschedule_sync(node.peers[peer], SyncStats(peer, False))
            await trio.sleep(20)

    async def main() -> None:
        for peer in peers + eager:  # all connected at the same moment, as after a relay restarts
            node.peers[peer] = PeerState(peer, 0.0)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(node._sync_loop)
            nursery.start_soon(they_sync_with_us_every_20_s)
            await trio.sleep(120)
            asked_at.append(trio.current_time())
            node.request_sync()
            await trio.sleep(1)
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    periodic = [(at, peer) for at, peer in started if at < asked_at[0]]
    tick = min(1.0, INTERVAL / 4)
    for peer in peers:
        times = [at for at, p in periodic if p == peer]
        assert 0.2 * INTERVAL <= times[0] <= 1.2 * INTERVAL + tick
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert gaps and all(0.8 * INTERVAL <= gap <= 1.2 * INTERVAL + tick for gap in gaps), (peer, gaps)
    # Spread: about 100 / 30 s = 3.3 sessions a second, never a round of 100 at once.
    per_second = Counter(int(at) for at, _ in periodic)
    assert max(per_second.values()) <= 12, per_second.most_common(3)
    # Peers that reconcile with us more often than the interval get no periodic session from us.
    assert not [peer for _, peer in periodic if peer in eager]
    # Asked (a topic added, a parent missing): every peer at once.
    asked = {peer for at, peer in started if asked_at[0] <= at <= asked_at[0] + 0.1}
    assert asked == set(peers + eager)
