"""How much memory a relay needs per 100,000 envelopes it stores.

One member posts 100,000 messages in batches (``post_many``); a relay stores them. The
figure is the growth of the relay's resident memory (VmRSS) from just after it started
serving the circle to when it holds every envelope, scaled to 100,000 envelopes. Also
reported: the resident memory of the same relay restarted on that full store (what such
a relay costs after a reboot, its index rebuilt from disk).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from bench import Figures, register
from bench.cluster import wait_for
from bench.soak_world import World


def _rss_mb(peer: Any, field: str = "VmRSS") -> float:
    assert peer.proc.proc is not None
    for line in Path(f"/proc/{peer.proc.proc.pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for {peer.name}")


def _relay_envelopes(world: World) -> int:
    return sum(t["envelopes"] for t in world.call(world.relays[0], "status")["relay_topics"])


@register("relay_rss_mb_per_100k_envelopes", "relay_rss_mb_restarted_with_100k")
def bench_relay_memory(count: int = 100_000, batch: int = 1000) -> Figures:
    with tempfile.TemporaryDirectory(prefix="kith-relay-rss-") as tmp:
        world = World(Path(tmp), members=1, relays=1)
        try:
            world.start_all()
            (member,), relay = world.members, world.relays[0]
            circle = world.call(member, "circle.create", name="Archive")["id"]
            world.call(relay, "relay.allow", token=world.call(member, "circle.relay_token", circle=circle)["token"])
            world.call(member, "connect", address=relay.address)
            wait_for(lambda: _relay_envelopes(world) >= 2, timeout=60)
            time.sleep(2.0)
            base = _relay_envelopes(world)
            before = _rss_mb(relay)
            for start in range(0, count, batch):
                texts = [f"archived message {i}: " + "words of support " * 6 for i in range(start, start + batch)]
                world.call(member, "post_many", circle=circle, texts=texts, timeout=300)
            wait_for(lambda: _relay_envelopes(world) >= base + count, timeout=900, interval=2.0)
            stored = _relay_envelopes(world) - base
            after = _rss_mb(relay)
            world.kill(relay)
            world.restart(relay)
            wait_for(lambda: _relay_envelopes(world) >= base + count, timeout=300)
            restarted = _rss_mb(relay)
        finally:
            world.stop_all()
    return {
        "relay_rss_mb_per_100k_envelopes": round((after - before) * 100_000 / stored, 1),
        "relay_rss_mb_restarted_with_100k": round(restarted, 1),
    }
