"""Run the adversarial simulation over many seeds (see tests/sim/test_simulation.py).

    python tests/sim/run.py --seeds 5000 [--start N] [--honest 4] [--steps 30] [--json]

Exits 1 at the first failing seed, naming it; `--json` prints the figures, including
``sim_seeds_per_min``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[2]))

from simulator import Config, Violation, run  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description="kith's adversarial simulation")
    parser.add_argument("--seeds", type=int, default=1000)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--honest", type=int, default=4)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    config = Config(honest=args.honest, steps=args.steps)
    started = time.perf_counter()
    ops = 0
    for seed in range(args.start, args.start + args.seeds):
        try:
            ops += run(seed, config)["ops"]
        except Violation as exc:
            print(f"FAILED: {exc}", file=sys.stderr)
            return 1
    elapsed = time.perf_counter() - started
    figures = {
        "seeds": args.seeds,
        "honest_nodes": args.honest,
        "adversaries": 3,
        "steps": args.steps,
        "ops_per_seed": round(ops / max(1, args.seeds)),
        "sim_seeds_per_min": round(args.seeds / elapsed * 60, 1),
    }
    print(json.dumps(figures) if args.json else f"{args.seeds} seeds passed: {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
