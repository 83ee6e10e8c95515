"""The terminal client keeps what it shows (issue 14): each broken promise, reproduced.

A fake node (tests/tui/fake_node.py) serves a calm circle, so each test drives the real
client through Textual's pilot in well under a second per screen: the footer at 80x24,
form labels beside their fields, past event dates, Ctrl+C, per-peer received counts,
sealed runs in a newcomer's feed, two circles with one name, a removed member, and the
invite's QR code at 80, 120 and 220 columns. The node's side of the received count is
tested against real nodes in tests/p2pnet/test_node.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from fake_node import CIRCLE, PAST, FakeNode, attach_fake_node, calm_answers
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Label
from tui_harness import run, screen_text, type_text, wait_until

from kith.identity.errors import UsageError
from kith.p2pnet.qr import qr_text
from kith.sync.invites import InviteCode
from kith.sync.kinds.schema import MAX_POST_CHARS
from kith.tui.app import KithApp, make_app
from kith.tui.screens.form import FormScreen
from kith.tui.screens.help import HelpScreen
from kith.tui.screens.invite import InviteScreen
from kith.tui.screens.join import JoinScreen
from kith.tui.screens.main import REMOVED_REFUSAL, MainScreen
from kith.tui.widgets.events import convert_event
from kith.tui.widgets.pane import day_and_time, stamp

# The client through Textual's pilot, screen by screen: part of the suite, outside the fast subset (-m "not slow").
pytestmark = pytest.mark.slow

Scenario = Callable[[Pilot[Any], MainScreen, FakeNode, list[str]], Awaitable[None]]


def drive(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    scenario: Scenario,
    *,
    size: tuple[int, int] = (80, 24),
    answers: dict[str, Any] | None = None,
) -> KithApp:
    """Run ``scenario`` against the calm circle; it gets the pilot, the main screen, the
    node and every message the client showed as a toast."""
    node = FakeNode(answers or calm_answers())
    attach_fake_node(monkeypatch, node)
    app = make_app(tmp_path / "home")
    said: list[str] = []
    shown = app.notify
    monkeypatch.setattr(app, "notify", lambda message, **kw: (said.append(message), shown(message, **kw))[1])

    async def go() -> None:
        async with app.run_test(size=size) as pilot:
            await wait_until(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.views is not None,
                             what="the circle's views")  # fmt: skip
            await pilot.pause()
            await scenario(pilot, app.screen, node, said)  # type: ignore[arg-type]

    run(go(), timeout=120)
    return app


def lines(pilot: Pilot[Any]) -> list[str]:
    return screen_text(pilot.app).splitlines()  # type: ignore[arg-type]


# --- the footer -------------------------------------------------------------------------


def test_the_footer_shows_help_and_quit_at_80x24_in_every_view(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario(pilot: Pilot[Any], main: MainScreen, node: FakeNode, said: list[str]) -> None:
        for key in "1234567":
            await pilot.press(key)
            await pilot.pause()
            footer = lines(pilot)[-1]
            assert "? Help" in footer and "q Quit" in footer and "^p palette" in footer, f"view {key}: {footer!r}"
            assert footer.rstrip().endswith("^p palette"), f"view {key}: the footer runs off the screen: {footer!r}"

    drive(tmp_path, monkeypatch, scenario)


# --- forms ------------------------------------------------------------------------------


def label_of(form: FormScreen, name: str) -> Label | None:
    group = form.query_one(f"#g-{name}")
    return next(iter(group.query(Label)), None)


def assert_label_in_view(form: FormScreen, name: str) -> None:
    """The field's label is drawn, inside the scrolling area and on the screen."""
    label = label_of(form, name)
    if label is None:  # a checkbox carries its own label
        label = form.query_one(f"#f-{name}")
    area = form.query_one("#form-fields").region
    assert label.region.area, f"{name}: its label is not drawn"
    assert area.contains_region(label.region), f"{name}: its label {label.region} is outside {area}"
    assert form.query_one(f"#f-{name}").region.area, f"{name}: the field is not drawn"


@pytest.mark.parametrize(("view", "key"), [("4", "n"), ("3", "p"), ("3", "r"), ("4", "h")],
                         ids=["propose", "pledge", "request", "charter"])  # fmt: skip
def test_form_labels_stay_with_their_fields_at_80x24(
    view: str, key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario(pilot: Pilot[Any], main: MainScreen, node: FakeNode, said: list[str]) -> None:
        await pilot.press(view, key)
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, FormScreen), what="the form")
        form = pilot.app.screen
        assert isinstance(form, FormScreen)
        names = [field.name for field in form.fields]
        for index, name in enumerate(names + names[::-1][1:]):  # down to the last field and back up
            if index:
                await pilot.press("tab" if index < len(names) else "shift+tab")
            await wait_until(pilot, lambda name=name: form.focused is form.query_one(f"#f-{name}"), what=name)
            await pilot.pause()
            assert_label_in_view(form, name)

    drive(tmp_path, monkeypatch, scenario)


def test_a_form_says_the_schemas_length_limit_and_keeps_the_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The post form's limit is the control API schema's (the fold's): too long is one line
    in the form, nothing is cut or sent; at the limit it goes."""

    async def scenario(pilot: Pilot[Any], main: MainScreen, node: FakeNode, said: list[str]) -> None:
        await pilot.press("1", "n")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, FormScreen), what="the post form")
        form = pilot.app.screen
        assert isinstance(form, FormScreen)
        assert form.fields[0].max_length == MAX_POST_CHARS
        text = form.query_one("#f-text", Input)
        text.value = "x" * (MAX_POST_CHARS + 1)
        form.action_submit()
        await pilot.pause()
        assert f"the text is too long: at most {MAX_POST_CHARS} characters" in str(
            form.query_one("#form-error").render()
        )
        assert pilot.app.screen is form and len(text.value) == MAX_POST_CHARS + 1
        assert node.count("post") == 0
        text.value = "x" * MAX_POST_CHARS
        form.action_submit()
        await wait_until(pilot, lambda: node.count("post") == 1, what="the post sent")

    drive(tmp_path, monkeypatch, scenario)


# --- dates --------------------------------------------------------------------------------


def test_an_event_in_the_past_is_refused_with_one_line() -> None:
    now = time.mktime((2026, 12, 5, 12, 0, 0, 0, 0, -1))
    with pytest.raises(UsageError, match=r"^2020-12-05 18:30 has already passed: give a start in the future"):
        convert_event({"title": "Potluck", "starts": "2020-12-05 18:30", "place_hint": ""}, now=now)
    with pytest.raises(UsageError, match="already passed"):
        convert_event({"title": "Potluck", "starts": "2026-12-05 11:59", "place_hint": ""}, now=now)
    ahead = convert_event({"title": "Potluck", "starts": "2026-12-05 12:30", "place_hint": ""}, now=now)
    assert ahead == {"title": "Potluck", "starts": int(now) + 1800, "place_hint": None}


def test_dates_show_their_year_unless_it_is_this_year() -> None:
    now = time.mktime((2026, 12, 5, 12, 0, 0, 0, 0, -1))
    at = lambda *when: int(time.mktime((*when, 0, 0, 0, -1)))  # noqa: E731
    assert stamp(at(2026, 12, 5, 9, 5), now) == "09:05"
    assert stamp(at(2026, 11, 27, 9, 5), now) == "27 Nov 09:05"
    assert stamp(at(2020, 11, 27, 9, 5), now) == "27 Nov 2020 09:05"
    assert day_and_time(at(2026, 12, 7, 18, 30), now) == "Mon 07 Dec 18:30"
    assert day_and_time(at(2027, 1, 4, 18, 30), now) == "Mon 04 Jan 2027 18:30"


def test_the_client_refuses_a_past_event_before_asking_the_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario(pilot: Pilot[Any], main: MainScreen, node: FakeNode, said: list[str]) -> None:
        await pilot.press("5", "a")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, FormScreen), what="the event form")
        await type_text(pilot, "Potluck")
        await pilot.press("tab")
        await type_text(pilot, "2020-01-05 18:00")
        await pilot.press("enter")
        await wait_until(pilot, lambda: "has already passed" in screen_text(pilot.app), what="the refusal")
        assert node.count("event.create") == 0 and isinstance(pilot.app.screen, FormScreen)
        field = pilot.app.screen.query_one("#f-starts", Input)
        field.value = time.strftime("%Y-%m-%d %H:%M", time.localtime(time.time() + 7 * 86400))
        await pilot.press("enter")
        await wait_until(pilot, lambda: node.count("event.create") == 1, what="the event")
        (params,) = [p for method, p in node.calls if method == "event.create"]
        assert params["title"] == "Potluck" and params["starts"] > time.time() and params["circle"] == CIRCLE

    drive(tmp_path, monkeypatch, scenario)


def test_items_from_another_year_show_the_year(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    year = time.strftime("%Y", time.localtime(PAST))

    async def scenario(pilot: Pilot[Any], main: MainScreen, node: FakeNode, said: list[str]) -> None:
        assert f"Mar {year}" in screen_text(pilot.app)
        await pilot.press("5")
        await pilot.pause()
        assert " 2030 " in screen_text(pilot.app)

    drive(tmp_path, monkeypatch, scenario, size=(120, 40))


# --- Ctrl+C and help ------------------------------------------------------------------------


def test_help_says_what_ctrl_c_does_and_it_does_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario(pilot: Pilot[Any], main: MainScreen, node: FakeNode, said: list[str]) -> None:
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, HelpScreen), what="help")
        keys = dict(next(keys for title, keys in main.binding_groups() if title == "Everywhere"))
        assert keys["ctrl+c"] == "Copy the selected text; with nothing selected, quit"
        assert keys["ctrl+q"] == "Quit" and keys["question_mark"] == "Help"
        text = screen_text(pilot.app)
        assert "Ctrl+C  Copy the selected text; with nothing selected, quit" in text
        assert "Ctrl+C  Copy selected text" not in text  # Textual's own screen binding, which never runs here
        await pilot.press("escape")
        # The palette's key list is kith's help: Textual's panel (which listed Ctrl+C as copy) is gone.
        assert "Keys" not in {command.title for command in pilot.app.get_system_commands(main)}
        # Ctrl+C with text selected in a field copies it and stays ...
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, FormScreen), what="the post form")
        await type_text(pilot, "keep this")
        field = pilot.app.screen.query_one("#f-text", Input)
        field.select_all()
        await pilot.press("ctrl+c")
        await pilot.pause()
        assert pilot.app.clipboard == "keep this" and pilot.app.is_running
        assert "Copied the selected text." in said
        field.selection = type(field.selection)(0, 0)
        # ... and with nothing selected, it quits.
        await pilot.press("ctrl+c")
        await wait_until(pilot, lambda: not pilot.app.is_running, what="quitting")

    drive(tmp_path, monkeypatch, scenario)


# --- the Net view ---------------------------------------------------------------------------


def test_the_net_view_shows_what_each_peer_gave_us(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario(pilot: Pilot[Any], main: MainScreen, node: FakeNode, said: list[str]) -> None:
        await pilot.press("7")
        table = main.query_one("#peers-table", DataTable)
        await wait_until(pilot, lambda: table.row_count == 2, what="the peers")
        received = [str(table.get_row_at(row)[3]) for row in range(table.row_count)]
        assert received == ["57", "3"]  # the node's per-peer counts, not the last sync's "new" (0)

    drive(tmp_path, monkeypatch, scenario, size=(120, 40))


# --- a newcomer's feed ------------------------------------------------------------------------


def test_messages_sealed_before_you_joined_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario(pilot: Pilot[Any], main: MainScreen, node: FakeNode, said: list[str]) -> None:
        text = screen_text(pilot.app)
        assert text.count("sealed before you joined") == 1, text
        assert "(4 messages sealed before you joined: this circle keeps its history from newcomers)" in text

    drive(tmp_path, monkeypatch, scenario, size=(120, 40))


# --- circles that share a name --------------------------------------------------------------


def test_two_circles_with_one_name_are_told_apart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = calm_answers()
    other = "d5" * 16
    twin = dict(answers["circles"][0], id=other, urgent=0)
    answers["circles"] = [*answers["circles"], twin, dict(twin, id="d6" * 16, name="Night owls")]
    status = answers["status"]

    def both_in_status(params: dict[str, Any]) -> dict[str, Any]:
        found = status(params)
        found["circles"].append(dict(found["circles"][0], id=other))
        return found

    answers["status"] = both_in_status

    async def scenario(pilot: Pilot[Any], main: MainScreen, node: FakeNode, said: list[str]) -> None:
        await wait_until(pilot, lambda: len(main.circles) == 3, what="the circles")
        await pilot.pause()
        text = screen_text(pilot.app)
        assert "Riverside Mutual Aid #d4d4d4" in text  # the open circle's title
        sidebar = main.query_one("#circles")
        names = [str(sidebar.get_option_at_index(i).prompt).split("\n")[0] for i in range(sidebar.option_count)]
        assert names == ["▶ Riverside Mutual Aid #d4d4d4", "  Riverside Mutual Aid #d5d5d5", "  Night owls"]
        await pilot.press("7")
        circles = main.query_one("#circles-table", DataTable)
        await wait_until(pilot, lambda: circles.row_count == 2, what="the Net view's circles")
        assert {str(circles.get_row_at(row)[0]) for row in range(2)} == {
            "Riverside Mutual Aid #d4d4d4", "Riverside Mutual Aid #d5d5d5"}  # fmt: skip
        node.push({"type": "join_request", "circle": other, "name": "Cal"})
        await wait_until(pilot, lambda: any("Riverside Mutual Aid #d5d5d5" in s for s in said), what="the toast")

    drive(tmp_path, monkeypatch, scenario, size=(120, 40), answers=answers)


# --- joining: the circle's name, whichever answer comes first ---------------------------------

NIGHT = "d7" * 16
PENDING = {"topic": "77" * 32, "status": "pending", "invite": "00", "reached": [], "unreached": [], "peers": 1}


def join_answers(*, new_circle: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """The calm circle, and a node whose join request leaves `joins` once it is asked; with
    ``new_circle`` the listing gains "Night Shift" then (someone joining a circle for the
    first time), without it the listing stays as it was (a member coming back)."""
    answers = calm_answers()
    box: dict[str, Any] = {"asked": False}
    before = answers["circles"]
    night = dict(before[0], id=NIGHT, name="Night Shift", members=2, urgent=0)
    answers["joins"] = lambda params: [] if box["asked"] else [{"topic": PENDING["topic"], "refused": None}]
    answers["circles"] = lambda params: [*before, night] if box["asked"] and new_circle else before
    return answers, box


async def ask_to_join(pilot: Pilot[Any]) -> None:
    await pilot.press("j")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, JoinScreen), what="the join screen")
    pilot.app.screen.query_one("#code", Input).value = InviteCode(b"\x03" * 32, b"\x04" * 16, (), None).encode()
    await pilot.press("enter")


def test_a_join_answered_before_its_reply_names_the_circle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The inviter answered so fast that the `joined` event came before the node's reply to
    `join` (seen on a loaded machine), and the member had been in the circle before, so the
    listing gains nothing: the name can only come from the event, which must not be lost."""
    answers, box = join_answers(new_circle=False)

    async def join(params: dict[str, Any]) -> dict[str, Any]:
        box["node"].push({"type": "joined", "circle": NIGHT, "name": "Night Shift"})
        while not any("You are in Night Shift" in s for s in box["said"]):
            await asyncio.sleep(0.01)  # until the client has handled the event (bounded by `run`)
        box["asked"] = True
        return dict(PENDING)

    answers["join"] = join

    async def scenario(pilot: Pilot[Any], main: MainScreen, node: FakeNode, said: list[str]) -> None:
        box.update(node=node, said=said)
        await ask_to_join(pilot)
        await wait_until(pilot, lambda: "You are in Night Shift. Esc closes" in screen_text(pilot.app), what="the name")

    drive(tmp_path, monkeypatch, scenario, size=(120, 40), answers=answers)


def test_a_join_whose_event_never_comes_names_the_circle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The `joined` event is lost (the client was reconnecting): the screen's poll finds the
    request gone and names the circle that appeared in the listing."""
    answers, box = join_answers(new_circle=True)

    def join(params: dict[str, Any]) -> dict[str, Any]:
        box["asked"] = True
        return dict(PENDING)

    answers["join"] = join

    async def scenario(pilot: Pilot[Any], main: MainScreen, node: FakeNode, said: list[str]) -> None:
        await ask_to_join(pilot)
        await wait_until(pilot, lambda: "You are in Night Shift. Esc closes" in screen_text(pilot.app), what="the name")
        assert node.count("joins") >= 1  # it was the poll that found it

    drive(tmp_path, monkeypatch, scenario, size=(120, 40), answers=answers)


# --- a removed member -----------------------------------------------------------------------


def test_a_removed_member_sees_it_and_the_client_refuses_to_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = calm_answers()
    answers["circles"][0]["am_member"] = False
    answers["views"]["members"] = [m for m in answers["views"]["members"] if m["id"] != answers["views"]["me"]]
    writes = ("post", "checkin", "pledge", "request", "propose", "vote", "event.create", "invite.create", "react")

    async def scenario(pilot: Pilot[Any], main: MainScreen, node: FakeNode, said: list[str]) -> None:
        text = screen_text(pilot.app)
        assert "You are no longer a member of this circle" in text and "removed: read only" in text
        assert "My ride to the clinic" in text  # what was shared before stays readable
        for view, key in (("1", "n"), ("1", "r"), ("1", "c"), ("2", "r"), ("3", "p"), ("3", "r"), ("4", "n"),
                          ("4", "c"), ("5", "a"), ("1", "i")):  # fmt: skip
            said.clear()
            await pilot.press(view, key)
            await wait_until(pilot, lambda: REMOVED_REFUSAL in said, what=f"the refusal of {view}{key}")
            assert isinstance(pilot.app.screen, MainScreen), f"{view}{key} opened {pilot.app.screen}"
        assert not [method for method, _params in node.calls if method in writes]
        # Reading and the network still work.
        await pilot.press("7", "s")
        await wait_until(pilot, lambda: node.count("sync") == 1, what="a sync")

    drive(tmp_path, monkeypatch, scenario, size=(120, 40), answers=answers)


# --- the invite's QR code ---------------------------------------------------------------------


def invite(addresses: int) -> dict[str, Any]:
    relays = tuple(f"/ip4/203.0.113.{i}/tcp/4747/p2p/12D3KooWLRPJAA5o6Z6gAcr8FdYvN6kJ1HHcX2nEHMeGRzZgFZSM"
                   for i in range(addresses))  # fmt: skip
    code = InviteCode(b"\x01" * 32, b"\x02" * 16, relays, 1_796_457_858).encode()
    return {"code": code, "qr": qr_text(code), "invite": "00", "expires": None, "uses": 1, "addresses": list(relays)}


@pytest.mark.parametrize(
    ("size", "addresses", "whole"),
    [((80, 24), 1, False), ((120, 40), 1, True), ((220, 50), 1, True), ((120, 40), 2, False),
     ((220, 50), 4, False), ((220, 60), 4, True)],
    ids=["80x24", "120x40", "220x50", "120x40-2-addresses", "220x50-4-addresses", "220x60-4-addresses"],
)  # fmt: skip
def test_the_invite_qr_is_drawn_whole_or_not_at_all(
    size: tuple[int, int], addresses: int, whole: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = calm_answers()
    answers["invite.create"] = invite(addresses)
    qr = answers["invite.create"]["qr"].splitlines()
    code = answers["invite.create"]["code"]

    async def scenario(pilot: Pilot[Any], main: MainScreen, node: FakeNode, said: list[str]) -> None:
        await pilot.press("i")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, InviteScreen), what="the invite")
        await pilot.pause()
        text = screen_text(pilot.app)
        rows = text.splitlines()
        drawn = [next((row for row in rows if line in row), None) for line in qr]
        inside = [row[row.index("┃") + 1 : row.rindex("┃")].strip() for row in rows if row.count("┃") == 2]
        assert code in "".join(inside)  # the code is there to copy, whatever the size
        if whole:
            assert all(drawn), f"the QR is cut or wrapped at {size}:\n{text}"
            # every line of it, one under the other, starting in one column
            top = rows.index(drawn[1]) - 1  # type: ignore[arg-type]
            column = rows[top + 1].index(qr[1])
            assert all(rows[top + i][column : column + len(line)] == line for i, line in enumerate(qr)), text
            assert "needs a terminal of at least" not in text
        else:
            assert not any(drawn[1:-1]), f"a part of the QR is drawn at {size}:\n{text}"
            assert f"The QR code needs a terminal of at least {len(qr[0]) + 4} columns" in " ".join(inside)

    drive(tmp_path, monkeypatch, scenario, size=size, answers=answers)
