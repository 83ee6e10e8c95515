"""Every client action, through the pilot, at 80x24 and 200x50, with text snapshots.

One app per size walks every binding and palette command of every view (post, reply,
react, open a content warning, check in, pledge, request, match, fulfil, withdraw,
contribute, propose, a charter change, vote, receipt, disburse, plan an event and answer
it, safety numbers, details, letting someone in, sync, connect, circles, invite, join,
a new circle, help, the palette, quit) against the calm circle of a fake node
(tests/tui/fake_node.py). At each step it checks:

* what the client asked the node (method and parameters), or the one line it said
  instead of asking;
* that nothing is cut off: on the main window the footer still shows ``? Help`` and
  ``q Quit``; a dialog lies wholly on the screen with its keys line; a form shows the
  label of the field being filled;
* the screen as plain text against ``tests/tui/snapshots/actions_<size>.txt`` (ids,
  keys and clock times masked, widths kept, so the layout is compared cell for cell).

After a deliberate change to what the client draws, regenerate them with
``KITH_UPDATE_SNAPSHOTS=1 pytest tests/tui/test_action_snapshots.py`` and read the diff
before committing it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fake_node import (
    ASH,
    CIRCLE,
    MY_PLEDGE,
    POST,
    PROPOSAL,
    REQUEST,
    STRANGER,
    FakeNode,
    attach_fake_node,
    calm_answers,
)
from textual.command import CommandPalette
from textual.pilot import Pilot
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Label
from tui_harness import masked, run, screen_text, type_text, wait_until

from kith.tui.app import make_app
from kith.tui.screens.form import FormScreen
from kith.tui.screens.help import HelpScreen
from kith.tui.screens.invite import InviteScreen
from kith.tui.screens.join import JoinScreen
from kith.tui.screens.main import MainScreen

# The client through Textual's pilot, screen by screen: part of the suite, outside the fast subset (-m "not slow").
pytestmark = pytest.mark.slow

SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE = os.environ.get("KITH_UPDATE_SNAPSHOTS") == "1"
SIZES = [(80, 24), (200, 50)]
MARK = "──── "


class Walk:
    """The pilot, the node and the screens seen so far, with the checks every step makes."""

    def __init__(self, pilot: Pilot[Any], node: FakeNode, said: list[str]) -> None:
        self.pilot = pilot
        self.node = node
        self.said = said
        self.shots: dict[str, str] = {}

    @property
    def screen(self) -> Any:
        return self.pilot.app.screen

    @property
    def main(self) -> MainScreen:
        return next(s for s in self.pilot.app.screen_stack if isinstance(s, MainScreen))

    async def shot(self, name: str) -> None:
        """Let the screen settle, check that nothing is cut off, and keep its text."""
        await self.pilot.pause()
        await self.pilot.pause()
        text = screen_text(self.pilot.app)  # type: ignore[arg-type]
        where = f"{name} at {self.pilot.app.size}"
        screen = self.screen
        if isinstance(screen, MainScreen):
            footer = text.splitlines()[-1]
            assert "? Help" in footer and "q Quit" in footer, f"{where}: the footer lost a key: {footer!r}"
        elif isinstance(screen, ModalScreen) and not isinstance(screen, CommandPalette):
            dialog = screen.query_one("#dialog")
            assert screen.region.contains_region(dialog.region), f"{where}: the dialog runs off the screen\n{text}"
            hint = screen.query_one("#dialog .hint")
            assert dialog.region.contains_region(hint.region) and hint.region.area, f"{where}: no keys line\n{text}"
        if isinstance(screen, FormScreen) and screen.focused is not None:
            group = screen.focused.parent
            label = next(iter(group.query(Label)), None) if group is not None else None
            if label is not None:
                area = screen.query_one("#form-fields").region
                assert area.contains_region(label.region), f"{where}: the focused field's label is hidden\n{text}"
        assert name not in self.shots
        self.shots[name] = masked(text)

    async def press(self, *keys: str) -> None:
        await self.pilot.press(*keys)
        await self.pilot.pause()

    async def form(self, *keys: str) -> FormScreen:
        await self.press(*keys)
        await wait_until(self.pilot, lambda: isinstance(self.screen, FormScreen), what=f"a form after {keys}")
        await self.pilot.pause()
        return self.screen  # type: ignore[no-any-return]

    async def fill(self, name: str, text: str) -> None:
        field = self.screen.query_one(f"#f-{name}", Input)
        field.focus()
        await self.pilot.pause()
        await type_text(self.pilot, text)

    async def sent(self, method: str, count: int = 1) -> dict[str, Any]:
        """Wait for the client to ask the node ``method`` (the ``count``th time); its params."""
        await wait_until(self.pilot, lambda: self.node.count(method) >= count, what=f"the call {method}")
        await wait_until(self.pilot, lambda: isinstance(self.screen, MainScreen), what="the form to close")
        return [params for called, params in self.node.calls if called == method][count - 1]

    async def told(self, words: str) -> None:
        await wait_until(self.pilot, lambda: any(words in message for message in self.said), what=repr(words))

    async def back(self) -> None:
        await self.press("escape")
        await wait_until(self.pilot, lambda: isinstance(self.screen, MainScreen), what="back to the main window")

    def select(self, table_id: str, key: str) -> None:
        table = self.main.query_one(f"#{table_id}", DataTable)
        table.move_cursor(row=table.get_row_index(key), animate=False)


async def walk_every_action(w: Walk) -> None:  # noqa: PLR0915 - one scenario, read top to bottom
    main = w.main
    await w.shot("feed")

    # --- Feed (1) ---
    await w.form("n")
    await w.shot("feed: post form")
    await type_text(w.pilot, "Hello, circle")
    await w.press("enter")
    assert await w.sent("post") == {
        "text": "Hello, circle", "content_warning": None, "urgent": False, "circle": CIRCLE}  # fmt: skip
    feed = main.query_one("#feed")
    feed.listing.highlighted = feed.listing.get_option_index(POST)
    await w.form("r")
    await w.shot("feed: reply form")
    await type_text(w.pilot, "On my way")
    await w.press("enter")
    assert (await w.sent("post", 2))["reply_to"] == POST
    await w.form("e")
    await w.shot("feed: react form")
    await w.press("enter")
    assert await w.sent("react") == {"target": POST, "emoji": "💜", "circle": CIRCLE}
    feed.listing.highlighted = feed.listing.highlighted + 1  # Ash's reply, behind a content warning
    await w.press("o")
    await w.shot("feed: content warning opened")
    await w.form("c")
    await w.shot("feed: check-in form")
    await w.press("enter")
    assert await w.sent("checkin") == {"status": "ok", "note": None, "circle": CIRCLE}

    # --- Care (2) ---
    await w.press("2")
    await w.shot("care")
    await w.form("r")
    await w.shot("care: reply form")
    await type_text(w.pilot, "Calling you now")
    await w.press("enter")
    assert (await w.sent("post", 3))["reply_to"] == POST
    await w.form("c")
    await w.back()

    # --- Aid (3) ---
    await w.press("3")
    await w.shot("aid")
    await w.form("p")
    await w.shot("aid: pledge form")
    await w.fill("description", "Soup on Fridays")
    await w.fill("amount", "4")
    await w.fill("unit", "meals")
    await w.press("enter")
    pledged = {"category": "money", "description": "Soup on Fridays", "amount": 4, "unit": "meals", "circle": CIRCLE}
    assert await w.sent("pledge") == pledged
    await w.form("r")
    await w.shot("aid: request form")
    await w.fill("description", "A ride on Tuesday")
    await w.fill("amount", "lots")
    await w.press("enter")
    await wait_until(w.pilot, lambda: "whole number" in screen_text(w.pilot.app), what="the amount refused")
    await w.shot("aid: request form, amount refused")
    assert w.node.count("request") == 0
    await w.back()
    w.select("aid-table", MY_PLEDGE)
    await w.form("m")
    await w.shot("aid: match form")
    await w.press("enter")
    assert await w.sent("match") == {"pledge": MY_PLEDGE, "request": REQUEST, "circle": CIRCLE}
    w.select("aid-table", REQUEST)
    await w.press("f")
    assert await w.sent("fulfil") == {"request": REQUEST, "circle": CIRCLE}
    w.select("aid-table", MY_PLEDGE)
    await w.press("w")
    assert await w.sent("withdraw") == {"item": MY_PLEDGE, "circle": CIRCLE}

    # --- Fund (4) ---
    await w.press("4")
    await w.shot("fund")
    await w.form("c")
    await w.shot("fund: contribute form")
    await type_text(w.pilot, "20")
    await w.press("enter")
    assert await w.sent("contribute") == {"amount": 2000, "currency": "EUR", "note": None, "circle": CIRCLE}
    await w.form("n")
    await w.shot("fund: propose form")
    await w.fill("title", "Bus passes")
    await w.fill("amount", "60")
    await w.fill("purpose", "two passes")
    await w.press("enter")
    proposed = await w.sent("propose")
    assert proposed | {"recipient": None} == {
        "kind": "spend", "title": "Bus passes", "amount": 6000, "currency": "EUR", "recipient": None,
        "purpose": "two passes", "circle": CIRCLE}  # fmt: skip
    await w.form("h")
    await w.shot("fund: charter form")
    await w.back()
    w.select("proposals", PROPOSAL)
    await w.form("v")
    await w.shot("fund: vote form")
    await w.press("enter")
    assert await w.sent("vote") == {"proposal": PROPOSAL, "choice": "approve", "reason": None, "circle": CIRCLE}
    await w.form("t")
    await w.shot("fund: receipt form")
    await w.press("enter")
    assert (await w.sent("receipt"))["contribution"] == "a9" * 32
    await w.press("d")  # the proposal is still open: nothing to pay out
    await w.told("Choose an approved spending proposal first.")

    # --- Events (5) ---
    await w.press("5")
    await w.shot("events")
    await w.form("a")
    await w.shot("events: new event form")
    await w.fill("title", "Picnic")
    await w.fill("starts", "2020-06-01 12:00")
    await w.press("enter")
    await wait_until(w.pilot, lambda: "has already passed" in screen_text(w.pilot.app), what="the past refused")
    await w.shot("events: a start in the past refused")
    starts = time.strftime("%Y-%m-%d %H:%M", time.localtime(time.time() + 30 * 86400))
    w.screen.query_one("#f-starts", Input).value = starts
    await w.press("enter")
    created = await w.sent("event.create")
    assert created["title"] == "Picnic" and created["starts"] > time.time()
    for count, (key, answer) in enumerate((("y", "yes"), ("m", "maybe"), ("x", "no")), start=1):
        await w.press(key)
        assert (await w.sent("rsvp", count))["answer"] == answer

    # --- People (6) ---
    await w.press("6")
    await w.shot("people")
    w.select("members-table", ASH)
    await w.press("d")
    await w.shot("people: details")
    await w.press("s")
    await wait_until(w.pilot, lambda: isinstance(w.screen, FormScreen), what="the safety number")
    await w.shot("people: safety number")
    await w.press("down", "enter")
    assert await w.sent("verify") == {"member": ASH, "circle": CIRCLE}
    await w.form("a")
    await w.shot("people: let in form")
    await w.press("enter")
    assert await w.sent("approve") == {"member": STRANGER, "vouch": None, "circle": CIRCLE}
    await w.press("l")
    await wait_until(w.pilot, lambda: w.node.count("modlog") >= 1, what="the moderation log")
    await w.shot("people: moderation log")

    # --- Net (7) ---
    await w.press("7")
    table = main.query_one("#peers-table", DataTable)
    await wait_until(w.pilot, lambda: table.row_count == 2, what="the peers")
    await w.shot("net")
    await w.press("s")
    await w.told("Synced with 1 peers, 2 new envelopes.")
    await w.form("c")
    await w.shot("net: connect form")
    await type_text(w.pilot, "/ip4/203.0.113.9/tcp/4747/p2p/12D3KooWRelay")
    await w.press("enter")
    assert await w.sent("connect") == {"address": "/ip4/203.0.113.9/tcp/4747/p2p/12D3KooWRelay"}

    # --- everywhere ---
    await w.press("1", "g")
    assert main.focused is main.query_one("#circles")
    await w.press("i")
    await wait_until(w.pilot, lambda: isinstance(w.screen, InviteScreen), what="the invite")
    await w.shot("invite")
    await w.back()
    await w.press("j")
    await wait_until(w.pilot, lambda: isinstance(w.screen, JoinScreen), what="the join dialog")
    await w.shot("join")
    await w.back()
    await w.form("plus")
    await w.shot("new circle form")
    await type_text(w.pilot, "Night owls")
    await w.press("enter")
    await w.sent("circle.create")
    await w.press("question_mark")
    await wait_until(w.pilot, lambda: isinstance(w.screen, HelpScreen), what="help")
    await w.shot("help")
    await w.back()
    await w.press("ctrl+p")
    await wait_until(w.pilot, lambda: isinstance(w.screen, CommandPalette), what="the palette")
    await type_text(w.pilot, "vote")
    await w.shot("palette: vote")
    await w.press("enter")  # "Fund: Vote" runs the Fund view's action from the palette
    await wait_until(w.pilot, lambda: isinstance(w.screen, FormScreen), what="the vote form from the palette")
    await w.back()
    await w.press("q")
    await wait_until(w.pilot, lambda: not w.pilot.app.is_running, what="quitting")


def compare(shots: dict[str, str], path: Path) -> list[str]:
    """Differences from the committed snapshots (rewritten instead under KITH_UPDATE_SNAPSHOTS=1)."""
    text = "".join(f"{MARK}{name}\n{shot}" for name, shot in shots.items())
    if UPDATE or not path.exists():
        path.write_text(text, encoding="utf-8")
        return [] if UPDATE else [f"{path.name} did not exist; written now: check it and commit it"]
    expected: dict[str, str] = {}
    for block in path.read_text(encoding="utf-8").split(MARK)[1:]:
        name, _, shot = block.partition("\n")
        expected[name] = shot
    failures = [f"steps differ: expected {list(expected)}, got {list(shots)}"] if list(expected) != list(shots) else []
    for name, shot in shots.items():
        if expected.get(name) != shot:
            failures.append(f"{name} differs:\n--- expected\n{expected.get(name)}--- got\n{shot}")
    return failures


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_every_action_through_the_pilot(size: tuple[int, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    node = FakeNode(calm_answers())
    attach_fake_node(monkeypatch, node)
    app = make_app(tmp_path / "home")
    said: list[str] = []
    notify: Callable[..., None] = app.notify
    monkeypatch.setattr(app, "notify", lambda message, **kw: (said.append(message), notify(message, **kw))[1])
    walk: list[Walk] = []

    async def scenario() -> None:
        async with app.run_test(size=size) as pilot:
            await wait_until(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.views is not None,
                             what="the circle's views")  # fmt: skip
            walk.append(Walk(pilot, node, said))
            await walk_every_action(walk[0])

    run(scenario(), timeout=240)  # a generous bound for a loaded machine
    failures = compare(walk[0].shots, SNAPSHOTS / f"actions_{size[0]}x{size[1]}.txt")
    assert not failures, "\n".join(failures)
