"""A hostile peer floods a circle with 2,000 hostile items a second: garbage messages, and
forged envelopes and replays of real ones in batches. Honest posts keep flowing and
arrive, and not one byte of the flooder's reaches any store (replays are duplicates of
what is stored already).

`kith bench flood_honest_ratio` measures how much of the honest delivery rate survives.
"""

from __future__ import annotations

import pytest
from bench.soak_flood import run_flood_benchmark

pytestmark = pytest.mark.slow


def test_a_flood_of_forgeries_and_replays_stores_nothing_and_honest_posts_arrive() -> None:
    result = run_flood_benchmark(members=3, honest_rate=10, seconds=6, flood_rate=2000)
    attack = result["attack"]
    assert attack["garbage"] + attack["forged"] + attack["replay"] >= 2000, attack
    assert attack["replay"] > 0 and attack["forged"] > 0
    assert result["forged_stored"] == 0
    posted = result["honest_posted_during_flood"]
    assert posted > 0
    # Every store gained exactly the honest posts: nothing of the flooder's.
    assert set(result["gained"].values()) == {posted}, result["gained"]
    # Honest posts arrived while the flood was on, not only after it: counted between the
    # flooder's own start and end, not within a grace period a busy machine could miss.
    assert result["honest_delivered_during_flood"] > 0, result["attack"]
    # The nodes saw the forgeries and refused them.
    refused = sum(sum(v.values()) for v in result["gossip_rejected"].values() if v)
    assert refused > 0
