from __future__ import annotations

from kith.p2pnet.ratelimit import KeyedLimiter, TokenBucket


def test_bucket_allows_rate_and_burst() -> None:
    bucket = TokenBucket(rate=10, burst=5, updated=0.0)
    assert sum(bucket.allow(0.0) for _ in range(20)) == 5
    assert sum(bucket.allow(1.0) for _ in range(20)) == 5  # refilled to the burst, not beyond
    assert bucket.allow(1.05) is False
    assert bucket.allow(1.11) is True


def test_keyed_limiter_isolates_keys_and_bounds_memory() -> None:
    limiter = KeyedLimiter(rate=1, burst=2, max_keys=100)
    assert [limiter.allow("flooder", 0.0) for _ in range(4)] == [True, True, False, False]
    assert limiter.allow("honest", 0.0)
    assert limiter.refused == 2
    for i in range(1000):
        limiter.allow(i, float(i))
    assert len(limiter._buckets) <= 100
