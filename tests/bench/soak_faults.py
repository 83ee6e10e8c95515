"""Faults injected during the soak, one at a time, each with its recovery and its evidence.

* ``kill_member`` / ``kill_relay``: SIGKILL a random member or relay, restart it a few
  seconds later at the same address.
* ``partition``: split relays and members into two groups; every node blocks (refuses,
  drops and stops dialing) every node of the other group for a while, then unblocks.
  The evidence is that no cross-group connection is left within seconds of the cut.
* ``relay_db_loss``: SIGKILL a relay, delete its envelope database (its keystore with the
  relay keys stays), restart it: members refill it by reconciliation (checked at the end:
  every relay holds every envelope of every topic).
* ``disk_full``: one member's home lives on a small tmpfs; fill it, post until writes fail
  (posts SQLite still finds room for are acknowledged and audited like any other), check
  that they fail with a clear "disk ... full" error and the node stays up, free the space,
  check writes work again (corruption is checked at the end with ``PRAGMA integrity_check``).
* Clock skew is not injected here: some members run with their clock hours off for the
  whole soak (``KITH_INSECURE_TEST_CLOCK_SKEW_S``, see soak_world.py).

A node process that exits on its own is a crash: it is recorded as a failure and
restarted, so one bug does not hide the others.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bench.soak_load import Load
from bench.soak_world import Peer, World
from kith.identity.errors import KithError

ALL_FAULTS = ("kill_member", "partition", "kill_relay", "relay_db_loss", "disk_full")


@dataclass
class FaultRecord:
    kind: str
    target: str
    started: float
    ended: float = 0.0
    ok: bool = True
    notes: list[str] = field(default_factory=list)


@dataclass
class Partition:
    started: float
    ended: float
    groups: tuple[frozenset[str], frozenset[str]]

    def separates(self, a: str, b: str) -> bool:
        return (a in self.groups[0]) != (b in self.groups[0])


class DiskFullHome:
    """A small tmpfs for one member's home (needs root: mount). `fill` leaves no free byte."""

    def __init__(self, mountpoint: Path, size_mb: int = 48) -> None:
        self.mountpoint = mountpoint
        self.size_mb = size_mb
        self.filler = mountpoint / "filler.bin"

    @staticmethod
    def why_unavailable() -> str | None:
        if os.geteuid() != 0:
            return "mounting a small tmpfs needs root (os.geteuid() != 0)"
        return None

    def mount(self) -> None:
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.size_mb}m,mode=0700", "tmpfs",
                        str(self.mountpoint)], check=True, capture_output=True)  # fmt: skip

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.mountpoint)], check=False, capture_output=True)

    def fill(self) -> None:
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (1 << 20, 65536, 4096, 512, 1):
                try:
                    while True:
                        os.write(fd, b"\0" * size)
                except OSError:
                    continue
        finally:
            os.close(fd)

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)


class Faults:
    def __init__(
        self,
        world: World,
        load: Load,
        *,
        plan: tuple[str, ...] = ALL_FAULTS,
        gap_s: float = 5.0,
        partition_s: float = 20.0,
        down_s: tuple[float, float] = (3.0, 10.0),
        disk: tuple[Peer, DiskFullHome] | None = None,
    ) -> None:
        self.world = world
        self.load = load
        self.plan = [kind for kind in plan if kind != "disk_full" or disk is not None]
        self.gap_s = gap_s
        self.partition_s = partition_s
        self.down_s = down_s
        self.disk = disk
        self.records: list[FaultRecord] = []
        self.partitions: list[Partition] = []
        self.crashes: list[str] = []
        self.rand = world.rand
        self.first_round = threading.Event()
        """Every planned fault has been injected once (however slow the machine: the soak
        waits for it, so a busy machine cannot skip a fault)."""

    def run(self, until: float, stop: threading.Event) -> None:
        step = 0
        if not self.plan:
            self.first_round.set()
        while (time.time() < until or not self.first_round.is_set()) and not stop.is_set() and self.plan:
            self.watch_crashes()
            kind = self.plan[step % len(self.plan)]
            step += 1
            fault: Callable[[FaultRecord], None] = getattr(self, kind)
            record = FaultRecord(kind, "", time.time())
            self.records.append(record)
            try:
                fault(record)
            except Exception as exc:  # noqa: BLE001 - a failed fault is a finding, not a driver crash
                record.ok = False
                record.notes.append(f"fault driver error: {exc!r}")
            record.ended = time.time()
            if step >= len(self.plan):
                self.first_round.set()
            self.world.note(f"fault {kind} on {record.target}: {'ok' if record.ok else 'FAILED'} {record.notes}")
            self._sleep(self.gap_s, until, stop)
        while time.time() < until and not stop.is_set():
            self.watch_crashes()
            stop.wait(1.0)

    def _sleep(self, seconds: float, until: float, stop: threading.Event) -> None:
        end = min(time.time() + seconds, until)
        while time.time() < end and not stop.is_set():
            self.watch_crashes()
            stop.wait(min(1.0, max(0.0, end - time.time())))

    def watch_crashes(self) -> None:
        """A node that exited by itself crashed: record it and bring it back."""
        self.world.sample_rss()
        for peer in self.world.everyone():
            proc = peer.proc.proc
            if peer.up and proc is not None and proc.poll() is not None:
                tail = _log_tail(peer)
                self.crashes.append(f"{peer.name} exited with {proc.returncode}: {tail}")
                self.world.note(f"CRASH {peer.name} exited with {proc.returncode}")
                with self.world.lock:
                    peer.up = False
                    peer.down_since = time.time()
                try:
                    self.world.restart(peer)
                except RuntimeError as exc:
                    self.crashes.append(f"{peer.name} could not restart: {exc}")

    # --- the faults ---------------------------------------------------------------

    def kill_member(self, record: FaultRecord) -> None:
        disk_peer = self.disk[0] if self.disk else None
        choices = [p for p in self.world.live_members() if p is not disk_peer]
        peer = self.rand.choice(choices)
        record.target = peer.name
        self.world.kill(peer)
        time.sleep(self.rand.uniform(*self.down_s))
        self.world.restart(peer)
        self._until_caught_up(peer, record)

    def _until_caught_up(self, peer: Peer, record: FaultRecord, timeout: float = 60.0) -> None:
        """A restarted node is part of the fault until it has reconciled every topic it
        holds once (what it missed while down is then back): latency outside faults
        should not count ops that waited for that on purpose."""
        restarted = time.time()
        while time.time() - restarted < timeout:
            try:
                status = self.world.call(peer, "status")
            except KithError:
                time.sleep(0.5)
                continue
            topics = status["relay_topics"] if peer.relay else status["circles"]
            if all(t["last_sync"] is not None for t in topics):
                record.notes.append(f"caught up {time.time() - restarted:.1f} s after the restart")
                return
            time.sleep(0.5)
        record.notes.append(f"not caught up {timeout:.0f} s after the restart (checked again at the end)")

    def kill_relay(self, record: FaultRecord) -> None:
        relay = self.rand.choice(self.world.relays)
        record.target = relay.name
        self.world.kill(relay)
        time.sleep(self.rand.uniform(*self.down_s))
        self.world.restart(relay)
        self._until_caught_up(relay, record)

    def relay_db_loss(self, record: FaultRecord) -> None:
        relay = self.rand.choice(self.world.relays)
        record.target = relay.name
        before = sum(t["envelopes"] for t in self.world.call(relay, "status")["relay_topics"])
        self.world.kill(relay)
        for suffix in ("", "-wal", "-shm"):
            Path(str(relay.home.store) + suffix).unlink(missing_ok=True)
        self.world.restart(relay)
        after = sum(t["envelopes"] for t in self.world.call(relay, "status")["relay_topics"])
        record.notes.append(f"envelopes before {before}, right after restart {after}")
        if after != 0:
            record.ok = False
            record.notes.append("the database was not really gone")
        # Members refill it by reconciliation; the fault lasts until it holds as much again.
        restarted = time.time()
        while time.time() - restarted < 120:
            try:
                now = sum(t["envelopes"] for t in self.world.call(relay, "status")["relay_topics"])
            except KithError:
                now = 0
            if now >= before:
                record.notes.append(f"rebuilt from members: {now} envelopes {time.time() - restarted:.1f} s after")
                return
            time.sleep(0.5)
        record.notes.append(f"holds {now} of {before} envelopes 120 s after the restart (checked again at the end)")

    def partition(self, record: FaultRecord) -> None:
        world = self.world
        nodes = [p for p in world.everyone() if p.up]
        self.rand.shuffle(nodes)
        relays = [p for p in nodes if p.relay]
        members = [p for p in nodes if not p.relay]
        left = relays[: len(relays) // 2 or 1][:1] + members[: len(members) // 2]
        right = [p for p in nodes if p not in left]
        record.target = f"{len(left)} | {len(right)} nodes"
        started = time.time()
        for side, other in ((left, right), (right, left)):
            for peer in side:
                for target in other:
                    try:
                        world.call(peer, "block", peer=target.peer_id, seconds=self.partition_s + 120)
                    except KithError as exc:
                        record.notes.append(f"block on {peer.name} failed: {exc}")
        # Every node drops the other side within a second or so of blocking it (at once on
        # the block, and again on its next once-a-second check); on 2 busy cores a node may
        # not get the CPU that soon, so the cut is checked until it holds, for up to 10 s.
        cut_at = time.time()
        other_ids = {p.name: {q.peer_id for q in (right if p in left else left)} for p in nodes}
        names = {p.peer_id: p.name for p in nodes}
        while True:
            pairs, winding_down = [], []
            for peer in nodes:
                try:
                    rows = world.call(peer, "status")["peers"]
                except KithError:
                    continue
                for row in sorted(rows, key=lambda r: r["peer"]):
                    if row["peer"] in other_ids[peer.name]:
                        # A peer can stay listed with no connection left while a sync session
                        # with it ends (its stream open can take up to 10 s to give up).
                        listed = winding_down if row["connections"] == 0 else pairs
                        syncing = " (syncing)" if row["syncing"] else ""
                        listed.append(f"{peer.name}->{names[row['peer']]}{syncing}")
            crossing = len(pairs)
            if not crossing or time.time() - cut_at > 10.0:
                break
            time.sleep(0.5)
        record.notes.append(f"cross-group connections: {crossing}, {time.time() - cut_at:.1f} s after the cut")
        if winding_down:
            record.notes.append(f"listed without a connection: {', '.join(winding_down)}")
        if crossing:
            record.ok = False
            record.notes.append(f"still connected: {', '.join(pairs)}")
        time.sleep(max(0.0, self.partition_s - (time.time() - cut_at)))

        # The heal, on all nodes at once as a network coming back would be (one call after
        # another took seconds, and nodes dialed peers that still refused them meanwhile).
        def unblock(pair: tuple[Peer, Peer]) -> str | None:
            try:
                world.call(pair[0], "unblock", peer=pair[1].peer_id)
            except KithError as exc:
                # A node that restarted since has forgotten the block anyway; any other
                # failure leaves the pair blocked until the block expires, and is noted.
                return f"{pair[0].name}->{pair[1].name}: {exc}"
            return None

        pairs = [(p, t) for p in nodes for t in nodes if t is not p and (p in left) != (t in left)]
        healing = time.time()
        with ThreadPoolExecutor(max_workers=16) as pool:
            failed = [problem for problem in pool.map(unblock, pairs) if problem]
        record.notes.append(f"heal: {len(pairs)} unblocks took {time.time() - healing:.1f} s, {len(failed)} failed")
        record.notes.extend(f"unblock failed: {problem}" for problem in failed[:5])
        groups = (frozenset(p.name for p in left), frozenset(p.name for p in right))
        self.partitions.append(Partition(started, time.time(), groups))

    def disk_full(self, record: FaultRecord) -> None:
        assert self.disk is not None
        peer, disk = self.disk
        record.target = peer.name
        model = next((m for m in self.world.circles.values() if peer.name in m.members), None)
        if model is None:
            record.notes.append("the disk-full member is in no circle yet; skipped")
            return
        self.load.paused.add(peer.name)
        try:
            disk.fill()
            # SQLite reuses space it already holds (WAL frames, free pages), so the first
            # writes on a full disk may still succeed, durably: those are acknowledged
            # like any op (the audit checks none is lost). Post until the disk refuses.
            accepted, errors = 0, list[str]()
            while len(errors) < 3 and accepted < 500:
                try:
                    self.load.send(peer, model, "post", {"text": f"written on a full disk {accepted}"})
                    accepted += 1
                except KithError as exc:
                    errors.append(str(exc))
                    time.sleep(0.5)
            unclear = [e for e in errors if "full" not in e.lower()]
            record.notes.append(f"posts on the full disk: {accepted} accepted (room left in SQLite's files), "
                                f"then {len(errors) - len(unclear)} clear 'full' errors of {len(errors)}"
                                + (f"; first error {errors[0][:100]!r}" if errors else ""))  # fmt: skip
            if not errors or unclear:
                record.ok = False
            time.sleep(5.0)  # gossip and syncs keep arriving meanwhile
            if peer.proc.proc is None or peer.proc.proc.poll() is not None:
                record.ok = False
                record.notes.append("the node died on the full disk: " + _log_tail(peer))
                return
        finally:
            disk.free()
            self.load.paused.discard(peer.name)
        deadline = time.time() + 60
        while True:
            try:
                self.load.send(peer, model, "post", {"text": "the disk has room again"})
                break
            except KithError as exc:
                if time.time() > deadline:
                    record.ok = False
                    record.notes.append(f"no recovery after the space was freed: {exc}")
                    return
                time.sleep(1.0)
        record.notes.append("writes work again after the space was freed")


def _log_tail(peer: Peer, lines: int = 3) -> str:
    """The end of the node's stderr (where a crash says why), else of its log."""
    for path in (peer.proc.stderr, peer.home.logs / "node.log"):
        try:
            tail = path.read_text(errors="replace").splitlines()[-lines:] if path else []
        except OSError:
            continue
        if tail:
            return " | ".join(line[-300:] for line in tail)
    return "(no output)"
