"""Watch a running soak's nodes across its faults: what the whole machine does when a split heals.

    PYTHONPATH=tests python -m bench.heal watch OUT.jsonl [SECONDS]   # beside `kith bench soak`
    PYTHONPATH=tests python -m bench.heal report OUT.jsonl [FROM TO]

`watch` polls every soak node's `status` (gossip counters, peers, sync sessions, outbound
queues) and its process's CPU time (/proc) every half second, one JSON line per round.
`report` prints, per round: cores busy (all soak nodes), gossip envelopes received and
published per second, messages held back per second, peers listed, sessions running, the
longest outbound queue, and each relay's share of a core. Seconds count from the first
round; a heal shows as the peer count jumping back.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kith.identity.errors import KithError
from kith.tui.rpc import NodeClient

POLL_S = 0.5
TICKS = os.sysconf("SC_CLK_TCK")
COUNTERS = ("cpu", "recv", "pub", "held")


def _status(path: Path) -> dict[str, Any] | None:
    """The node's `status`, or None if it is not answering (stopped, restarting)."""
    try:
        with NodeClient(path, timeout=2.0) as client:
            result = client.call("status")
    except (KithError, OSError):
        return None
    return result if isinstance(result, dict) else None


def _cpu_by_home() -> dict[str, float]:
    """Seconds of CPU each soak node's process has used, by its home's folder name."""
    out: dict[str, float] = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        homes = [a.decode(errors="replace") for a in args if b"kith-soak-" in a]
        if homes:
            out[Path(homes[0]).name] = (int(fields[11]) + int(fields[12])) / TICKS
    return out


def _row(status: dict[str, Any] | None, cpu: float | None) -> dict[str, Any]:
    row: dict[str, Any] = {"cpu": cpu}
    if status is not None:
        gossip = status.get("gossip") or {}
        peers = status.get("peers", [])
        row |= {
            "recv": gossip.get("received"),
            "pub": gossip.get("published"),
            "held": gossip.get("held_back"),
            "peers": len(peers),
            "syncing": sum(1 for p in peers if p["syncing"]),
            "outbound": max((p["outbound"] or 0 for p in peers), default=0),
        }
    return row


def watch(out: Path, seconds: float) -> None:
    root = Path(tempfile.gettempdir())
    end = time.time() + seconds
    with out.open("w") as sink:
        while time.time() < end:
            started = time.time()
            cpu = _cpu_by_home()
            nodes = {
                sock.parent.name: _row(_status(sock), cpu.get(sock.parent.name))
                for sock in root.glob("kith-soak-*/**/node.sock")
            }
            sink.write(json.dumps({"t": round(started, 3), "nodes": nodes}) + "\n")
            sink.flush()
            time.sleep(max(0.0, POLL_S - (time.time() - started)))


def _rate(now: dict[str, Any], before: dict[str, Any], key: str, seconds: float) -> float:
    total = 0.0
    for name, row in now["nodes"].items():
        old = before["nodes"].get(name, {}).get(key)
        if row.get(key) is not None and old is not None:
            total += max(0.0, row[key] - old)
    return total / seconds


def report(path: Path, start: float = 0.0, stop: float = float("inf")) -> None:
    rounds = [json.loads(line) for line in path.read_text().splitlines() if line]
    print("     t  cores  recv/s   pub/s  held/s  peers  sync  outmax  relays (share of a core)")
    for before, now in zip(rounds, rounds[1:], strict=False):
        seconds, at = now["t"] - before["t"], now["t"] - rounds[0]["t"]
        if not start <= at <= stop or seconds <= 0:
            continue
        rates = [_rate(now, before, key, seconds) for key in COUNTERS]
        nodes = now["nodes"].values()
        relays = " ".join(
            f"{name}:{(row['cpu'] - before['nodes'][name]['cpu']) / seconds:.2f}"
            for name, row in sorted(now["nodes"].items())
            if name.startswith("relay") and row.get("cpu") is not None and before["nodes"].get(name, {}).get("cpu")
        )
        print(
            f"{at:6.1f} {rates[0]:6.2f} {rates[1]:7.0f} {rates[2]:7.0f} {rates[3]:7.1f} "
            f"{sum(r.get('peers') or 0 for r in nodes):6d} {sum(r.get('syncing') or 0 for r in nodes):5d} "
            f"{max((r.get('outbound') or 0) for r in nodes):7d}  {relays}"
        )


def main(argv: list[str]) -> None:
    if len(argv) >= 2 and argv[0] == "watch":
        watch(Path(argv[1]), float(argv[2]) if len(argv) > 2 else 600.0)
    elif len(argv) >= 2 and argv[0] == "report":
        report(Path(argv[1]), *(float(a) for a in argv[2:4]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
