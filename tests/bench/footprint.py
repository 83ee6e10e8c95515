"""What an idle node costs in memory.

``node_rss_idle_mb``: a real `kith node` process (cheap test KDF, loopback, no peers) that
created one circle and then sat idle; its resident memory (VmRSS), the median of samples
taken over a few seconds once it has settled. Issue 16's target is 60 MB or less.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from bench import Figures, register
from bench.cluster import NodeProcess, make_home, passphrase_file

SETTLE_S = 5.0
"""Long enough for start-up work (the first sync round, the first gossip heartbeats) to pass."""

SAMPLES = 6
SAMPLE_INTERVAL_S = 0.5


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"process {pid} has no VmRSS")


@register("node_rss_idle_mb")
def bench_node_rss_idle() -> Figures:
    with tempfile.TemporaryDirectory(prefix="kith-bench-") as tmp:
        root = Path(tmp)
        node = NodeProcess(make_home(root, "idle"), passphrase_file(root)).start()
        try:
            node.call("circle.create", name="Idle circle")
            time.sleep(SETTLE_S)
            assert node.proc is not None
            samples = []
            for _ in range(SAMPLES):
                samples.append(rss_mb(node.proc.pid))
                time.sleep(SAMPLE_INTERVAL_S)
        finally:
            node.stop()
    return {"node_rss_idle_mb": round(statistics.median(samples), 1)}
