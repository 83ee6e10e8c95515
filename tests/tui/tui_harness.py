"""Driving the terminal client against real nodes: a demo world, screen text, waiting."""

from __future__ import annotations

import asyncio
import io
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from textual.pilot import Pilot

from kith.tui.app import KithApp
from kith.tui.demo import DemoWorld
from kith.tui.rpc import NodeClient


@contextmanager
def demo_world(root: Path) -> Iterator[DemoWorld]:
    """A static demo world (relay + four members, seeded, nobody acting) for one test module."""
    root.mkdir(parents=True, exist_ok=True)
    world = DemoWorld(root, static=True)
    try:
        world.wait_for("ready", timeout=60)
        yield world
    finally:
        world.stop()


def call(world: DemoWorld, who: str, method: str, **params: Any) -> Any:
    """A control API call on one of the world's members (the ground truth the client shows)."""
    home = Path(world.ready["homes"][who])
    with NodeClient(home / "node.sock", timeout=30) as client:
        return client.call(method, **params)


def screen_text(app: KithApp) -> str:
    """The screen as plain text: what a terminal without colour shows."""
    width, height = app.size
    console = Console(
        width=width, height=height, file=io.StringIO(), force_terminal=True, record=True, legacy_windows=False,
        safe_box=False,
    )  # fmt: skip
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()


async def wait_until(pilot: Pilot[Any], predicate: Callable[[], Any], timeout: float = 45.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            text = screen_text(pilot.app) if pilot.app.is_running else ""  # type: ignore[arg-type]
            raise AssertionError(f"timed out waiting for {what or predicate}\n{text}")
        await pilot.pause(0.05)


async def wait_for_text(pilot: Pilot[Any], needle: str, timeout: float = 45.0) -> None:
    await wait_until(pilot, lambda: needle in screen_text(pilot.app), timeout, repr(needle))  # type: ignore[arg-type]


async def open_main(pilot: Pilot[Any]) -> Any:
    """Wait until the main window shows the circle's views; returns the main screen."""
    from kith.tui.screens.main import MainScreen

    app = pilot.app
    await wait_until(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.views is not None, 30, "views")
    await pilot.pause(0.2)
    return app.screen


async def type_text(pilot: Pilot[Any], text: str) -> None:
    await pilot.press(*[{" ": "space"}.get(c, c) for c in text])


def run(coro: Any, timeout: float = 60.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


_MASKS = [
    # ages (a fake node's times are fixed, the clock is not), also when a column cuts them
    (re.compile(r"\b\d+ min a(go?)?(?=\s|$)|\b\d+s a(go?)?(?=\s|$)"), "~"),
    (re.compile(r"\b(Mon|Tue|Wed|Thu|Fri|Sat|Sun) \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d\b"), "~"),  # other years
    (re.compile(r"\b\d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d\b"), "~"),
    (re.compile(r"\b[0-9a-f]{4}( [0-9a-f]{4}){9}\b"), "#"),  # fingerprints
    (re.compile(r"\b[0-9a-f]{8}\b"), "#"),  # short ids
    (re.compile(r"\b12D3KooW[0-9A-Za-z]+"), "#"),  # peer ids
    (re.compile(r"\b(Mon|Tue|Wed|Thu|Fri|Sat|Sun) \d\d [A-Z][a-z]{2} \d\d:\d\d\b"), "~"),  # event starts
    (re.compile(r"\b\d\d [A-Z][a-z]{2} \d\d:\d\d\b"), "~"),  # older times
    (re.compile(r"\b\d\d:\d\d\b"), "~"),  # today's times
]


def masked(text: str) -> str:
    """Screen text with what differs between runs (ids, keys, clocks) blanked, widths kept."""
    for pattern, fill in _MASKS:
        text = pattern.sub(lambda m, fill=fill: fill * len(m.group(0)), text)
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"
