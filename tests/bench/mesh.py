"""Mesh figures, measured with real `kith` processes on loopback.

* ``gossip_p99_ms``: a 3-node line (member A - relay R - member C); A posts 100 ops/s for
  30 s; the latency of each op is from just before A is asked to post it until C's control
  API reports it folded. Also reports p50 and the loss (which must be zero).
* ``mesh_ops_per_s``: the same line; A posts 10,000 ops as fast as it can (in batches);
  the rate at which they arrive, folded, at C.
* ``partition_heal_s``: six member processes in two groups of three, each group writing
  500 ops while cut off; the time from the first cross link to identical state hashes on
  all six.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import Figures, register
from bench.cluster import EventListener, NodeProcess, make_home, passphrase_file, wait_for


def _line(root: Path) -> tuple[NodeProcess, NodeProcess, NodeProcess, str]:
    secret = passphrase_file(root)
    a = NodeProcess(make_home(root, "a"), secret).start()
    c = NodeProcess(make_home(root, "c"), secret).start()
    relay = NodeProcess(make_home(root, "relay", relay=True), secret, relay=True).start()
    circle = a.call("circle.create", name="Bench line")["id"]
    relay.call("relay.allow", token=a.call("circle.relay_token", circle=circle)["token"])
    a.call("connect", address=relay.address)
    c.call("connect", address=relay.address)
    c.call("join", code=a.call("invite.create", circle=circle)["code"])
    wait_for(lambda: _hash(c, circle) == _hash(a, circle), timeout=60)
    return a, relay, c, circle


def _hash(node: NodeProcess, circle: str) -> str | None:
    try:
        return node.call("state_hash", circle=circle)["state_hash"]
    except Exception:  # noqa: BLE001 - not there yet
        return None


def _stop(*nodes: NodeProcess) -> None:
    for node in nodes:
        node.stop()


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


@register("gossip_p99_ms", "gossip_p50_ms", "gossip_loss")
def bench_gossip_latency(rate: int = 100, seconds: float = 30.0) -> Figures:
    with tempfile.TemporaryDirectory(prefix="kith-bench-") as tmp:
        a, relay, c, circle = _line(Path(tmp))
        listener = EventListener(c.home, ["ops"])
        sent: dict[str, float] = {}
        try:
            total = int(rate * seconds)
            start = time.time()
            for i in range(total):
                due = start + i / rate
                pause = due - time.time()
                if pause > 0:
                    time.sleep(pause)
                before = time.time()
                sent[a.call("post", circle=circle, text=f"latency probe {i}")["id"]] = before
            wait_for(lambda: len(_arrived(listener, sent)) >= len(sent), timeout=60, interval=0.2)
        except AssertionError:
            pass
        finally:
            listener.close()
            _stop(a, relay, c)
        arrived = _arrived(listener, sent)
        latencies = [(arrived[op] - sent[op]) * 1000 for op in arrived]
        return {
            "gossip_p99_ms": round(_percentile(latencies, 0.99), 1) if latencies else None,
            "gossip_p50_ms": round(statistics.median(latencies), 1) if latencies else None,
            "gossip_loss": len(sent) - len(arrived),
        }


def _arrived(listener: EventListener, sent: dict[str, Any]) -> dict[str, float]:
    first: dict[str, float] = {}
    for at, params in list(listener.arrivals):
        for op in params.get("ops", ()):
            if op["id"] in sent and op["id"] not in first:
                first[op["id"]] = at
    return first


@register("mesh_ops_per_s")
def bench_mesh_throughput(count: int = 10_000, batch: int = 200) -> Figures:
    with tempfile.TemporaryDirectory(prefix="kith-bench-") as tmp:
        a, relay, c, circle = _line(Path(tmp))
        listener = EventListener(c.home, ["ops"])
        sent: dict[str, float] = {}
        try:
            for start in range(0, count, batch):
                texts = [f"throughput {i} " + "x" * 120 for i in range(start, start + batch)]
                now = time.time()
                for op_id in a.call("post_many", circle=circle, texts=texts)["ids"]:
                    sent[op_id] = now
            wait_for(lambda: len(_arrived(listener, sent)) >= len(sent), timeout=120, interval=0.2)
        finally:
            listener.close()
            _stop(a, relay, c)
        arrived = sorted(_arrived(listener, sent).values())
        first_sent = min(sent.values())
        return {"mesh_ops_per_s": round(len(arrived) / (arrived[-1] - first_sent)) if arrived else 0}


@register("partition_heal_s")
def bench_partition_heal(per_side: int = 500) -> Figures:
    with tempfile.TemporaryDirectory(prefix="kith-bench-") as tmp:
        root = Path(tmp)
        secret = passphrase_file(root)
        nodes = [NodeProcess(make_home(root, f"n{i}"), secret).start() for i in range(6)]
        try:
            circle = nodes[0].call("circle.create", name="Bench partition")["id"]
            code = nodes[0].call("invite.create", circle=circle, uses=5)["code"]
            for node in nodes[1:]:
                node.call("connect", address=nodes[0].address)
                node.call("join", code=code)
            wait_for(lambda: len({_hash(n, circle) for n in nodes}) == 1, timeout=60)
            left, right = nodes[:3], nodes[3:]
            for node in right:
                node.call("disconnect", peer=nodes[0].address.rsplit("/p2p/", 1)[1])
            for node in right[1:]:
                node.call("connect", address=right[0].address)
            for group in (left, right):
                for writer in range(3):
                    share = per_side // 3 + (1 if writer < per_side % 3 else 0)
                    texts = [f"side {group[0].address[-6:]} writer {writer} op {i}" for i in range(share)]
                    group[writer].call("post_many", circle=circle, texts=texts)
            for group in (left, right):
                wait_for(lambda g=group: len({_hash(n, circle) for n in g}) == 1, timeout=60)
            start = time.time()
            right[0].call("connect", address=left[0].address)
            wait_for(lambda: len({_hash(n, circle) for n in nodes}) == 1, timeout=120, interval=0.02)
            healed = time.time() - start
        finally:
            _stop(*nodes)
        return {"partition_heal_s": round(healed, 2)}
