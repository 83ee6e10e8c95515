"""The soak: many real member and relay processes, random load, faults, then the proof.

`run_soak` starts the world (soak_world.py), sets circles up with real invites, runs the
load (soak_load.py) and the faults (soak_faults.py) side by side for the configured time,
stops both, lets the mesh settle, checks convergence on the live nodes and audits every
store (soak_check.py). `kith bench soak --minutes N` runs the full soak (20 members, 2
relays) and prints the whole report; `kith bench soak_p99_ms ...` runs a shorter one.

Latency is measured per (op, recipient): from just before the author's node was asked to
make the op until the recipient's node reported it folded (its ``ops`` event). The
headline p99 (``soak_p99_ms``) is over the pairs whose journey overlapped no fault (no
node down or still catching up after a restart, no partition, no full disk while the op
travelled): members reach each other through relays and the people who invited them,
so a fault anywhere can hold an op up on purpose. ``p99_all_ms`` includes every pair;
``p99_settled_ms`` also leaves out the pairs that travelled while a fault's backlog was
still being carried (until the last op that overlapped the fault had reached everyone:
each fault's ``backlog_s``), as the headline already does for a restarted node.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import Figures, register
from bench.soak_check import audit, converge
from bench.soak_faults import ALL_FAULTS, DiskFullHome, Faults
from bench.soak_load import Load, wait_until_joined
from bench.soak_world import World

HOUR = 3600.0


@dataclass
class SoakSettings:
    members: int = 20
    relays: int = 2
    seconds: float = 150.0
    rate: float = 8.0
    """Actions per second across the whole cluster (membership churn comes on top)."""
    circles: int = 3
    churn_every_s: float = 6.0
    faults: tuple[str, ...] = ALL_FAULTS
    fault_gap_s: float = 8.0
    partition_s: float = 20.0
    down_s: tuple[float, float] = (3.0, 10.0)
    """How long a killed node stays down (uniform between the two)."""
    skews_h: dict[int, float] = field(default_factory=lambda: {3: 3.0, 6: -5.0, 9: 8.0})
    """Member index -> clock skew in hours, for the whole run."""
    converge_timeout_s: float = 300.0
    node_config: dict[str, Any] = field(default_factory=dict)
    seed: int = 7


def run_soak(settings: SoakSettings, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    say = progress or (lambda text: None)
    with tempfile.TemporaryDirectory(prefix="kith-soak-") as tmp:
        root = Path(tmp)
        disk: DiskFullHome | None = None
        disk_note = None
        homes: dict[int, Path] = {}
        if "disk_full" in settings.faults:
            disk_note = DiskFullHome.why_unavailable()
            if disk_note is None:
                disk = DiskFullHome(root / "small-disk")
                disk.mount()
                homes[settings.members - 1] = disk.mountpoint
        try:
            try:
                report = _run(settings, root, disk, disk_note, homes, say)
            except Exception as exc:
                keep_homes(root, {"error": repr(exc)}, say)
                raise
            if (problems := soak_ok(report)) or os.environ.get(KEEP_ENV, "").endswith("+"):
                keep_homes(root, {**report, "problems": problems}, say)
            return report
        finally:
            if disk is not None:
                disk.unmount()


KEEP_ENV = "KITH_SOAK_KEEP"
"""A directory: a soak that finds a problem copies every node's home there (logs, stores,
keystores; not sockets) with its report, for a post-mortem; the homes are gone otherwise.
Ending it in ``+`` keeps the homes of a run that passed too."""
PAIRS_ENV = "KITH_SOAK_PAIRS"
"""A file to write every (op, recipient) pair's times and cause to (`_dump_pairs`)."""


def keep_homes(root: Path, report: dict[str, Any], say: Callable[[str], None]) -> Path | None:
    """Copy the soak's homes and ``report`` to `KEEP_ENV`'s directory, if it is set."""
    keep = os.environ.get(KEEP_ENV, "").removesuffix("+")
    if not keep:
        return None
    target = Path(keep) / f"soak-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    shutil.copytree(root, target, ignore=shutil.ignore_patterns("*.sock", "lost+found"))
    (target / "report.json").write_text(json.dumps(report, indent=1, default=str))
    say(f"problems found: every home copied to {target}")
    return target


def _run(
    settings: SoakSettings,
    root: Path,
    disk: DiskFullHome | None,
    disk_note: str | None,
    homes: dict[int, Path],
    say: Callable[[str], None],
) -> dict[str, Any]:
    skews = {i: h * HOUR for i, h in settings.skews_h.items() if i < settings.members}
    world = World(root, members=settings.members, relays=settings.relays, skews=skews,
                  config=settings.node_config, homes=homes, seed=settings.seed)  # fmt: skip
    started = time.time()
    try:
        say(f"starting {settings.relays} relays and {settings.members} members")
        world.start_all()
        load = Load(world, rate=settings.rate, churn_every_s=settings.churn_every_s)
        say(f"setting up {settings.circles} circles with invites")
        load.setup_circles(settings.circles)
        setup_s = time.time() - started
        disk_peer = world.members[settings.members - 1] if disk is not None else None
        faults = Faults(world, load, plan=settings.faults, gap_s=settings.fault_gap_s,
                        partition_s=settings.partition_s, down_s=settings.down_s,
                        disk=(disk_peer, disk) if disk_peer is not None and disk is not None else None)  # fmt: skip
        say(f"load and faults for {settings.seconds:.0f} s")
        stop = threading.Event()
        load_start = time.time()
        until = load_start + settings.seconds
        fault_thread = threading.Thread(target=faults.run, args=(until, stop), daemon=True)
        fault_thread.start()
        try:
            load.run(until, stop)
            faults.first_round.wait(timeout=300)
        finally:
            stop.set()
            fault_thread.join(timeout=300)
        load_s = time.time() - load_start
        faults.watch_crashes()
        for peer in world.everyone():
            if not peer.up:
                world.restart(peer)
        say("load stopped; waiting for every circle to agree")
        wait_until_joined(load, timeout=60)
        convergence = converge(world, load, settings.converge_timeout_s)
        faults.watch_crashes()
        world.sample_rss()
        latencies = _latencies(world, load, faults)
    finally:
        world.stop_all()
    say("auditing every store")
    checked = audit(world, load, convergence)
    return _report(settings, world, load, faults, convergence, checked, latencies, setup_s, load_s, disk_note)


CAUSES = {"gossip": "gossip", "sync": "reconciliation", "key": "waited for its key", "held": "held close"}


def _cause(params: dict[str, Any], op: dict[str, Any]) -> str:
    """How one op reached a member, from its `ops` event (docs/API.md): the path its envelope
    took, or what it waited for once there."""
    if params.get("retried"):
        return "author waited for its key"
    if op.get("waited"):
        return "waited for a parent"
    return CAUSES.get(params.get("via", ""), "other")


def _latencies(world: World, load: Load, faults: Faults) -> dict[str, Any]:
    retried = {record.id: record.retries for record in load.stats.sent}
    first: dict[tuple[str, str], float] = {}
    cause: dict[tuple[str, str], str] = {}
    for peer in world.members:
        for listener in peer.listeners:
            for at, params in list(listener.arrivals):
                for op in params.get("ops", ()):
                    key = (peer.name, op["id"])
                    if key not in first or at < first[key]:
                        first[key] = at
                        cause[key] = _cause({**params, "retried": retried.get(op["id"], 0)}, op)
    windows = [(r.started, r.ended or time.time()) for r in faults.records]
    steady: list[float] = []
    steady_causes: list[tuple[float, str]] = []
    steady_spans: list[tuple[float, float, float]] = []  # (latency, sent, arrived) of each steady pair
    everything: list[float] = []
    slowest: list[tuple[float, str]] = []
    acks: list[float] = []  # the author's node answering (from the first try, key waits included)
    after_ack: list[float] = []  # from that answer to the member's node telling of it
    unobserved = 0
    for record in load.stats.sent:
        for name in record.members - {record.author}:
            peer = world.by_name(name)
            arrived = first.get((name, record.id))
            end = arrived if arrived is not None else time.time()
            disturbed = peer.was_down(record.sent, end) or any(a < end and record.sent < b for a, b in windows)
            if arrived is None:
                unobserved += 0 if disturbed else 1
                continue
            latency = (arrived - record.sent) * 1000
            everything.append(latency)
            if not disturbed:
                steady.append(latency)
                acks.append((record.acked - record.sent) * 1000)
                after_ack.append((arrived - record.acked) * 1000)
                steady_causes.append((latency, cause[(name, record.id)]))
                steady_spans.append((latency, record.sent, arrived))
                where = f"{record.kind} {record.author}->{name} at {record.sent - world.started:.1f}s"
                slowest = sorted([*slowest, (latency, where)], reverse=True)[:10]
    if os.environ.get(PAIRS_ENV):
        _dump_pairs(Path(os.environ[PAIRS_ENV]), world, load, first, cause)
    backlog = _backlogs(load, first, windows)
    settled = [
        ms
        for ms, sent, arrived in steady_spans
        if not any(a < arrived and sent < recovered for (a, _b), recovered in zip(windows, backlog, strict=True))
    ]
    return {
        "steady": steady,
        "settled": settled,
        "backlog_s": [round(recovered - b, 1) for (_a, b), recovered in zip(windows, backlog, strict=True)],
        "all": everything,
        "unobserved": unobserved,
        "slowest": slowest,
        "tail": _tail_by_cause(steady_causes),
        "parts": {
            "author_answered_p50_ms": _pct(acks, 0.5),
            "author_answered_p99_ms": _pct(acks, 0.99),
            "after_answer_p50_ms": _pct(after_ack, 0.5),
            "after_answer_p99_ms": _pct(after_ack, 0.99),
        },
    }


def _dump_pairs(
    path: Path, world: World, load: Load, first: dict[tuple[str, str], float], cause: dict[tuple[str, str], str]
) -> None:
    """Every (op, recipient) pair as a JSON line, times in seconds from the world's start:
    for looking into a run's tail by hand (`PAIRS_ENV`)."""
    with path.open("w") as out:
        for record in load.stats.sent:
            for name in sorted(record.members - {record.author}):
                arrived = first.get((name, record.id))
                row = {
                    "op": record.id[:12],
                    "kind": record.kind,
                    "author": record.author,
                    "to": name,
                    "sent": round(record.sent - world.started, 3),
                    "arrived": None if arrived is None else round(arrived - world.started, 3),
                    "cause": cause.get((name, record.id)),
                }
                out.write(json.dumps(row) + "\n")


def _backlogs(load: Load, first: dict[tuple[str, str], float], windows: list[tuple[float, float]]) -> list[float]:
    """For each fault window, when its backlog had drained: the last arrival of a pair whose
    journey overlapped the window (at least the window's end). A partition's heal, like a
    restart, leaves ops to carry across: pairs sent while that backlog still travels
    compete with it, and ``p99_settled_ms`` leaves them out as the headline leaves out
    pairs sent to a node still catching up after its restart."""
    out = []
    for a, b in windows:
        recovered = b
        for record in load.stats.sent:
            if record.sent >= b:
                continue
            for name in record.members - {record.author}:
                arrived = first.get((name, record.id))
                if arrived is not None and arrived > a:
                    recovered = max(recovered, arrived)
        out.append(recovered)
    return out


def _tail_by_cause(pairs: list[tuple[float, str]]) -> dict[str, Any]:
    """The steady pairs above the p95, by how the op got there: how many, their median and
    worst latency; and every pair's causes, for comparison."""
    if not pairs:
        return {}
    cut = _pct([ms for ms, _ in pairs], 0.95) or 0.0
    slow = [(ms, why) for ms, why in pairs if ms > cut]
    by_cause: dict[str, list[float]] = {}
    for ms, why in slow:
        by_cause.setdefault(why, []).append(ms)
    return {
        "p95_ms": cut,
        "pairs_above": len(slow),
        "above_p95": {
            why: {"pairs": len(v), "median_ms": round(statistics.median(v), 1), "max_ms": round(max(v), 1)}
            for why, v in sorted(by_cause.items(), key=lambda item: -len(item[1]))
        },
        "all_pairs": dict(sorted(_count(why for _ms, why in pairs).items(), key=lambda item: -item[1])),
    }


def _pct(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 1)


def _report(
    settings: SoakSettings,
    world: World,
    load: Load,
    faults: Faults,
    convergence: Any,
    checked: Any,
    latencies: dict[str, Any],
    setup_s: float,
    load_s: float,
    disk_note: str | None,
) -> dict[str, Any]:
    stats = load.stats
    steady = latencies["steady"]
    ratio = checked.delivered / checked.expected if checked.expected else None
    return {
        "members": settings.members,
        "relays": settings.relays,
        "circles": settings.circles,
        "setup_s": round(setup_s, 1),
        "load_s": round(load_s, 1),
        "rate_target": settings.rate,
        "ops_sent": len(stats.sent),
        "ops_sent_per_s": round(len(stats.sent) / load_s, 2) if load_s else None,
        "ops_by_kind": dict(sorted(_count(r.kind for r in stats.sent).items())),
        "refused": dict(stats.refused.most_common()),
        "retried_waiting_for_key": stats.retried,
        "skipped_backpressure": stats.skipped,
        "joins": f"{stats.joins_completed} of {stats.joins_requested}",
        "removals": stats.removals,
        "rotations": stats.rotations,
        "kept_epochs": checked.kept_epochs,
        "deliveries": checked.delivered,
        "deliveries_expected": checked.expected,
        "delivery_ratio": round(ratio, 6) if ratio is not None else None,
        "lost": len(checked.lost),
        "lost_ops": checked.lost[:20],
        "undecryptable": checked.undecryptable,
        "undecryptable_envelopes": checked.undecryptable_envelopes,
        "undecryptable_content": checked.undecryptable_content,
        "sealed_before_joining": checked.sealed_before_joining,
        "p50_ms": round(statistics.median(steady), 1) if steady else None,
        "p99_ms": _pct(steady, 0.99),
        "p99_all_ms": _pct(latencies["all"], 0.99),
        "p50_settled_ms": _pct(latencies["settled"], 0.5),
        "p99_settled_ms": _pct(latencies["settled"], 0.99),
        "settled_pairs": len(latencies["settled"]),
        "tail_by_cause": latencies["tail"],
        "latency_parts": latencies["parts"],
        "latency_pairs": len(steady),
        "latency_unobserved": latencies["unobserved"],
        "slowest_steady": [f"{ms:.0f} ms {where}" for ms, where in latencies["slowest"]],
        "converged": convergence.converged,
        "converge_s": convergence.seconds,
        "convergence_problems": convergence.problems[:20],
        "members_at_end": {name: len(m) for name, m in convergence.members.items()},
        "integrity_failures": checked.integrity_failures,
        "refold_mismatches": checked.refold_mismatches,
        "peak_rss_mb": {p.name: round(p.peak_rss_mb, 1) for p in world.everyone()},
        "faults": [
            {
                "kind": r.kind,
                "target": r.target,
                "at_s": round(r.started - world.started, 1),
                "s": round(r.ended - r.started, 1),
                "ok": r.ok,
                "notes": r.notes,
                "backlog_s": backlog_s,
            }
            for r, backlog_s in zip(faults.records, latencies["backlog_s"], strict=True)
        ],
        "fault_skipped": disk_note,
        "crashes": faults.crashes,
        "driver_failures": stats.failures[:20],
        "clock_skews_h": {world.members[i].name: h for i, h in settings.skews_h.items() if i < settings.members},
        "audit_details": checked.details[:30],
        "log": world.log,
        "node_warnings": _node_warnings(world) if not convergence.converged or checked.undecryptable else {},
    }


def _node_warnings(world: World, per_node: int = 12) -> dict[str, list[str]]:
    """The last warnings, errors and key-lifecycle lines each node logged (JSON lines):
    what a failed run leaves to go on once its temporary homes are gone."""
    found: dict[str, list[str]] = {}
    for peer in world.everyone():
        try:
            lines = (peer.home.logs / "node.log").read_text(errors="replace").splitlines()
        except OSError:
            continue
        noted = [
            line[-300:]
            for line in lines
            if '"level": "warning"' in line or '"level": "error"' in line or '"logger": "kith.lifecycle"' in line
        ]
        if noted:
            found[peer.name] = noted[-per_node:]
    return found


def _count(items: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts


def soak_ok(report: dict[str, Any]) -> list[str]:
    """What makes a soak fail: each entry is one broken promise."""
    problems = []
    if not report["converged"]:
        problems.append("did not converge: " + "; ".join(report["convergence_problems"][:5]))
    if report["lost"]:
        problems.append(f"lost {report['lost']} acknowledged ops: {report['lost_ops'][:5]}")
    if report["delivery_ratio"] != 1.0:
        problems.append(f"delivery ratio {report['delivery_ratio']}")
    if report["undecryptable"]:
        problems.append(f"{report['undecryptable']} undecryptable: {report['audit_details'][:5]}")
    for key in ("integrity_failures", "refold_mismatches", "crashes", "driver_failures"):
        if report[key]:
            problems.append(f"{key}: {report[key][:5]}")
    problems += [f"fault {f['kind']} on {f['target']} failed: {f['notes']}" for f in report["faults"] if not f["ok"]]
    return problems


@register("soak_p99_ms", "soak_p50_ms", "soak_p99_settled_ms", "soak_delivery_ratio", "soak_undecryptable",
          "soak_ops_sent", "soak_lost", "soak_peak_rss_mb", "soak_seconds", "soak_tail_by_cause")  # fmt: skip
def bench_soak() -> Figures:
    report = run_soak(SoakSettings())
    return {
        "soak_p99_ms": report["p99_ms"],
        "soak_p50_ms": report["p50_ms"],
        "soak_p99_settled_ms": report["p99_settled_ms"],
        "soak_delivery_ratio": report["delivery_ratio"],
        "soak_undecryptable": report["undecryptable"],
        "soak_ops_sent": report["ops_sent"],
        "soak_lost": report["lost"],
        "soak_peak_rss_mb": max(report["peak_rss_mb"].values()),
        "soak_seconds": report["load_s"],
        "soak_tail_by_cause": report["tail_by_cause"],
    }


def _tail_line(tail: dict[str, Any]) -> str:
    if not tail:
        return "tail: no steady pairs"
    causes = ", ".join(f"{why} {v['pairs']} (median {v['median_ms']:.0f} ms)" for why, v in tail["above_p95"].items())
    return f"above p95 ({tail['p95_ms']:.0f} ms), {tail['pairs_above']} pairs, by how they came: {causes}"


def summary(report: dict[str, Any], problems: list[str]) -> str:
    """The report in a screenful: what ran, what it proved, what broke."""
    rss = report["peak_rss_mb"]
    lines = [
        f"soak: {report['members']} members, {report['relays']} relays, {report['circles']} circles; "
        f"set-up {report['setup_s']} s, load and faults {report['load_s']} s",
        f"ops sent {report['ops_sent']} ({report['ops_sent_per_s']}/s), joins {report['joins']}, "
        f"removals {report['removals']}, rotations {report['rotations']} "
        f"(epochs kept from raced ones: {report['kept_epochs']})",
        f"deliveries {report['deliveries']} of {report['deliveries_expected']} (ratio {report['delivery_ratio']}), "
        f"lost {report['lost']}, undecryptable {report['undecryptable']}",
        f"latency p50 {report['p50_ms']} ms, p99 {report['p99_ms']} ms (no fault in flight), "
        f"p99 {report['p99_all_ms']} ms (all)",
        _tail_line(report["tail_by_cause"]),
        f"converged {report['converged']} in {report['converge_s']} s after the load stopped",
        f"peak RSS per node: {min(rss.values()):.0f}..{max(rss.values()):.0f} MB",
        "faults:",
        *[
            f"  {f['at_s']:7.1f}s {f['kind']:<14} {f['target']:<16} {'ok' if f['ok'] else 'FAILED'} "
            + "; ".join(f["notes"])
            for f in report["faults"]
        ],  # fmt: skip
    ]
    if report["fault_skipped"]:
        lines.append(f"disk_full not run: {report['fault_skipped']}")
    lines += ["PASS" if not problems else "FAIL", *[f"  {p}" for p in problems]]
    return "\n".join(lines)
