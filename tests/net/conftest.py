"""The namespace world for tests/net: skipped with the reason when namespaces cannot be made.

Every world sweeps the namespaces a killed earlier run left behind before it builds its own,
and tears its own down in a ``finally`` (and at exit), so no run leaves junk on the machine.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from bench.netns import sweep_stale, unavailable_reason
from bench.netns_world import NatWorld, open_world


@pytest.fixture(scope="session")
def netns_ready() -> None:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"no namespace world: {reason}")
    sweep_stale()


@pytest.fixture(scope="module")
def world(netns_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatWorld]:
    """Relay, two NATed homes of two members, a member on another subnet; one circle of all five."""
    built, cleanup = open_world(tmp_path_factory.mktemp("netns-world"))
    try:
        built.make_circle()
        yield built
    finally:
        cleanup()
