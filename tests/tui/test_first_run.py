"""Issue 14, Build item 5: the first run without the demo.

Fresh members (a new identity, no circle) start the real client against real nodes: one
creates a circle from the first screen; a second joins it with the first one's code; a
bad code gets one line, and a code nobody answers says so and what to do. The first
member's node is a `kith node` process the client attaches to (so it keeps running for
the second); the second member's client starts its own node, as on a real first run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bench.cluster import PASSPHRASE, NodeProcess, make_home, passphrase_file
from textual import events
from textual.pilot import Pilot
from tui_harness import run, screen_text, type_text, wait_for_text, wait_until

from kith.identity.keys import MemberIdentity
from kith.identity.keystore import TEST_KDF, KeystoreData
from kith.p2pnet.home import Home
from kith.p2pnet.keyfile import Keystore
from kith.sync.invites import InviteCode
from kith.tui.app import make_app
from kith.tui.screens.join import JoinScreen
from kith.tui.screens.main import MainScreen

# The client through Textual's pilot, screen by screen: part of the suite, outside the fast subset (-m "not slow").
pytestmark = pytest.mark.slow

LOOPBACK = ["--listen", "/ip4/127.0.0.1/tcp/0"]
SIZES = [(80, 24), (200, 50)]
FIRST_SCREEN = (
    "You are not in a circle yet",
    "Start a circle",
    "Join a circle with an invite code",
    "Connect to a relay",
    "relays",
    "/ip4/HOST/tcp/4747/p2p/PEERID",
    "q Quit",
    "? Help",
)


@pytest.fixture
def organizer(tmp_path: Path) -> Iterator[NodeProcess]:
    """A fresh member's node, running on its own (`kith node`), in no circle yet."""
    node = NodeProcess(make_home(tmp_path, "Ash"), passphrase_file(tmp_path)).start()
    try:
        yield node
    finally:
        node.stop()


def fresh_home(root: Path, name: str) -> Home:
    home = Home(root / name)
    home.ensure()
    identity = MemberIdentity.generate(name, now=int(time.time()))
    Keystore.create(home.keystore, PASSPHRASE, KeystoreData.generate(identity), TEST_KDF)
    return home


async def unlock(pilot: Pilot[Any], name: str) -> MainScreen:
    """Unlock a fresh home; the client starts its node. Returns the main screen once the
    first screen has settled (the node listed no circle)."""
    await wait_for_text(pilot, "Unlock kith")
    await type_text(pilot, PASSPHRASE)
    await pilot.press("enter")
    return await first_screen(pilot, name)


async def first_screen(pilot: Pilot[Any], name: str) -> MainScreen:
    app = pilot.app
    await wait_until(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.first_run, 30, "the first screen")
    await wait_for_text(pilot, f"kith · {name}")
    return app.screen  # type: ignore[return-value]


async def paste(pilot: Pilot[Any], text: str) -> None:
    pilot.app.screen.query_one("#code").post_message(events.Paste(text))  # as a terminal pastes
    await pilot.pause(0.1)


def status_line(app: Any) -> str:
    return str(app.screen.query_one("#join-status").render())


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "200x50"])
def test_a_fresh_member_creates_a_circle_from_the_first_screen(organizer: NodeProcess, size: tuple[int, int]) -> None:
    app = make_app(organizer.home)

    async def scenario() -> None:
        async with app.run_test(size=size) as pilot:
            main = await first_screen(pilot, "Ash")
            await wait_for_text(pilot, "connected to nobody yet")
            await wait_for_text(pilot, "q Quit")  # the footer follows the focus
            text = screen_text(app)
            for promise in FIRST_SCREEN:
                assert promise in text, f"{promise!r} not in\n{text}"
            assert "Invite" not in text.splitlines()[-1]  # nothing to invite to yet
            titles = {command.title for command in app.get_system_commands(main)}
            assert {"New circle", "Join", "Connect to a relay", "Help", "Quit"} <= titles
            assert not {"Invite", "Feed: Post", "Show Feed"} & titles
            await pilot.press("enter")  # the first choice: start a circle
            await wait_for_text(pilot, "Start a circle")
            app.screen.query_one("#f-name").value = "x" * 65  # too long: the node would refuse it
            await pilot.press("enter")
            await wait_for_text(pilot, "the circle name is too long: at most 64 characters")
            assert organizer.call("circles") == []  # refused before anything was asked of the node
            app.screen.query_one("#f-name").value = ""
            await type_text(pilot, "Tenants [bold]Union")  # brackets stay words, never markup
            await pilot.press("tab")
            await type_text(pilot, "Our building")
            await pilot.press("enter")
            await wait_until(pilot, lambda: not main.first_run and main.views is not None, 30, "the new circle")
            await wait_for_text(pilot, "Tenants [bold]Union · 1 members")
            assert "You are not in a circle yet" not in screen_text(app)
            assert app.focused is not None and app.focused.id == "feed-list"
            await pilot.press("q")

    run(scenario())
    (circle,) = organizer.call("circles")
    assert circle["name"] == "Tenants [bold]Union" and circle["am_member"]
    assert organizer.call("views", circle=circle["id"])["description"] == "Our building"


def test_a_second_fresh_member_joins_with_a_code_from_the_first(organizer: NodeProcess, tmp_path: Path) -> None:
    first = make_app(organizer.home)
    codes: list[str] = []

    async def create_and_invite() -> None:
        async with first.run_test(size=(80, 24)) as pilot:
            await first_screen(pilot, "Ash")
            await pilot.press("plus")
            await wait_for_text(pilot, "Start a circle")
            await type_text(pilot, "Night Shift")
            await pilot.press("enter")
            await wait_for_text(pilot, "Night Shift · 1 members", timeout=30)
            await pilot.press("i")
            await wait_for_text(pilot, "Invite someone to Night Shift")
            codes.append(first.screen.invite["code"])  # type: ignore[attr-defined]
            await pilot.press("escape")
            await pilot.press("q")  # the client attached, so Ash's node keeps running

    second = make_app(fresh_home(tmp_path, "Noor"), node_args=LOOPBACK)

    async def join() -> None:
        async with second.run_test(size=(200, 50)) as pilot:
            await unlock(pilot, "Noor")
            await pilot.press("down", "enter")  # the second choice: join with a code
            await wait_for_text(pilot, "Join a circle")
            await paste(pilot, codes[0])
            await pilot.press("enter")
            await wait_until(pilot, lambda: any(s in status_line(second) for s in ("Request pending", "You are in")))
            await wait_for_text(pilot, "You are in Night Shift", timeout=30)  # Ash's node let Noor in
            await pilot.press("escape")
            main = second.screen
            assert isinstance(main, MainScreen)
            await wait_until(pilot, lambda: not main.first_run and main.views is not None, 30, "the circle")
            await wait_until(pilot, lambda: "Night Shift · 2 members" in screen_text(second), 30, "both members")
            assert "You are not in a circle yet" not in screen_text(second)
            await pilot.press("q")

    run(create_and_invite())
    run(join(), timeout=90)
    (circle,) = organizer.call("circles")
    names = {m["name"] for m in organizer.call("views", circle=circle["id"])["members"]}
    assert names == {"Ash", "Noor"}


def test_a_bad_code_is_one_line_and_a_code_nobody_answers_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(JoinScreen, "UNREACHABLE_AFTER_S", 1.0)
    app = make_app(fresh_home(tmp_path, "Robin"), node_args=LOOPBACK)
    # A well-formed code whose circle nobody can be reached for: it names no address to dial.
    lonely = InviteCode(os.urandom(32), os.urandom(16), (), None).encode()

    async def scenario() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await unlock(pilot, "Robin")
            await pilot.press("j")
            await wait_for_text(pilot, "Join a circle")
            for bad, said in (
                ("hello there", "! this is not an invite code (it should start with KITH-INVITE:)"),
                (lonely[:-6], "! invite code is damaged (was it cut off when copying?)"),
                (lonely[:-8] + "AAAAAAAA", "! invite code is damaged (check for a typo or a missing piece)"),
            ):
                app.screen.query_one("#code").value = ""
                await paste(pilot, bad)
                await pilot.press("enter")
                await wait_until(pilot, lambda said=said: status_line(app) == said, what=said)
                assert "\n" not in status_line(app)
            assert (await app.call("joins")) == []  # nothing reached the node
            app.screen.query_one("#code").value = ""
            await paste(pilot, lonely)
            await pilot.press("enter")
            await wait_until(pilot, lambda: "Cannot reach anyone yet" in status_line(app), what="nobody answered")
            assert "ask your organizer for the relay's address" in status_line(app)
            await wait_for_text(pilot, "Cannot reach anyone yet")  # and it fits the 80x24 dialog
            assert len(await app.call("joins")) == 1  # kept, to go out once someone is reached
            await pilot.press("escape")
            await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), what="the first screen again")
            await pilot.press("c")
            await wait_for_text(pilot, "Connect to a peer or relay")
            await type_text(pilot, "nowhere")
            await pilot.press("enter")
            await wait_for_text(pilot, "! not a peer address: it looks like /ip4/HOST/tcp/PORT/p2p/PEERID")
            await pilot.press("q")

    run(scenario(), timeout=90)
