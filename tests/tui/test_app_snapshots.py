"""Snapshots of the main screens at 80x24 and 120x40, as plain text (legible without colour).

The client is attached to a member of a freshly seeded, static demo world, so the content
is the same on every run; what differs between runs (ids, keys, clock times) is masked
with the same number of characters, so the layout is still compared cell for cell.
Run with KITH_UPDATE_SNAPSHOTS=1 to rewrite them after a deliberate change, and read the
diff before committing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from tui_harness import demo_world, masked, open_main, run, screen_text, wait_until

from kith.p2pnet.home import Home
from kith.tui.app import make_app
from kith.tui.demo import DemoWorld

# The client through Textual's pilot, screen by screen: part of the suite, outside the fast subset (-m "not slow").
pytestmark = pytest.mark.slow

SNAPSHOTS = Path(__file__).parent / "snapshots"
SCREENS = [("1", "feed"), ("2", "care"), ("3", "aid"), ("4", "fund"), ("5", "events"), ("6", "people")]
UPDATE = os.environ.get("KITH_UPDATE_SNAPSHOTS") == "1"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoWorld]:
    with demo_world(tmp_path_factory.mktemp("snapshot-world")) as running:
        yield running


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_main_screens(world: DemoWorld, size: tuple[int, int]) -> None:
    app = make_app(Home(Path(world.ready["homes"]["Sam"])), demo=True)
    shots: dict[str, str] = {}

    async def scenario() -> None:
        async with app.run_test(size=size) as pilot:
            main = await open_main(pilot)
            # Members reach each other through the relay (private by default): Sam has one peer.
            await wait_until(pilot, lambda: main.peers == 1, what="the connection to the relay")
            for key, name in SCREENS:
                await pilot.press(key)
                await pilot.pause(0.3)
                shots[name] = masked(screen_text(app))

    run(scenario())
    failures = []
    for name, text in shots.items():
        path = SNAPSHOTS / f"{name}_{size[0]}x{size[1]}.txt"
        if UPDATE or not path.exists():
            if not UPDATE:
                failures.append(f"{path.name} did not exist; written now, check it and commit it")
            path.parent.mkdir(exist_ok=True)
            path.write_text(text, encoding="utf-8")
            continue
        if path.read_text(encoding="utf-8") != text:
            failures.append(f"{path.name} differs:\n--- expected\n{path.read_text(encoding='utf-8')}--- got\n{text}")
    assert not failures, "\n".join(failures)
