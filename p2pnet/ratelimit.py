"""Token buckets for per-peer and per-topic limits; time is passed in, so tests control it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TokenBucket:
    """Allows ``rate`` units per second on average, with bursts up to ``burst``."""

    rate: float
    burst: float
    tokens: float = -1.0
    updated: float = 0.0

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.burst

    def allow(self, now: float, cost: float = 1.0) -> bool:
        elapsed = max(0.0, now - self.updated)
        self.updated = now
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False


class KeyedLimiter:
    """One bucket per key (peer id, topic), with a bound on how many keys are tracked."""

    def __init__(self, rate: float, burst: float, *, max_keys: int = 10_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: dict[object, TokenBucket] = {}
        self.refused = 0

    def allow(self, key: object, now: float, cost: float = 1.0) -> bool:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                # Forget the stalest half; a peer that comes back starts with a full bucket,
                # which is no worse than a new peer.
                for stale in sorted(self._buckets, key=lambda k: self._buckets[k].updated)[: self.max_keys // 2]:
                    del self._buckets[stale]
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, updated=now)
        if bucket.allow(now, cost):
            return True
        self.refused += 1
        return False
