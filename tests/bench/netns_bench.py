"""Figures from the namespace world (netns_world.py): a circle across NATs and a public relay.

* ``nat_delivery_p99_ms`` (and p50, loss): a1 in home A posts 20 ops/s for 15 s; the latency
  of each from just before a1 is asked to post it until b1, behind the other home's NAT,
  reports it folded. Every op crosses two NATs and the relay.
* ``relay_restart_recovery_s``: the relay stops and starts again on the same public address;
  from the moment it listens again until a post a1 makes at that moment has reached every
  other member (everyone redialed, reconciled and got it).
* ``address_change_recovery_s``: a2 leaves home A for the cafe's network (its old link and
  address are gone); from the new address being up until a post of a2's reached everyone and
  a post of b1's reached a2. A figure that was not reached reads "not recovered within N s".

Needs root and network namespaces; without them every figure reads "skipped: <reason>".
"""

from __future__ import annotations

import statistics
import time

from bench import Figures, register
from bench.netns import unavailable_reason
from bench.netns_world import MEMBERS, open_world

FIGURES = (
    "nat_delivery_p99_ms", "nat_delivery_p50_ms", "nat_delivery_loss",
    "relay_restart_recovery_s", "address_change_recovery_s",
)  # fmt: skip
RECOVERY_BOUND_S = 60.0


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


@register(*FIGURES)
def bench_nat_world(rate: float = 20.0, seconds: float = 15.0) -> Figures:
    reason = unavailable_reason()
    if reason is not None:
        return {name: f"skipped: {reason}" for name in FIGURES}
    world, cleanup = open_world()
    figures: Figures = {}
    try:
        world.make_circle()
        sent: dict[str, float] = {}
        start = time.time()
        for i in range(int(rate * seconds)):
            pause = start + i / rate - time.time()
            if pause > 0:
                time.sleep(pause)
            before = time.time()
            sent[world.post("a1", f"across two NATs {i}")] = before
        try:
            world.wait_delivered_all({op: ["b1"] for op in sent}, timeout=60)
        except AssertionError:
            pass  # counted as loss below
        latencies = [(at - sent[op]) * 1000 for op in sent if (at := world.arrival("b1", op)) is not None]
        figures["nat_delivery_p99_ms"] = round(_percentile(latencies, 0.99), 1) if latencies else None
        figures["nat_delivery_p50_ms"] = round(statistics.median(latencies), 1) if latencies else None
        figures["nat_delivery_loss"] = len(sent) - len(latencies)

        back = world.restart_relay()
        probe = world.post("a1", "is everyone back?")
        figures["relay_restart_recovery_s"] = _recovery(world, {probe: [m for m in MEMBERS if m != "a1"]}, back)

        world.move("a2")
        moved = time.time()
        wanted = {world.post("a2", "from the cafe"): [m for m in MEMBERS if m != "a2"]}
        wanted[world.post("b1", "to the cafe")] = ["a2"]
        figures["address_change_recovery_s"] = _recovery(world, wanted, moved)
    finally:
        cleanup()
    return figures


def _recovery(world: object, wanted: dict[str, list[str]], since: float) -> float | str:
    try:
        done = world.wait_delivered_all(wanted, timeout=RECOVERY_BOUND_S)  # type: ignore[attr-defined]
    except AssertionError:
        return f"not recovered within {RECOVERY_BOUND_S:.0f} s"
    return round(done - since, 2)
