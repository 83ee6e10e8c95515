"""The client treats member text as text (issue 12): every view and screen, hostile input.

A member (or a stranger with an invite, a peer, a relay) chooses names, posts, titles,
places, notes and reasons. Each payload below goes through every view and screen that
shows such text, served by an in-process fake node (tests/tui/fake_node.py), and the
client must: not crash (``Picnic [/x]`` once raised `MarkupError`); carry no clickable
action (``[@click=...]`` once became one: no rendered cell has ``@click`` meta, and
clicking the words does nothing); show the words as typed; never send a control
character, bidi override or zero-width character to the terminal; and keep absurdly
long text to a bounded size on screen. The command line's plain-text output is checked
the same way.
"""

from __future__ import annotations

import json
import os
import re
import sys
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_node import (
    CIRCLE,
    EVENT,
    MY_PLEDGE,
    OTHER,
    PROPOSAL,
    FakeNode,
    attach_fake_node,
    hostile_answers,
    hostile_views,
)
from hypothesis import given
from hypothesis import strategies as st
from rich.cells import cell_len
from rich.text import Text
from textual.geometry import Region
from textual.pilot import Pilot
from textual.screen import Screen
from textual.strip import Strip
from textual.widgets import DataTable, Input, OptionList
from tui_harness import run, wait_until

from kith.p2pnet.home import Home
from kith.sync.invites import InviteCode
from kith.tui import render
from kith.tui.app import StartingScreen, make_app
from kith.tui.cli import main
from kith.tui.member_text import LINE, NAME, TEXT, visible
from kith.tui.rpc import NodeError
from kith.tui.screens.form import FormScreen
from kith.tui.screens.invite import InviteScreen
from kith.tui.screens.join import JoinScreen
from kith.tui.screens.main import MainScreen
from kith.tui.screens.unlock import UnlockScreen
from kith.tui.screens.welcome import WelcomeScreen

# The client through Textual's pilot, screen by screen: part of the suite, outside the fast subset (-m "not slow").
pytestmark = pytest.mark.slow

HUGE = ("[/x]" + "w" * 96) * 1_000
PAYLOADS = {
    "closing-tag": ("Picnic [/x]", ("Picnic [/x]",)),
    "click-action": ("[@click=screen.invite]x[/]", ("[@click=screen.invite]x[/]",)),
    "bold-and-link": ("[bold]loud[/bold] [link=https://evil.example]site[/link]", ("[bold]loud[/bold]",)),
    "escape-sequences": ("\x1b[31mred\x1b[0m \x1b]8;;https://evil.example\x07osc\x07\x08\x00", ("\\x1b[31mred",)),
    "bidi-and-invisible": ("evil\u202egnp.exe al\u200bice \u2066x\u2069\ufeff", ("evil\\u202egnp", "al\\u200bice")),
    "huge": (HUGE, ("[/x]wwww",)),
}
# The walk through every view takes a while, so it takes the payloads in three groups.
VIEW_PAYLOADS = {
    "markup": (
        "Picnic [/x] [@click=app.bell]b[/] [@click=screen.invite]x[/] [bold]loud[/bold] [link=https://evil.example]s[/]",
        ("Picnic [/x]", "[@click=app.bell]b[/]", "[@click=screen.invite]x[/]"),
    ),
    "controls": (
        "\x1b[31mred\x1b[0m evil\u202egnp al\u200bice \u2066x\u2069\ufeff \x1b]8;;https://evil.example\x07o\x07\x08\x00",
        ("\\x1b[31mred", "evil\\u202egnp"),
    ),
    "huge": PAYLOADS["huge"],
}
SIZE = (160, 50)
# What a terminal must never receive from member text: controls, format characters
# (bidi, zero-width), separators and lone surrogates.
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")


# --- reading the screen through Textual's public API ----------------------------------


def drawn(screen: Screen[Any]) -> Iterator[tuple[Region, list[Strip]]]:
    """Where each visible widget on ``screen`` is, and the lines it draws there."""
    for widget in [screen, *screen.walk_children()]:
        region = widget.region
        if region.area:  # not hidden, not scrolled out of view
            yield region, widget.render_lines(Region(0, 0, region.width, region.height))


def screen_words(screen: Screen[Any]) -> str:
    return "\n".join(strip.text for _region, strips in drawn(screen) for strip in strips)


def assert_safe(pilot: Pilot[Any], markers: tuple[str, ...], where: str) -> None:
    """The screen shows every marker literally, carries no action and no raw control."""
    screen = pilot.app.screen
    words = screen_words(screen)
    # each widget's text without white space, so words wrapped over lines still match
    texts = ["".join("".join(strip.text for strip in strips).split()) for _region, strips in drawn(screen)]
    for marker in markers:
        squeezed = "".join(marker.split())
        assert any(squeezed in text for text in texts), f"{where}: {marker!r} is not shown literally:\n{words}"
    raw = RAW.search(words)
    assert raw is None, f"{where}: a raw {raw.group()!r} reaches the terminal" if raw else ""
    for region, strips in drawn(screen):
        for y, strip in enumerate(strips):
            for segment in strip:
                meta = segment.style.meta if segment.style else {}
                assert "@click" not in meta, f"{where}: line {region.y + y} carries an action {meta}"


async def click_markers(pilot: Pilot[Any], marker: str) -> int:
    """Click where ``marker`` is drawn, once in each widget that shows it; returns how many."""
    spots = []
    for region, strips in drawn(pilot.app.screen):
        for y, strip in enumerate(strips):
            at = strip.text.find(marker)
            if at >= 0:
                spots.append((region.x + cell_len(strip.text[:at]) + 1, region.y + y))
                break
    for spot in spots:
        await pilot.click(offset=spot)
    return len(spots)


async def open_form(pilot: Pilot[Any], key: str, expected: type[Screen[Any]] = FormScreen) -> None:
    await pilot.press(key)
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, expected), what=f"{expected.__name__} after {key}")
    await pilot.pause()


async def close_form(pilot: Pilot[Any]) -> None:
    await pilot.press("escape")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, MainScreen), what="back to the main screen")


def move_to(table: DataTable[Any], key: str) -> None:
    table.move_cursor(row=table.get_row_index(key), animate=False)


# --- every view and screen of the main window -------------------------------------------


@pytest.mark.parametrize("payload", list(VIEW_PAYLOADS), ids=list(VIEW_PAYLOADS))
def test_every_view_shows_member_text_as_text(payload: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text, marker = VIEW_PAYLOADS[payload]
    answers = hostile_answers(text)
    answers["join"] = NodeError(text, -32000, "usage")
    node = FakeNode(answers)
    attach_fake_node(monkeypatch, node)
    app = make_app(tmp_path / "home")
    bells: list[None] = []
    monkeypatch.setattr(app, "bell", lambda: bells.append(None))

    async def scenario() -> None:
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await wait_until(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.views is not None,
                             what="the circle's views")  # fmt: skip
            main_screen = app.screen
            await pilot.pause()
            assert_safe(pilot, marker, "feed, sidebar, top bar and title")
            for key, name in (("2", "care"), ("3", "aid"), ("4", "fund"), ("5", "events"), ("6", "people")):
                await pilot.press(key)
                await pilot.pause()
                assert_safe(pilot, marker, name)
            await pilot.press("7")
            await wait_until(pilot, lambda: node.count("status") >= 2, what="the Net view's status")
            await pilot.pause()
            assert_safe(pilot, marker, "net")

            # Clicking the words runs nothing. `app.bell` would run at once, within the click;
            # `screen.invite` would start a worker, so the only `invite.create` the node sees
            # must be the one pressed for afterwards.
            for key in "7654321":
                await pilot.press(key)
                await pilot.pause()
                await click_markers(pilot, "[@click=app")
            assert not bells
            await click_markers(pilot, "[@click=screen")
            assert isinstance(app.screen, MainScreen)
            await open_form(pilot, "i", InviteScreen)
            assert node.count("invite.create") == 1
            assert_safe(pilot, marker, "invite")
            await close_form(pilot)

            # Forms that quote members.
            await pilot.press("1")
            feed = main_screen.query_one("#feed")
            feed.listing.highlighted = 0
            for key in ("r", "e"):
                await open_form(pilot, key)
                assert_safe(pilot, marker, f"feed form {key}")
                await close_form(pilot)
            await pilot.press("o")  # open the content warning of the reply
            feed.listing.highlighted = 1
            await pilot.press("o")
            await pilot.pause()
            assert_safe(pilot, marker, "opened content warning")

            await pilot.press("2")
            await open_form(pilot, "r")
            assert_safe(pilot, marker, "care reply")
            await close_form(pilot)

            await pilot.press("3")
            move_to(main_screen.query_one("#aid-table", DataTable), MY_PLEDGE)
            await pilot.pause()
            assert_safe(pilot, marker, "aid detail")
            await open_form(pilot, "m")
            assert_safe(pilot, marker, "match form")
            await close_form(pilot)

            await pilot.press("4")
            move_to(main_screen.query_one("#proposals", DataTable), PROPOSAL)
            await pilot.pause()
            assert_safe(pilot, marker, "proposal detail")
            for key in ("d", "t", "n"):  # disburse, receipt, propose (recipients by name)
                await open_form(pilot, key)
                assert_safe(pilot, marker, f"fund form {key}")
                await close_form(pilot)

            await pilot.press("5")
            move_to(main_screen.query_one("#events-table", DataTable), EVENT)
            await pilot.pause()
            assert_safe(pilot, marker, "event detail")
            await pilot.press("y")  # the node answers that the circle's rules refused it, quoting a member
            await wait_until(pilot, lambda: node.count("rsvp") == 1, what="the rsvp")
            await wait_until(pilot, lambda: "refused this" in screen_words(app.screen), what="the toast")
            assert_safe(pilot, marker, "refused toast")

            await pilot.press("6")
            people = main_screen.query_one("#members-table", DataTable)
            move_to(people, OTHER)
            await pilot.press("d")
            await pilot.pause()
            assert_safe(pilot, marker, "member details and join requests")
            for key in ("s", "a"):  # safety number, letting in a stranger who asked by name
                await open_form(pilot, key)
                assert_safe(pilot, marker, f"people form {key}")
                await close_form(pilot)

            # Node events that quote members or strangers become toasts.
            node.push({"type": "join_request", "circle": CIRCLE, "name": text})
            node.push({"type": "join_refused", "reason": text})
            node.push({"type": "joined", "name": text})
            await wait_until(pilot, lambda: "asked to join" in screen_words(app.screen), what="the toasts")
            await pilot.pause()
            assert_safe(pilot, marker, "toasts")

            # Joining: the node's error quotes what the inviter chose.
            await open_form(pilot, "j", JoinScreen)
            await pilot.press("x", "enter")  # not a code: refused here, the node is not asked
            await wait_until(pilot, lambda: "not an invite code" in screen_words(app.screen), what="the local check")
            assert node.count("join") == 0
            app.screen.query_one("#code", Input).value = InviteCode(os.urandom(32), os.urandom(16), (), None).encode()
            await pilot.press("enter")
            await wait_until(pilot, lambda: node.count("join") == 1, what="the join call")
            await wait_until(pilot, lambda: "! " in screen_words(app.screen), what="the join error")
            assert_safe(pilot, marker, "join error")
            app.screen.refused(text)
            await pilot.pause()
            assert_safe(pilot, marker, "join refused")
            await close_form(pilot)

            await pilot.press("question_mark")
            await pilot.pause()
            assert "Keys" in screen_words(app.screen)
            await pilot.press("escape")

    run(scenario(), timeout=300)  # a generous bound for a loaded machine; it takes 20-30 s


def test_huge_text_is_bounded_on_screen_and_kept_in_the_views(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    node = FakeNode(hostile_answers(HUGE))
    attach_fake_node(monkeypatch, node)
    app = make_app(tmp_path / "home")

    async def scenario() -> None:
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await wait_until(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.views is not None)
            main_screen = app.screen
            feed = main_screen.query_one("#feed-list", OptionList)
            prompts = [feed.get_option_at_index(i).prompt for i in range(feed.option_count)]
            assert all(isinstance(p, Text) and len(p.plain) < TEXT + 2 * NAME + 2 * LINE for p in prompts)
            assert main_screen.views["feed"][0]["text"] == HUGE  # only the display is cut
            await pilot.press("5")
            table = main_screen.query_one("#events-table", DataTable)
            title = table.get_row(EVENT)[1]
            assert isinstance(title, Text) and title.plain.endswith("…") and len(title.plain) <= 200

    run(scenario())


# --- the screens before the main window -------------------------------------------------


@pytest.mark.parametrize("payload", list(PAYLOADS), ids=list(PAYLOADS))
def test_start_screens_show_paths_and_errors_as_text(payload: str, tmp_path: Path) -> None:
    text, marker = PAYLOADS[payload]
    home = Home(tmp_path / "[/x] [@click=app.quit]q[/]")  # a home path is not markup either
    home.ensure()
    (home.keystore).write_bytes(b"not a keystore, but the file exists")

    async def scenario() -> None:
        app = make_app(home)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await wait_until(pilot, lambda: isinstance(app.screen, UnlockScreen), what="the unlock screen")
            assert_safe(pilot, ("[/x] [@click=app.quit]q[/]",), "unlock path")
            app.screen.show_error(text)
            await pilot.pause()
            assert_safe(pilot, marker, "unlock error")
            await app.switch_screen(WelcomeScreen(home))
            await pilot.pause()
            app.screen.show_error(text)
            await pilot.pause()
            assert_safe(pilot, marker, "welcome error")
            await app.switch_screen(StartingScreen("Attaching…"))
            await pilot.pause()
            app.show_start_error(text)
            await pilot.pause()
            assert_safe(pilot, marker, "start error")
            app.notify(text, title=text)
            await pilot.pause()
            assert_safe(pilot, marker, "a toast")

    run(scenario())


# --- the command line -------------------------------------------------------------------


class FakeNodeClient:
    """`kith.tui.rpc.NodeClient` for the command line, answering from a `FakeNode`'s table."""

    answers: dict[str, Any] = {}

    def __init__(self, socket_path: Path, **_: Any) -> None:
        pass

    def __enter__(self) -> FakeNodeClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def call(self, method: str, **params: Any) -> Any:
        return self.answers[method]


@pytest.mark.parametrize("payload", list(PAYLOADS), ids=list(PAYLOADS))
def test_command_line_prints_member_text_without_terminal_controls(
    payload: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text, _marker = PAYLOADS[payload]
    monkeypatch.setenv("KITH_HOME", str(tmp_path / "home"))
    monkeypatch.setattr("kith.tui.rpc.NodeClient", FakeNodeClient)
    monkeypatch.setattr(FakeNodeClient, "answers", hostile_answers(text))
    commands = [["circles"], ["requests", CIRCLE], ["joins"], ["rsvp", CIRCLE, EVENT, "yes"], ["status"], ["sync"]]
    commands += [["connect", "/ip4/127.0.0.1/tcp/1"]] + [
        [view, CIRCLE] for view in ("feed", "board", "ledger", "proposals", "members", "events", "rejected")
    ]
    for command in commands:
        main(command)
        out, err = capsys.readouterr()
        for stream, printed in (("stdout", out), ("stderr", err)):
            raw = RAW.search(printed)
            assert raw is None, f"kith {' '.join(command)} sends a raw {raw.group()!r} to {stream}" if raw else ""
            longest = max((len(line) for line in printed.splitlines()), default=0)
            assert longest < TEXT + 400, f"kith {' '.join(command)} prints a {longest}-character line"
        if command[0] in ("circles", "feed", "events", "members"):
            assert visible(text, 20)[:-1] in out, f"kith {' '.join(command)} does not show the name:\n{out}"
    assert main(["members", CIRCLE, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["name"] == text  # scripts get the data as stored


def test_render_lines_keep_each_member_field_on_its_line() -> None:
    views = hostile_views("Bob\n[abcd1234] Alice · fake line")
    for lines in (render.member_lines(views), render.event_lines(views), render.rejected_lines(views)):
        assert all("\n" not in line for line in lines)
        assert not any(line.startswith("[abcd1234] Alice") for line in "\n".join(lines).splitlines())


# --- the helper itself ------------------------------------------------------------------


def test_every_invisible_or_control_character_is_escaped() -> None:
    hidden = "".join(
        chr(code)
        for code in range(sys.maxunicode + 1)
        if unicodedata.category(chr(code)) in ("Cc", "Cf", "Cs", "Zl", "Zp")
    )
    shown = visible(hidden, None)
    assert not [c for c in shown if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp")]
    assert visible("a\nb\tc", None, multiline=True) == "a\nb\tc"
    assert visible("a\r\nb\tc") == "a⏎b c"


def test_flags_keep_their_joiners_and_names_do_not() -> None:
    flags = "🏳️‍🌈 🏳️‍⚧️ 👩🏽‍💻"
    assert visible(flags) == flags
    assert visible("al\u200dice") == "al\\u200dice"
    assert visible("al\u200bice") == "al\\u200bice"
    assert visible("\u202eevil") == "\\u202eevil"


HIDDEN_CATEGORIES = ("Cc", "Cf", "Cs", "Zl", "Zp")


@given(st.text(), st.integers(min_value=1, max_value=300), st.booleans())
def test_visible_text_is_bounded_literal_and_has_nothing_hidden(text: str, limit: int, multiline: bool) -> None:
    shown = visible(text, limit, multiline=multiline)
    assert len(shown) <= limit
    kept = "\n\t\u200d" if multiline else "\u200d"  # a joiner only ever stays between two emoji
    assert not [c for c in shown if unicodedata.category(c) in HIDDEN_CATEGORIES and c not in kept]
    if len(text) <= limit and not any(unicodedata.category(c) in HIDDEN_CATEGORIES for c in text):
        assert shown == text  # ordinary text is shown exactly as written


def test_long_text_is_cut_with_an_ellipsis() -> None:
    assert visible("x" * 100_000, NAME) == "x" * (NAME - 1) + "…"
    assert visible("\x1b" * 100_000, NAME) == ("\\x1b" * NAME)[: NAME - 1] + "…"
    assert visible("short", NAME) == "short"
    assert visible(None) == "" and visible(42) == "42"


# --- a guard against the old pattern coming back ------------------------------------------

# Calls whose ``str`` arguments Textual or Rich read as markup (or, for notify, that kith's
# own `KithApp.notify` already makes plain, so they are not listed).
MARKUP_READERS = {"Static", "Label", "update", "Option", "add_row", "add_option", "Checkbox", "Button"}


def _formatted(arg: Any) -> bool:
    """An f-string, or ``+`` / ``%`` with an f-string or a looked-up value (``m["name"]``)."""
    import ast

    if isinstance(arg, ast.JoinedStr):
        return True
    return isinstance(arg, ast.BinOp) and any(
        isinstance(side, ast.JoinedStr | ast.Subscript) or _formatted(side) for side in (arg.left, arg.right)
    )


def test_no_widget_is_given_a_formatted_string() -> None:
    """Text formatted from values (the way member text used to slip into markup) never goes
    straight to a widget: it goes through tui/member_text.py first."""
    import ast

    root = Path(__file__).resolve().parents[2] / "tui"
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in MARKUP_READERS and any(_formatted(arg) for arg in node.args):
                found.append(f"{path.relative_to(root.parent)}:{node.lineno}")
    assert not found, f"formatted strings handed to widgets: {found}"
