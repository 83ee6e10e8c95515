"""Fixtures for the circle-state tests: fixed identities and a small circle to act in."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from circle_support import PEOPLE, Circle, person  # noqa: E402

__all__ = ["PEOPLE", "Circle", "person"]


@pytest.fixture
def circle() -> Circle:
    """alice (organizer) with bob, carol and dana as members; bob is treasurer."""
    c = Circle()
    for name in ("bob", "carol", "dana"):
        c.add(name)
    c.grant("bob", "treasurer")
    return c


@pytest.fixture
def new_circle() -> type[Circle]:
    return Circle
