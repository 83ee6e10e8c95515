"""Which peers we refuse, and why: penalties for bad input, bans, and operators' blocks.

Pure bookkeeping, no I/O: the node asks `is_banned` before it dials, accepts a
connection or a sync session, and disconnects whoever `penalize` bans. Time is the
monotonic clock, so a ban lasts as long as it says even on a node whose wall clock is
hours off or jumps (NTP, a skewed test clock).
"""

from __future__ import annotations

import time
from collections.abc import Callable

BAN_THRESHOLD = 50.0
"""Penalty points (1 per bad gossip message, 10 per broken sync session) that get a peer banned."""
BAN_S = 600.0
PENALTY_HALF_LIFE_S = 60.0
"""Penalties halve this often, so an honest peer's occasional bad input is forgotten."""


class _Penalties(dict[str, float]):
    """Peer id -> penalty weight; a peer without one has 0 (a Counter, but of floats)."""

    def __missing__(self, peer: str) -> float:
        return 0.0


class PeerGuard:
    def __init__(
        self, clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], float] = time.time
    ) -> None:
        self.clock = clock
        self.wall_clock = wall_clock
        """Only to tell people when a block ends (`until_wall_clock`); never to decide one."""
        self.penalties = _Penalties()
        self.banned: dict[str, float] = {}
        """Peer id -> until when (this guard's clock) it is refused."""

    def penalize(self, peer: str, weight: float = 1.0) -> bool:
        """Count bad input from ``peer``; True when that gets it banned (just now)."""
        self.penalties[peer] += weight
        if self.penalties[peer] >= BAN_THRESHOLD and peer not in self.banned:
            self.banned[peer] = self.clock() + BAN_S
            return True
        return False

    def block(self, peer: str, seconds: float) -> None:
        self.banned[peer] = self.clock() + seconds

    def unblock(self, peer: str) -> None:
        """Lift a block or a ban at once, and forget the peer's penalties."""
        self.banned.pop(peer, None)
        self.penalties.pop(peer, None)

    def is_banned(self, peer: str) -> bool:
        until = self.banned.get(peer)
        if until is None:
            return False
        if until < self.clock():
            self.unblock(peer)
            return False
        return True

    def until_wall_clock(self, peer: str) -> float | None:
        """When a block or ban ends, as a Unix time (for people and the control API)."""
        until = self.banned.get(peer)
        return None if until is None else self.wall_clock() + (until - self.clock())

    def decay(self) -> None:
        """Halve every penalty (call every `PENALTY_HALF_LIFE_S`); drop those under 1."""
        for peer in list(self.penalties):
            self.penalties[peer] /= 2
            if self.penalties[peer] < 1:
                del self.penalties[peer]
