"""Set reconciliation figures: round trips, bytes on the wire and CPU for one topic of 100,000 items.

Two nodes share 100,000 items; the differences are envelopes of 420-480 random bytes whose
ids are their real envelope ids. Placement (a) scatters 100 differences at random times,
50 missing on each side; placement (b) gives the responder the 100 most recent items (the
initiator was offline). Each figure is the worst of five sessions with different salts.

What is counted, honestly: every reconciliation message plus the 5-byte frame header the
stream adapter puts in front of it (p2pnet/framing.py), every envelope either side is told to
push (`take_sendable`, so a wasted push would count) with its own 5-byte frame, over the bytes
of the envelopes that were actually missing. Round trips run from the first message until the
last needed envelope has arrived: message k lands at half-round-trip k, pushes offered right
after sending message k travel with it, pushes learned from the final message leave half a
round trip later.
"""

from __future__ import annotations

import random
import statistics
import time

from bench import Figures, register
from kith.sync.ids import envelope_id
from kith.sync.reconcile import ItemIndex, ReconcileSession

FRAME_BYTES = 5
SHARED = 100_000
DIFFERENCES = 100
TRIALS = 5
_DAY = 86_400


def _shared_items(rng: random.Random, count: int) -> list[tuple[int, bytes]]:
    start = 1_700_000_000
    return [(start + rng.randrange(30 * _DAY), rng.randbytes(32)) for _ in range(count)]


def _envelopes(rng: random.Random, count: int, ts_of: list[int]) -> dict[bytes, tuple[int, bytes]]:
    out = {}
    for n in range(count):
        data = rng.randbytes(rng.randrange(420, 481))
        out[envelope_id(data)] = (ts_of[n], data)
    return out


def run_session(
    a: ItemIndex, b: ItemIndex, envelopes: dict[bytes, tuple[int, bytes]], salt: bytes
) -> tuple[int, float, int, float]:
    """(round trips, bytes ratio, wire bytes, CPU seconds) of one reconciliation and transfer."""
    initiator, responder = ReconcileSession(a, initiator=True, salt=salt), ReconcileSession(b, initiator=False)
    pushes: dict[bytes, int] = {}
    wire = 0
    cpu = 0.0
    count = 0
    started = time.process_time()
    message: bytes | None = initiator.start()
    cpu += time.process_time() - started
    sender, receiver = initiator, responder
    while message is not None:
        count += 1
        wire += len(message) + FRAME_BYTES
        for item_id in sender.take_sendable():
            pushes.setdefault(item_id, count)
        started = time.process_time()
        message = receiver.receive(message)
        cpu += time.process_time() - started
        sender, receiver = receiver, sender
    for side in (initiator, responder):
        for item_id in side.take_sendable():
            pushes.setdefault(item_id, count + 1)
    missing = initiator.have_ids | responder.have_ids
    if set(envelopes) != missing or not set(pushes) >= missing:
        raise AssertionError("reconciliation did not find exactly the missing envelopes")
    payload = sum(len(envelopes[i][1]) for i in missing)
    # A push of something the peer already had (never seen so far) is counted at a typical size.
    pushed = sum(len(envelopes[i][1]) if i in envelopes else 450 for i in pushes) + FRAME_BYTES * len(pushes)
    half_trips = max([count, *pushes.values()])
    return -(-half_trips // 2), (wire + pushed) / payload if payload else 0.0, wire, cpu


def session_cpu(a: ItemIndex, b: ItemIndex, salt: bytes, *, estimates: bool = True) -> tuple[float, float, int, int]:
    """(initiator CPU seconds, responder CPU seconds, messages, bytes on the wire) of one reconciliation.

    CPU is `time.process_time` around each side's own calls, so other processes on a busy
    machine do not count; the two sides run one after the other in this process. Bytes
    count every message with its 5-byte frame header. ``estimates=False`` is the plain
    range-based mode (Negentropy's algorithm, no sketches).
    """
    sides = (
        ReconcileSession(a, initiator=True, salt=salt, estimates=estimates),
        ReconcileSession(b, initiator=False, estimates=estimates),
    )
    cpu = [0.0, 0.0]
    started = time.process_time()
    message: bytes | None = sides[0].start()
    cpu[0] += time.process_time() - started
    turn, messages, wire = 1, 0, 0
    while message is not None:
        messages += 1
        wire += len(message) + FRAME_BYTES
        started = time.process_time()
        message = sides[turn].receive(message)
        cpu[turn] += time.process_time() - started
        turn ^= 1
    return cpu[0], cpu[1], messages, wire


def _scenario(
    seed: int, placement: str, differences: int, shared_count: int | None = None
) -> tuple[ItemIndex, ItemIndex, dict]:
    rng = random.Random(seed)
    shared = _shared_items(rng, SHARED if shared_count is None else shared_count)
    newest = max(ts for ts, _ in shared)
    if placement == "random":
        times = [ts for ts, _ in rng.sample(shared, differences)]
    else:
        times = [newest + 1 + n * 60 for n in range(differences)]
    envelopes = _envelopes(rng, differences, times)
    ids = list(envelopes)
    if placement == "random":
        mine, theirs = ids[: differences // 2], ids[differences // 2 :]
    else:
        mine, theirs = [], ids
    a = ItemIndex(shared + [(envelopes[i][0], i) for i in mine])
    b = ItemIndex(shared + [(envelopes[i][0], i) for i in theirs])
    return a, b, envelopes


def _worst(placement: str, differences: int) -> tuple[int, float, list[float], float]:
    """Worst round trips and ratio over the trials, warm CPU times, and one cold CPU time."""
    trips, ratio, cpu, cold = 0, 0.0, [], 0.0
    for trial in range(TRIALS):
        a, b, envelopes = _scenario(1000 + trial, placement, differences)
        if trial == 0:
            # A fresh index (block caches empty), as right after a node loads the store.
            cold = run_session(a, b, envelopes, bytes(16))[3]
        for index in (a, b):  # the block caches a running node keeps warm
            index.count_and_sum()
            index.population_counts()
        t, r, _wire, c = run_session(a, b, envelopes, bytes([trial + 1]) * 16)
        trips, ratio = max(trips, t), max(ratio, r)
        cpu.append(c)
    return trips, ratio, cpu, cold


@register("reconcile_round_trips", "reconcile_bytes_ratio", "reconcile_ms", "reconcile_cold_ms")
def bench_reconcile_random() -> Figures:
    trips, ratio, cpu, cold = _worst("random", DIFFERENCES)
    return {
        "reconcile_round_trips": trips,
        "reconcile_bytes_ratio": round(ratio, 3),
        "reconcile_ms": round(1000 * statistics.median(cpu)),
        "reconcile_cold_ms": round(1000 * cold),
    }


@register("reconcile_bytes_ratio_clustered", "reconcile_round_trips_clustered")
def bench_reconcile_clustered() -> Figures:
    trips, ratio, _cpu, _cold = _worst("recent", DIFFERENCES)
    return {"reconcile_bytes_ratio_clustered": round(ratio, 3), "reconcile_round_trips_clustered": trips}


@register(
    "reconcile_in_sync_bytes",
    "reconcile_one_diff_bytes",
    "reconcile_one_diff_round_trips",
    "reconcile_10k_bytes_ratio",
    "reconcile_10k_round_trips",
)
def bench_reconcile_shapes() -> Figures:
    shared = _shared_items(random.Random(7), SHARED)
    _trips, _ratio, in_sync, _cpu = run_session(ItemIndex(shared), ItemIndex(shared), {}, bytes(16))
    a, b, envelopes = _scenario(11, "random", 1)
    one_trips, _ratio, one_wire, _cpu = run_session(a, b, envelopes, bytes(16))
    a, b, envelopes = _scenario(12, "random", 10_000)
    big_trips, big_ratio, _wire, _cpu = run_session(a, b, envelopes, bytes(16))
    return {
        "reconcile_in_sync_bytes": in_sync,
        "reconcile_one_diff_bytes": one_wire,
        "reconcile_one_diff_round_trips": one_trips,
        "reconcile_10k_bytes_ratio": round(big_ratio, 3),
        "reconcile_10k_round_trips": big_trips,
    }


ONE_DIFF_SIZES = {"reconcile_100k_one_diff_cpu_ms": 100_000, "reconcile_1m_one_diff_cpu_ms": 1_000_000}
CPU_RUNS = 3


def warm_cpu_ms(shared_count: int, placement: str, differences: int, seed: int = 21) -> tuple[float, float]:
    """(median warm CPU ms of the busier side, cold CPU ms of the busier side) for one topic.

    Cold is the first session on freshly built indexes (right after a node loads its store:
    it builds the plain sketch tables it needs and walks the items to look keys up). The
    second session builds the plain key map; from then on (warm, as on a running node)
    the index keeps both current as items arrive, and sessions cost O(differences).
    """
    a, b, _envelopes = _scenario(seed, placement, differences, shared_count)
    first, second, _messages, _wire = session_cpu(a, b, bytes(16))
    cold = max(first, second)
    session_cpu(a, b, bytes(15) + b"\x01")  # builds the key maps
    warm = []
    for run in range(CPU_RUNS):
        first, second, _messages, _wire = session_cpu(a, b, bytes([run + 2]) * 16)
        warm.append(max(first, second))
    return 1000 * statistics.median(warm), 1000 * cold


@register(*ONE_DIFF_SIZES)
def bench_reconcile_one_diff_cpu() -> Figures:
    """Per-side CPU of a reconciliation that finds one difference, warm (see `warm_cpu_ms`)."""
    return {name: round(warm_cpu_ms(count, "random", 1)[0], 1) for name, count in ONE_DIFF_SIZES.items()}


CASES = (("1 difference", "random", 1), ("100 spread", "random", 100), ("100 clustered", "recent", 100))


def cpu_table(sizes: tuple[int, ...] = (1_000, 10_000, 100_000, 1_000_000)) -> str:
    """The per-side CPU table of docs/RECONCILE.md: warm (cold) ms of the busier side."""
    lines = ["| items | " + " | ".join(name for name, _p, _d in CASES) + " |", "|---|---|---|---|"]
    for count in sizes:
        cells = []
        for _name, placement, differences in CASES:
            warm, cold = warm_cpu_ms(count, placement, differences)
            cells.append(f"{warm:.1f} ({cold:.0f})")
        lines.append(f"| {count:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def wire_table(sizes: tuple[int, ...] = (1_000, 10_000, 100_000, 1_000_000)) -> str:
    """Bytes and messages of kith and of the plain range-based mode (Negentropy's algorithm)."""
    header = "| items | case | kith bytes | kith messages | plain bytes | plain messages |"
    lines = [header, "|---|---|---|---|---|---|"]
    for count in sizes:
        for name, placement, differences in CASES:
            a, b, _envelopes = _scenario(21, placement, differences, count)
            *_cpu, messages, wire = session_cpu(a, b, bytes(16))
            *_cpu, plain_messages, plain_wire = session_cpu(a, b, bytes(16), estimates=False)
            lines.append(f"| {count:,} | {name} | {wire:,} | {messages} | {plain_wire:,} | {plain_messages} |")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    print(wire_table() if sys.argv[1:] == ["wire"] else cpu_table())
