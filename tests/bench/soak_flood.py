"""A hostile peer that floods a circle's gossip topic, and the honest-delivery benchmark.

The flooder is a plain libp2p peer with a random network key (no member or relay key).
It dials a relay and members, subscribes to the circle's topic (its hash is public to
any relay operator or observer) and publishes, at the asked rate of hostile items per
second (forgeries and replays travel in batches of up to `PER_MESSAGE`), a mix of

* garbage: random bytes that are not a gossip batch;
* forgeries: well-formed envelopes of the topic and of a real epoch, with a made-up
  ciphertext and an authenticator under a key it does not have;
* replays: real envelopes of the circle it picked up, re-batched so every message is new
  to gossipsub's seen-cache (replaying an identical message costs a node nothing).

When a node drops it (banned), it dials again. It runs as its own process
(``python -m bench.soak_flood`` with tests/ on the path), so the honest nodes compete with it for CPU as they
would with a real attacker on the same machine, and prints what it did as JSON.

`flood_honest_ratio` compares the rate at which a member's posts reach the other members
with and without the flood.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import selectors
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import TESTS_DIR, Figures, register
from kith.sync.envelope import Envelope

FLOOD_KINDS = ("garbage", "forged", "replay")
PER_MESSAGE = 64
"""At most this many envelopes per hostile gossip message (the most a batch may hold): a
Python libp2p peer publishes only a few hundred messages a second, so batches carry the
asked rate of hostile envelopes, as a real attacker's would."""


async def flood(
    targets: list[str],
    topic: bytes,
    replays: list[bytes],
    *,
    rate: float,
    seconds: float,
    seed: int = 1,
    on_start: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """Publish ``rate`` hostile items per second (garbage messages, forged and replayed
    envelopes) for ``seconds``; returns what was sent, per kind, and the rates reached.
    ``on_start`` is called once, as the first hostile message goes out."""
    import trio

    from kith.identity.keys import NetworkKey
    from kith.p2pnet.gossip import encode_batch, topic_name
    from kith.p2pnet.netstack import NetError, open_netstack

    rand = random.Random(seed)
    valid = [Envelope.decode(data) for data in replays]
    epochs = sorted({e.epoch for e in valid}) or [os.urandom(16)]
    name = topic_name(topic)
    counts: dict[str, float] = {kind: 0 for kind in (*FLOOD_KINDS, "dials", "dial_failures", "publish_errors")}
    forged_ids: list[str] = []

    def message(kind: str) -> tuple[bytes, int]:
        """One gossip message and how many hostile items (envelopes) it carries."""
        if kind == "garbage":
            return os.urandom(rand.randint(1, 400)), 1
        if kind == "forged":
            batch = [
                Envelope.build(
                    topic,
                    rand.choice(epochs),
                    int(time.time()),
                    os.urandom(24),
                    os.urandom(rand.randint(16, 600)),
                    relay_key=os.urandom(32),
                )  # fmt: skip
                for _ in range(rand.randint(1, PER_MESSAGE))
            ]
            forged_ids.extend(e.id.hex() for e in batch)
            return encode_batch([e.data for e in batch]), len(batch)
        replayed = rand.sample(valid, min(len(valid), rand.randint(1, PER_MESSAGE)))
        return encode_batch([e.data for e in replayed]), len(replayed)

    async with open_netstack(NetworkKey.generate(), ["/ip4/127.0.0.1/tcp/0"]) as net:
        await net.subscribe(name)
        net.set_gossip_policy(lambda peer, topic: True)

        def push_at_everyone() -> None:
            """An attacker does not wait to be told who follows the topic (honest nodes tell
            only peers that proved a key): it puts every peer it reaches in its mesh and
            pushes its messages at them, for their validators to refuse."""
            for peer_id in list(net.pubsub.peers):
                net.pubsub.peer_topics.setdefault(name, set()).add(peer_id)
                net.router.mesh.setdefault(name, set()).add(peer_id)

        async def redial() -> None:
            while True:
                push_at_everyone()
                connected = set(net.connected_peers())
                for address in targets:
                    if address.rsplit("/p2p/", 1)[-1] in connected:
                        continue
                    counts["dials"] += 1
                    try:
                        await net.connect(address, timeout=2)
                    except NetError:
                        counts["dial_failures"] += 1
                await trio.sleep(0.5)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(redial)
            await trio.sleep(1.0)  # let the meshes form
            kinds = [k for k in FLOOD_KINDS if k != "replay" or valid]
            start = trio.current_time()
            counts["started_at"] = time.time()  # wall clock, as the honest nodes' arrivals are
            on_start()
            sent = messages = 0
            while trio.current_time() - start < seconds:
                # (sleep_until: a due time that passed between a check and the sleep would
                # make trio.sleep's argument negative, which it refuses; CI met that once.)
                await trio.sleep_until(start + sent / rate)
                kind = kinds[messages % len(kinds)]
                data, items = message(kind)
                try:
                    await net.publish(name, data)
                    counts[kind] += items
                except Exception:  # noqa: BLE001 - a publish to a peer that just dropped us
                    counts["publish_errors"] += 1
                sent += items
                messages += 1
            counts["ended_at"] = time.time()
            counts["seconds"] = round(trio.current_time() - start, 2)
            counts["rate"] = round(sent / max(counts["seconds"], 1e-9))
            counts["messages_per_s"] = round(messages / max(counts["seconds"], 1e-9))
            nursery.cancel_scope.cancel()
    return {"counts": counts, "forged_ids": forged_ids, "peer_id": net.peer_id}


def stored_envelopes(store: Path, topic: bytes | None = None) -> list[bytes]:
    """Envelope bytes in a node's store (read-only; fine while the node runs, WAL)."""
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        if topic is None:
            return [row[0] for row in db.execute("SELECT data FROM envelopes")]
        return [row[0] for row in db.execute("SELECT data FROM envelopes WHERE topic = ?", (topic,))]
    finally:
        db.close()


def _live_topic(store: Path) -> bytes:
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT topic FROM envelopes ORDER BY seq DESC LIMIT 1").fetchone()
    finally:
        db.close()
    if row is None:
        raise RuntimeError("the relay stored nothing to replay")
    return bytes(row[0])


def stored_ids(store: Path) -> set[str]:
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        return {row[0].hex() for row in db.execute("SELECT id FROM envelopes")}
    finally:
        db.close()


def start_flooder(targets: list[str], topic: bytes, replays: list[bytes], *, rate: float, seconds: float,
                  workdir: Path) -> subprocess.Popen[str]:  # fmt: skip
    """Run `flood` in its own process; read its JSON report with `finish_flooder`."""
    replay_file = workdir / "replays.hex"
    replay_file.write_text("\n".join(data.hex() for data in replays))
    args = [sys.executable, "-m", "bench.soak_flood", "--topic", topic.hex(), "--rate", str(rate),
            "--seconds", str(seconds), "--replays", str(replay_file), *targets]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


FLOODING = "flooding"
"""The flooder's first line on stdout, once it is sending (its report follows when it is done)."""


def wait_flooding(proc: subprocess.Popen[str], timeout: float = 120) -> None:
    """Return once the flooder is sending: on a busy machine its start takes seconds, and a
    phase measured "during the flood" must not begin before the flood does. A liveness bound."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise RuntimeError(f"the flooder did not start sending within {timeout} s")
    line = proc.stdout.readline().strip()
    if line != FLOODING:
        _out, err = proc.communicate(timeout=30)
        raise RuntimeError(f"the flooder failed to start: {line!r} {err.strip()[-2000:]}")


def finish_flooder(proc: subprocess.Popen[str], timeout: float = 120) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"the flooder failed: {err.strip()[-2000:]}")
    return json.loads(out)


def main(argv: list[str] | None = None) -> None:
    import trio

    parser = argparse.ArgumentParser(description="flood a kith topic with hostile gossip (tests only)")
    parser.add_argument("targets", nargs="+")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--rate", type=float, default=2000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--replays")
    args = parser.parse_args(argv)
    replays = [bytes.fromhex(line) for line in Path(args.replays).read_text().split()] if args.replays else []
    logging.basicConfig(level=logging.ERROR)  # py-libp2p is chatty about the connections we lose

    def started() -> None:
        print(FLOODING, flush=True)

    report = trio.run(lambda: flood(args.targets, bytes.fromhex(args.topic), replays, rate=args.rate,
                                    seconds=args.seconds, on_start=started))  # fmt: skip
    print(json.dumps(report))


if __name__ == "__main__":
    main()


# --- the benchmark -------------------------------------------------------------------


def _honest_phase(world: Any, author: Any, circle: str, recipients: list[Any], *, rate: float,
                  seconds: float, grace_s: float = 2.0) -> dict[str, Any]:  # fmt: skip
    """The author posts at ``rate`` for ``seconds``; how fast do the posts reach the others?"""
    sent: dict[str, float] = {}
    start = time.time()
    for i in range(int(rate * seconds)):
        pause = start + i / rate - time.time()
        if pause > 0:
            time.sleep(pause)
        sent[world.call(author, "post", circle=circle, text=f"honest post {i} " + "x" * 100)["id"]] = time.time()
    end = time.time()
    time.sleep(grace_s)
    horizon = end + grace_s
    delivered = 0
    late = 0
    arrivals: list[float] = []
    for peer in recipients:
        seen = {op["id"]: at for at, p in list(peer.listener.arrivals) for op in p.get("ops", ()) if op["id"] in sent}
        delivered += sum(1 for at in seen.values() if at <= horizon)
        late += len(sent) - len(seen)
        arrivals += seen.values()
    return {
        "posted": len(sent),
        "per_s": delivered / len(recipients) / (horizon - start),
        "undelivered": late,
        "arrivals": sorted(arrivals),
    }


def run_flood_benchmark(*, members: int = 4, honest_rate: float = 20.0, seconds: float = 15.0,
                        flood_rate: float = 2000.0) -> dict[str, Any]:  # fmt: skip
    """Honest delivery without and with a flooder; and whether any flooder byte was stored."""
    from bench.cluster import wait_for
    from bench.soak_load import Load
    from bench.soak_world import World

    with tempfile.TemporaryDirectory(prefix="kith-flood-") as tmp:
        root = Path(tmp)
        world = World(root, members=members, relays=1)
        try:
            world.start_all()
            Load(world, rate=1, churn_every_s=1e9).setup_circles(1, joined_share=1.0)
            circle = next(iter(world.circles))
            author, *others = world.members
            quiet = _honest_phase(world, author, circle, others, rate=honest_rate, seconds=seconds)

            def agreed() -> bool:
                return len({world.call(m, "state_hash", circle=circle)["state_hash"] for m in world.members}) == 1

            wait_for(agreed)
            before = {p.name: stored_ids(p.home.store) for p in world.everyone()}
            # The circle's current epoch topic: where the relay stored the last honest post.
            topic = _live_topic(world.relays[0].home.store)
            replays = stored_envelopes(world.relays[0].home.store, topic)
            targets = [p.address for p in world.everyone()]
            flooder = start_flooder(targets, topic, replays, rate=flood_rate, seconds=seconds + 4, workdir=root)
            wait_flooding(flooder)
            flooded = _honest_phase(world, author, circle, others, rate=honest_rate, seconds=seconds)
            attack = finish_flooder(flooder)
            wait_for(agreed, timeout=120)
            statuses = {p.name: world.call(p, "status") for p in world.everyone()}
        finally:
            world.stop_all()
        after = {p.name: stored_ids(p.home.store) for p in world.everyone()}
    forged = set(attack["forged_ids"])
    gained = {name: len(after[name] - before[name]) for name in after}
    return {
        "quiet": quiet,
        "flooded": flooded,
        "ratio": round(flooded["per_s"] / quiet["per_s"], 3) if quiet["per_s"] else None,
        "attack": attack["counts"],
        "forged_stored": sum(len(forged & ids) for ids in after.values()),
        "gained": gained,
        "honest_posted_during_flood": flooded["posted"],
        # Deliveries while the flooder was sending (its own start and end, on the same wall clock).
        "honest_delivered_during_flood": sum(
            1 for at in flooded["arrivals"] if attack["counts"]["started_at"] <= at <= attack["counts"]["ended_at"]
        ),
        "banned_by": [n for n, s in statuses.items() if any("banned" in k or "invalid" in k for k in s["refused"])],
        "refused": {n: s["refused"] for n, s in statuses.items()},
        "gossip_rejected": {n: (s["gossip"] or {}).get("rejected_messages") for n, s in statuses.items()},
    }


@register("flood_honest_ratio", "flood_honest_ops_per_s", "flood_hostile_per_s", "flood_messages_per_s", "flood_stored")
def bench_flood() -> Figures:
    result = run_flood_benchmark()
    return {
        "flood_honest_ratio": result["ratio"],
        "flood_honest_ops_per_s": round(result["flooded"]["per_s"], 1),
        "flood_hostile_per_s": result["attack"]["rate"],
        "flood_messages_per_s": result["attack"]["messages_per_s"],
        "flood_stored": result["forged_stored"]
        + sum(g - result["honest_posted_during_flood"] for g in result["gained"].values()),  # fmt: skip
    }
