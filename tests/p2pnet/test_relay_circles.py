"""The many-circles relay benchmark's harness (`kith bench relay_100_circles_forward_p99_ms`):
its plan gives every circle its members and its share of the posts, its accounting counts
every (post, other member) pair once, and a small run of it delivers every post to every
other member of its circle, through a real relay, by gossip."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from bench.relay_circles import Plan, latencies, run_relay_circles


@pytest.mark.parametrize(("circles", "members", "hosts"), [(100, 20, 100), (100, 20, 2000), (3, 4, 5), (7, 5, 7)])
def test_every_circle_has_its_members_and_every_host_its_share_of_circles(
    circles: int, members: int, hosts: int
) -> None:
    plan = Plan(circles, members, hosts, rate=10.0, seconds=60.0)
    memberships: Counter[int] = Counter()
    for circle in range(circles):
        chosen = plan.members_of(circle)
        assert len(set(chosen)) == members and all(0 <= h < hosts for h in chosen)
        memberships.update(chosen)
    # As even as it can be: no host is in more than one circle more than another.
    assert max(memberships.values()) - min(memberships.values()) <= 1
    assert sum(memberships.values()) == circles * members


def test_the_schedule_spreads_the_posts_over_the_circles_at_the_rate() -> None:
    plan = Plan(circles=100, members=20, hosts=100, rate=10.0, seconds=60.0)
    posts = plan.schedule()
    assert len(posts) == 600
    assert [at for at, *_ in posts] == [i / 10.0 for i in range(600)]
    per_circle = Counter(circle for _, circle, _, _ in posts)
    assert set(per_circle.values()) == {6} == {plan.posts_per_circle()}
    for _, circle, author, _ in posts:
        assert author in plan.members_of(circle)
    # Each circle's posts are its own, numbered in order (which of its envelopes goes out).
    assert sorted((c, k) for _, c, _, k in posts) == [(c, k) for c in range(100) for k in range(6)]


def test_every_pair_is_counted_once_and_a_missing_one_as_infinitely_late() -> None:
    plan = Plan(circles=2, members=3, hosts=3, rate=2.0, seconds=1.0)
    (_, c0, a0, k0), (_, c1, a1, k1) = plan.schedule()
    ids = [["x0", "x1"], ["y0", "y1"]]
    first, second = ids[c0][k0], ids[c1][k1]
    others0 = [h for h in plan.members_of(c0) if h != a0]
    others1 = [h for h in plan.members_of(c1) if h != a1]
    # Arrivals as two child processes would report them (hosts may share a process).
    first_child: dict[str, dict[str, list[object]]] = {f"m{others0[0]}": {first: [100.05, "gossip"]}}
    second_child: dict[str, dict[str, list[object]]] = {}
    second_child.setdefault(f"m{others0[1]}", {})[first] = [101.0, "sync"]
    second_child.setdefault(f"m{others1[0]}", {})[second] = [200.02, "gossip"]
    second_child.setdefault(f"m{a1}", {})[second] = [200.0, "gossip"]  # the author's own copy: not a pair
    reports = [{"sent": {first: 100.0}, "arrivals": first_child}, {"sent": {second: 200.0}, "arrivals": second_child}]
    result = latencies(plan, reports, ids)
    assert result["sent"] == 2
    assert result["via"] == {"gossip": 2, "sync": 1}
    pairs = sorted(result["pairs"])
    assert len(pairs) == 4  # two posts, two other members each
    assert [round(p) for p in pairs[:3]] == [20, 50, 1000]
    assert math.isinf(pairs[3])


@pytest.mark.slow
def test_a_small_run_delivers_every_post_to_every_other_member_by_gossip() -> None:
    """Three circles, four members each out of five member hosts in two processes; the
    relay is a real `kith relay run` and the circles a real `kith node`'s."""
    result = run_relay_circles(
        circles=3, members=4, hosts=5, processes=2, rate=4.0, seconds=3.0, grace_s=5.0, settle_s=3.0
    )
    assert result["sent"] == 12
    assert len(result["pairs"]) == 12 * 3
    assert not any(math.isinf(p) for p in result["pairs"]), result
    assert result["via"] == {"gossip": 36, "sync": 0}
    assert result["relay_refused"] == {}
    assert result["relay_peers"] == 5
