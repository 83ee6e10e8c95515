"""The adversarial simulation (tests/sim/simulator.py) over many seeds.

CI runs `SEEDS` seeds of a small circle (4 honest nodes, 3 adversaries and a replayer, 30
rounds with drops, duplicates, partitions and crashes). More, or bigger circles, by command:

    python tests/sim/run.py --seeds 5000                  # seeds 0..4999
    python tests/sim/run.py --start 1234 --seeds 1        # replay one seed exactly
    python tests/sim/run.py --honest 17 --steps 200 --json

A failure names its seed; the same seed fails the same way every time.
"""

from __future__ import annotations

import os

import pytest
from simulator import Config, run

SEEDS = int(os.environ.get("KITH_SIM_SEEDS", "120"))
CONFIG = Config(honest=4, steps=30)


@pytest.mark.parametrize("seed", range(SEEDS))
def test_honest_nodes_hold_their_ground(seed: int) -> None:
    report = run(seed, CONFIG)
    assert report["ops"] > 0


def test_the_simulation_is_deterministic() -> None:
    assert run(7, CONFIG) == run(7, CONFIG)


def test_the_adversaries_really_attack() -> None:
    """Across a few seeds the attacks happen: ops are struck, forks made, keys junked."""
    reports = [run(seed, CONFIG) for seed in range(5)]
    assert sum(r["struck"] for r in reports) > 0
    assert sum(r["forks"] for r in reports) > 0
    assert sum(r["adversary_ops"] for r in reports) > 20
    # Proposals close at their time, and the vote attacks (puppets, early closes, late votes) are refused.
    assert sum(r["closed"] for r in reports) > 0
    assert sum(r["vote_refusals"] for r in reports) > 0
    # Governance (OPS.md §6a): reviews open and some expire; eq's back-dated elections are refused.
    assert sum(r["reviews"] for r in reports) > 0
    assert sum(r["reviews_expired"] for r in reports) > 0
    assert sum(r["elections_refused"] for r in reports) > 0
