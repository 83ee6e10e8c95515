"""PeerGuard: penalties add up to a ban, decay, and bans and blocks end on time."""

from __future__ import annotations

from kith.p2pnet.peerguard import BAN_S, BAN_THRESHOLD, PeerGuard


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_penalties_ban_once_at_the_threshold_and_the_ban_ends() -> None:
    clock = _Clock()
    guard = PeerGuard(clock)
    bans = [guard.penalize("mallory", 10.0) for _ in range(int(BAN_THRESHOLD / 10) + 2)]
    assert bans.count(True) == 1 and bans.index(True) == int(BAN_THRESHOLD / 10) - 1
    assert guard.is_banned("mallory") and not guard.is_banned("alice")
    clock.now += BAN_S + 1
    assert not guard.is_banned("mallory")
    assert guard.penalties["mallory"] == 0  # forgotten with the ban


def test_penalties_decay_and_small_ones_are_dropped() -> None:
    guard = PeerGuard(_Clock())
    guard.penalize("bob", 8.0)
    guard.penalize("carol", 1.5)
    guard.decay()
    assert guard.penalties == {"bob": 4.0}
    for _ in range(3):
        guard.decay()
    assert not guard.penalties


def test_blocks_follow_their_own_clock_and_unblock_lifts_them() -> None:
    clock, wall = _Clock(), _Clock()
    wall.now = 1_700_000_000.0  # hours away from the monotonic clock, as on a real machine
    guard = PeerGuard(clock, wall_clock=wall)
    guard.block("dana", 60)
    assert guard.until_wall_clock("dana") == wall.now + 60
    clock.now += 20
    wall.now += 20
    assert guard.until_wall_clock("dana") == wall.now + 40
    clock.now += 39
    assert guard.is_banned("dana")
    guard.unblock("dana")
    assert not guard.is_banned("dana") and guard.until_wall_clock("dana") is None
    guard.block("eli", 1)
    clock.now += 2
    assert not guard.is_banned("eli")
