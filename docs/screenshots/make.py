"""Export the README's screenshots (SVG) from the real client attached to a demo world.

    .venv/bin/python docs/screenshots/make.py

Starts a static demo world (a relay and four members on loopback, seeded), opens the
client as the fourth member at 100x30, and saves the feed, the aid board and the fund.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

from kith.p2pnet.home import Home
from kith.tui.app import make_app
from kith.tui.demo import DemoWorld
from kith.tui.screens.main import MainScreen

HERE = Path(__file__).resolve().parent
SHOTS = [
    ("1", "feed.svg", "kith: the feed"),
    ("3", "aid.svg", "kith: the aid board"),
    ("4", "fund.svg", "kith: the fund"),
]


async def export(world: DemoWorld) -> None:
    app = make_app(Home(Path(world.ready["homes"]["Sam"])), demo=True)
    async with app.run_test(size=(100, 30)) as pilot:
        while not (isinstance(app.screen, MainScreen) and app.screen.views is not None and app.screen.peers):
            await pilot.pause(0.1)
        for key, name, title in SHOTS:
            await pilot.press(key)
            await pilot.pause(0.5)
            (HERE / name).write_text(app.export_screenshot(title=title), encoding="utf-8")
            print(f"wrote {HERE / name}")


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="kith-shots-"))
    world = DemoWorld(root, static=True)
    try:
        world.wait_for("ready")
        asyncio.run(asyncio.wait_for(export(world), 60))
    finally:
        world.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
