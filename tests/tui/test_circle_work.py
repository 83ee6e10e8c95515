"""The circle's everyday work as a member meets it (issue 14): proposals and the charter,
private check-ins and private requests, through the `kith` command line and the client.

One demo world (a relay and four member nodes: Ash and Sam organize, Bea and Cal are
members) serves the module; every command runs the real `kith` entry point against a
member's running node, and the client is driven with Textual's pilot.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from tui_harness import call, demo_world

from tui.cli import main
from tui.demo import DemoWorld


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoWorld]:
    with demo_world(tmp_path_factory.mktemp("world")) as running:
        yield running


def kith(world: DemoWorld, who: str, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run `kith ARGS` as ``who`` (on their home, against their running node)."""
    capsys.readouterr()
    code = main(["--home", world.ready["homes"][who], *args])
    out, err = capsys.readouterr()
    return code, out, err


def views(world: DemoWorld, who: str) -> dict[str, Any]:
    return call(world, who, "views", circle=world.ready["circle"], feed_limit=200)


# --- proposals ----------------------------------------------------------------------------


def test_proposals_lists_the_open_proposal_with_its_rule(world: DemoWorld, capsys: pytest.CaptureFixture[str]) -> None:
    circle = world.ready["circle"]
    assert views(world, "Sam")["proposals"], "the demo seeds an open spending proposal"
    code, out, err = kith(world, "Sam", "proposals", circle, capsys=capsys)
    assert (code, err) == (0, "")
    assert "(spend) · OPEN" in out and "quorum 50%, threshold 60%" in out
    code, out, err = kith(world, "Sam", "proposals", circle, "--json", capsys=capsys)
    assert (code, err) == (0, "")
    assert json.loads(out)["proposals"][0]["rule"] == {"quorum_pct": 50, "threshold_pct": 60, "consent": False}
