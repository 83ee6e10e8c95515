"""A relay serving many circles: does it forward in real time? (issue 16, "Relays for many circles")

`relay_100_circles_forward_p99_ms`: one real relay (`kith relay run`, its own process)
serves 100 circles with 20 connected members each, while members post 10 envelopes a
second, spread over the circles, for 60 s. The window opens 30 s after the last member is
ready, so the aftermath of all of them connecting at once (a relay's restart, not its
steady state) is left out. The figure is the 99th percentile, over every
(post, other member of its circle) pair, of the time from the author handing the envelope
to gossip to the envelope reaching that member through the relay. A pair that never
arrives (within the window and a grace long enough for reconciliation to repair it) counts
as infinitely late. Also reported: the median, the relay's CPU share over the window (its
process CPU time from /proc divided by the wall time), its resident memory, the pairs that
never arrived (`relay_100_circles_lost`) and those that came by reconciliation instead of
gossip (`relay_100_circles_via_sync`: delivered, but not in real time).

What is real and what is simulated:

* **The relay** is the real `kith relay run` process with its default settings. It is
  allowed the circles the way an operator does it (`relay.allow` with each circle's relay
  token) and knows nothing of the simulation.
* **The circles** are real: one real `kith node` process creates the 100 circles and, for
  each, writes the posts it will carry (`post_many`: real ops, signed and sealed into
  envelopes of the circle's epoch topic) and issues its relay token. That node is then
  stopped; it never connects to the relay.
* **The members** are simulated: each member host is a real kith `Node` running in relay
  mode (it holds the circles' relay keys from the same tokens, never an epoch key), so
  towards the relay it is everything a member's node is on the wire: a libp2p host that
  dials the relay, proves each circle's relay key in real sync sessions (`sync.access`),
  subscribes to the circles' topics, reconciles every 30 s as members do, and publishes
  envelopes the relay's gate checks like any other (topic, epoch, authenticator). It does
  not open or fold what it receives (a relay-mode node cannot), so what it costs its own
  process is less than a member's node would; the relay cannot tell the difference. The
  posts it publishes are the real envelopes the circles' founder wrote.
* **How many hosts:** 2,000 py-libp2p hosts do not fit on 2 cores beside the relay, so by
  default 100 hosts stand in for the 2,000 memberships: host ``h`` is a member of 20
  circles, and each circle has 20 distinct hosts (a sliding window: circle ``c`` has hosts
  ``c*H/C`` to ``c*H/C + 19``, modulo H). So every circle's topic has 20 subscribers at
  the relay, each a separate libp2p peer with its own connection, as 20 members' nodes
  would be; the relay holds 100 connections instead of 2,000. The hosts run in a few
  child processes (``python -m bench.relay_circles PLAN``, tests/ on the path).

All processes share one machine (2 cores here), so the members' own CPU competes with the
relay's; each child reports its CPU share too.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import TESTS_DIR, Figures, register
from bench.cluster import NodeProcess, make_home, passphrase_file
from kith.sync.envelope import epoch_topic
from kith.sync.relaytoken import RelayToken

READY = "ready"
"""A child's first line on stdout, once each of its hosts has proved every topic to the relay and subscribed."""


# --- the plan -------------------------------------------------------------------------


@dataclass
class Plan:
    """Who is a member of which circle, and which post goes out when, from whom."""

    circles: int
    members: int
    hosts: int
    rate: float
    seconds: float
    seed: int = 16

    def members_of(self, circle: int) -> list[int]:
        start = circle * self.hosts // self.circles
        return [(start + j) % self.hosts for j in range(self.members)]

    def posts_per_circle(self) -> int:
        return -(-int(self.rate * self.seconds) // self.circles)

    def schedule(self) -> list[tuple[float, int, int, int]]:
        """(offset s, circle, author host, which of the circle's posts): the circles in a
        seeded shuffle, each round of them once, so every circle carries its share; the
        authors of a circle take turns."""
        rand = random.Random(self.seed)
        order: list[int] = []
        while len(order) < int(self.rate * self.seconds):
            round_ = list(range(self.circles))
            rand.shuffle(round_)
            order += round_
        used = [0] * self.circles
        posts = []
        for i, circle in enumerate(order[: int(self.rate * self.seconds)]):
            members = self.members_of(circle)
            posts.append((i / self.rate, circle, members[used[circle] % len(members)], used[circle]))
            used[circle] += 1
        return posts


@dataclass
class World:
    """The relay, the circles' tokens and topics, and each circle's envelopes to publish."""

    relay: NodeProcess
    tokens: list[str] = field(default_factory=list)
    topics: list[bytes] = field(default_factory=list)
    pools: list[list[bytes]] = field(default_factory=list)


def _envelopes_of(store: Path, topic: bytes) -> list[bytes]:
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        return [row[0] for row in db.execute("SELECT data FROM envelopes WHERE topic = ? ORDER BY seq", (topic,))]
    finally:
        db.close()


def make_world(root: Path, plan: Plan) -> World:
    """Start the relay; make the circles on a real member node, allow them on the relay."""
    secret = passphrase_file(root)
    relay = NodeProcess(make_home(root, "relay", relay=True), secret, relay=True).start()
    world = World(relay)
    founder = NodeProcess(make_home(root, "founder"), secret).start()
    try:
        for c in range(plan.circles):
            circle = founder.call("circle.create", name=f"Circle {c}")["id"]
            texts = [f"circle {c} post {i}: " + "words of support " * 6 for i in range(plan.posts_per_circle())]
            founder.call("post_many", circle=circle, texts=texts)
            world.tokens.append(founder.call("circle.relay_token", circle=circle, label=f"bench {c}")["token"])
    finally:
        founder.stop()
    for token in world.tokens:
        (relay_key,) = RelayToken.decode(token).relay_keys.values()
        world.topics.append(epoch_topic(relay_key))
        world.pools.append(_envelopes_of(founder.home.store, world.topics[-1]))
        relay.call("relay.allow", token=token)
    return world


def child_plans(world: World, plan: Plan, processes: int, workdir: Path) -> list[dict[str, Any]]:
    """What each child process runs: its hosts (with their circles' tokens) and their posts."""
    circles_of: dict[int, list[int]] = {h: [] for h in range(plan.hosts)}
    for c in range(plan.circles):
        for h in plan.members_of(c):
            circles_of[h].append(c)
    children: list[dict[str, Any]] = [
        {"relay": world.relay.address, "workdir": str(workdir / f"child{i}"), "hosts": [], "posts": []}
        for i in range(processes)
    ]
    for h in range(plan.hosts):
        tokens = [world.tokens[c] for c in circles_of[h]]
        children[h % processes]["hosts"].append({"name": f"m{h}", "tokens": tokens})
    for at, circle, author, k in plan.schedule():
        data = world.pools[circle][k].hex()
        children[author % processes]["posts"].append({"at": at, "host": f"m{author}", "data": data})
    return children


# --- a child: simulated members -------------------------------------------------------


async def _run_hosts(spec: dict[str, Any], seconds: float, grace_s: float) -> dict[str, Any]:
    import trio

    from kith.identity.keystore import TEST_KDF, KeystoreData
    from kith.p2pnet.api import allow_relay_topic
    from kith.p2pnet.config import NodeConfig
    from kith.p2pnet.gossip import topic_name
    from kith.p2pnet.home import Home
    from kith.p2pnet.keyfile import Keystore
    from kith.p2pnet.node import Node
    from kith.sync.envelope import Envelope

    arrivals: dict[str, dict[str, tuple[float, str]]] = {}

    class Member(Node):
        """A relay-mode node that notes when each envelope first reaches it, and how."""

        async def accept(
            self, topic: bytes, envelopes: list[Envelope], source: str, *, via_gossip: bool = False
        ) -> Any:
            now = time.time()
            seen = arrivals.setdefault(self.home.root.name, {})
            for envelope in envelopes:
                seen.setdefault(envelope.id.hex(), (now, "gossip" if via_gossip else "sync"))
            return await super().accept(topic, envelopes, source, via_gossip=via_gossip)

    relay_peer = spec["relay"].rsplit("/p2p/", 1)[-1]
    config = NodeConfig(listen=["/ip4/127.0.0.1/tcp/0"], bootstrap=[spec["relay"]], fsync=False)
    nodes: dict[str, Member] = {}
    for host in spec["hosts"]:
        home = Home(Path(spec["workdir"]) / host["name"])
        home.ensure()
        keystore = Keystore.create(home.keystore, "throwaway bench passphrase", KeystoreData.generate(None), TEST_KDF)
        for token in host["tokens"]:
            allow_relay_topic(keystore.data.extra, RelayToken.decode(token))
        keystore.save()
        nodes[host["name"]] = Member(home, keystore, config, relay=True)

    def ready(node: Member) -> bool:
        """Proved every circle to the relay and heard it follows them (not: in the relay's
        mesh, which the member cannot see and which is part of what is measured)."""
        following = node.net.pubsub.peer_topics
        return set(node.served_topics()) <= node.proved.get(relay_peer, set()) and all(
            relay_peer in {p.to_base58() for p in following.get(topic_name(t), ())} for t in node.served_topics()
        )

    sent: dict[str, float] = {}
    async with trio.open_nursery() as nursery:
        for node in nodes.values():
            await nursery.start(node.run)
        with trio.fail_after(600):
            while not all(ready(n) for n in nodes.values()):
                await trio.sleep(0.2)
        print(READY, flush=True)
        start = float(await trio.to_thread.run_sync(sys.stdin.readline))
        for post in sorted(spec["posts"], key=lambda p: p["at"]):
            await trio.sleep(max(0.0, start + post["at"] - time.time()))
            node, envelope = nodes[post["host"]], Envelope.decode(bytes.fromhex(post["data"]))
            node.disk.store.add_batch([envelope])
            sent[envelope.id.hex()] = time.time()
            node.publish_nowait(envelope)
        await trio.sleep(max(0.0, start + seconds + grace_s - time.time()))
        for node in nodes.values():
            node.stop()
    return {"sent": sent, "arrivals": arrivals}


def main(argv: list[str] | None = None) -> None:
    import trio

    args = argv if argv is not None else sys.argv[1:]
    spec = json.loads(Path(args[0]).read_text())
    logging.basicConfig(level=logging.ERROR)
    report = trio.run(_run_hosts, spec, float(args[1]), float(args[2]))
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()


# --- the benchmark --------------------------------------------------------------------


def _cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def _start_children(
    specs: list[dict[str, Any]], root: Path, seconds: float, grace_s: float
) -> list[subprocess.Popen[str]]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")]))}
    children = []
    for i, spec in enumerate(specs):
        path = root / f"plan{i}.json"
        path.write_text(json.dumps(spec))
        args = [sys.executable, "-m", "bench.relay_circles", str(path), str(seconds), str(grace_s)]
        errors = open(root / f"child{i}.err", "w")  # noqa: SIM115 - the child writes to it until it ends
        children.append(
            subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, text=True, env=env)
        )
    return children


def _wait_ready(children: list[subprocess.Popen[str]], root: Path, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    for i, child in enumerate(children):
        assert child.stdout is not None
        line = child.stdout.readline().strip()  # bounded: the child itself gives up after 600 s
        if line != READY or time.monotonic() > deadline:
            child.kill()
            raise RuntimeError(
                f"member child {i} did not get ready: {line!r} {(root / f'child{i}.err').read_text()[-2000:]}"
            )


def latencies(plan: Plan, reports: list[dict[str, Any]], ids: list[list[str]]) -> dict[str, Any]:
    """Every (post, other member of its circle) pair: its latency in ms (inf if it never came), and how it came."""
    sent: dict[str, float] = {}
    arrivals: dict[str, dict[str, tuple[float, str]]] = {}
    for report in reports:
        sent.update(report["sent"])
        for host, seen in report["arrivals"].items():
            arrivals.setdefault(host, {}).update(seen)
    pairs: list[float] = []
    via: dict[str, int] = {"gossip": 0, "sync": 0}
    for at, circle, author, k in plan.schedule():
        del at
        op = ids[circle][k]
        for host in plan.members_of(circle):
            if host == author:
                continue
            arrival = arrivals.get(f"m{host}", {}).get(op)
            if arrival is None or op not in sent:
                pairs.append(float("inf"))
                continue
            pairs.append((arrival[0] - sent[op]) * 1000)
            via[arrival[1]] += 1
    return {"pairs": pairs, "via": via, "sent": len(sent)}


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def run_relay_circles(*, circles: int = 100, members: int = 20, hosts: int = 100, processes: int = 4,
                      rate: float = 10.0, seconds: float = 60.0, grace_s: float = 40.0,
                      settle_s: float = 30.0) -> dict[str, Any]:  # fmt: skip
    """The whole run; returns the latencies, the relay's CPU and memory, the children's CPU.

    The window opens ``settle_s`` after the last member is ready: the seconds in which all
    the members connect at once and run their first sessions (a relay's restart, not its
    steady state) are left out."""
    from kith.sync.envelope import Envelope

    plan = Plan(circles, members, hosts, rate, seconds)
    with tempfile.TemporaryDirectory(prefix="kith-relay-circles-") as tmp:
        root = Path(tmp)
        world = make_world(root, plan)
        children: list[subprocess.Popen[str]] = []
        try:
            assert world.relay.proc is not None
            pid = world.relay.proc.pid
            ids = [[Envelope.decode(data).id.hex() for data in pool] for pool in world.pools]
            children = _start_children(child_plans(world, plan, processes, root), root, seconds, grace_s)
            _wait_ready(children, root)
            time.sleep(settle_s)
            start = time.time() + 0.5
            for child in children:
                assert child.stdin is not None
                child.stdin.write(f"{start}\n")
                child.stdin.flush()
            time.sleep(max(0.0, start - time.time()))
            pids = [pid] + [child.pid for child in children]
            cpu_before, load_before = [_cpu_s(p) for p in pids], os.getloadavg()[0]
            time.sleep(seconds)
            cpu = [(_cpu_s(p) - before) / seconds for p, before in zip(pids, cpu_before, strict=True)]
            rss = _rss_mb(pid)
            status = world.relay.call("status")
            reports = []
            for i, child in enumerate(children):
                out, _ = child.communicate(timeout=grace_s + 120)
                if child.returncode != 0:
                    raise RuntimeError(f"member child {i} failed: {(root / f'child{i}.err').read_text()[-2000:]}")
                reports.append(json.loads(out.strip().splitlines()[-1]))
        finally:
            for child in children:
                if child.poll() is None:
                    child.kill()
                    child.wait(timeout=30)
            world.relay.stop()
    result = latencies(plan, reports, ids)
    result.update(
        relay_cpu_share=round(cpu[0], 3),
        relay_rss_mb=round(rss, 1),
        members_cpu_share=round(sum(cpu[1:]), 3),
        load_before=load_before,
        relay_refused=status["refused"],
        relay_peers=len(status["peers"]),
    )
    return result


@register(
    "relay_100_circles_forward_p99_ms",
    "relay_100_circles_forward_p50_ms",
    "relay_100_circles_cpu_share",
    "relay_100_circles_rss_mb",
    "relay_100_circles_lost",
    "relay_100_circles_via_sync",
    "relay_100_circles_members_cpu_share",
)
def bench_relay_circles() -> Figures:
    result = run_relay_circles()
    pairs = result["pairs"]
    p99, p50 = _percentile(pairs, 0.99), statistics.median(pairs)
    return {
        "relay_100_circles_forward_p99_ms": round(p99, 1) if p99 != float("inf") else None,
        "relay_100_circles_forward_p50_ms": round(p50, 1) if p50 != float("inf") else None,
        "relay_100_circles_cpu_share": result["relay_cpu_share"],
        "relay_100_circles_rss_mb": result["relay_rss_mb"],
        "relay_100_circles_lost": sum(1 for p in pairs if p == float("inf")),
        "relay_100_circles_via_sync": result["via"]["sync"],
        "relay_100_circles_members_cpu_share": result["members_cpu_share"],
    }
