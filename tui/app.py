"""The terminal client: a Textual app that is a client of one node's control API.

Starting (`KithApp.on_mount`): if a node already runs for the home, attach to it and leave
it running on exit; otherwise ask for the passphrase (or walk through creating an
identity), check it here with `Keystore.unlock` in a thread (a wrong one is a message and
another try), start ``kith node`` with the passphrase on a pipe, attach, and stop that
node on exit. Everything slow (unlocking, starting, every call to the node) runs in a
worker, so the interface never freezes; the node's event notifications arrive as
`NodeEvent` messages and the open circle refreshes itself without a keypress.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widgets import Input

from kith.identity.errors import KithError
from kith.p2pnet.control import socket_in_use
from kith.p2pnet.home import Home
from kith.tui.launcher import OwnedNode, start_node
from kith.tui.member_text import LINE, TEXT, line, visible
from kith.tui.messages import NodeEvent
from kith.tui.rpc import NodeConnection


class KithApp(App[None]):
    TITLE = "kith"
    CSS_PATH = "app.tcss"
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
        Binding(
            "ctrl+c", "copy_or_quit", "Copy the selected text; with nothing selected, quit", show=False, priority=True
        ),  # fmt: skip
    ]
    LEFT_OUT = frozenset({"Keys", "Quit", "Screenshot"})
    """Textual's palette commands that kith replaces or leaves out: its key panel (kith's Help,
    ``?``, lists the real keys), its second Quit, and its screenshot (it would write what is on
    the screen, unencrypted, into the working directory)."""

    def __init__(self, home: Home, *, node_args: list[str] | None = None, demo: bool = False) -> None:
        super().__init__()
        self.home = home
        self.node_args = node_args or []
        self.demo = demo
        self.node: NodeConnection | None = None
        self.owned: OwnedNode | None = None
        self.me: dict[str, Any] = {}
        self._stopping = False  # not `_closing`: Textual's own message pump uses that name

    # --- starting -------------------------------------------------------------------

    def on_mount(self) -> None:
        from kith.tui.screens.unlock import UnlockScreen
        from kith.tui.screens.welcome import WelcomeScreen

        if socket_in_use(self.home.socket):
            self.push_screen(StartingScreen("Attaching to your running node…"))
            self.attach()
        elif self.home.exists():
            self.push_screen(UnlockScreen(self.home))
        else:
            self.push_screen(WelcomeScreen(self.home))

    @work(exclusive=True, group="start")
    async def start_and_attach(self, passphrase: str) -> None:
        """Start this home's node with the (already checked) passphrase, then attach."""
        if not socket_in_use(self.home.socket):
            try:
                self.owned = await start_node(self.home, passphrase, self.node_args)
            except KithError as exc:
                self.show_start_error(str(exc))
                return
        await self._connect_to_node()

    @work(exclusive=True, group="start")
    async def attach(self) -> None:
        await self._connect_to_node()

    def _post_node_event(self, event: dict[str, Any]) -> None:
        self.post_message(NodeEvent(event))

    async def _connect_to_node(self) -> None:
        from kith.tui.screens.main import MainScreen

        try:
            self.node = await NodeConnection.open(self.home.socket)
            await self.node.subscribe([], self._post_node_event)
            self.me = await self.node.call("whoami")
        except KithError as exc:
            self.show_start_error(f"could not talk to your node: {exc}")
            return
        self.switch_screen(MainScreen())

    def show_start_error(self, message: str) -> None:
        screen = self.screen
        if hasattr(screen, "show_error"):
            screen.show_error(message)
        else:
            self.notify(message, severity="error", timeout=30)

    # --- node events and actions ----------------------------------------------------

    @on(NodeEvent)
    def _node_event(self, message: NodeEvent) -> None:
        from kith.tui.screens.main import MainScreen

        for screen in self.screen_stack:
            if isinstance(screen, MainScreen):
                screen.node_event(message.event)
        if message.event.get("type") == "disconnected" and not self._stopping:
            self.notify("Lost the connection to your node. Quit and start kith again.", severity="error", timeout=60)

    async def call(self, method: str, **params: Any) -> Any:
        """Call the node. If the client began to quit while waiting, the calling worker is
        cancelled instead of drawing into screens that are being taken down."""
        if self.node is None:
            raise KithError("not connected to a node yet")
        result = await self.node.call(method, **params)
        if not self.is_running:
            raise asyncio.CancelledError("the client is quitting")
        return result

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Every toast is plain text: kith's messages quote members (names, reasons) and the
        node's errors, so ``markup`` is ignored, and what a member wrote shows as typed, its
        invisible characters escaped and its length bounded (tui/member_text.py)."""
        del markup
        message, title = visible(message, TEXT, multiline=True), visible(title, LINE)
        if timeout is None:
            super().notify(message, title=title, severity=severity, markup=False)
        else:
            super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    # --- the command palette --------------------------------------------------------

    def get_system_commands(self, screen: Screen[Any]):
        extra = getattr(screen, "palette_commands", None)
        if extra is not None:
            yield from extra()
        yield SystemCommand("Quit", "Leave kith (stops the node if kith started it)", self.action_quit)
        yield from (command for command in super().get_system_commands(screen) if command.title not in self.LEFT_OUT)

    # --- stopping -------------------------------------------------------------------

    async def action_quit(self) -> None:
        self.exit()  # `on_unmount` closes the connection and stops the node we started

    async def action_copy_or_quit(self) -> None:
        """Ctrl+C: copy what is selected (an invite code, say), as Textual's help says it
        does; with nothing selected, leave at once, as in any terminal program."""
        focused = self.focused
        selected = focused.selected_text if isinstance(focused, Input) else ""
        selected = selected or self.screen.get_selected_text() or ""
        if selected:
            self.copy_to_clipboard(selected)
            self.notify("Copied the selected text.")
        else:
            await self.action_quit()

    async def shutdown(self) -> None:
        """Close the connection; stop the node only if this client started it."""
        if self._stopping:
            return
        self._stopping = True
        if self.node is not None:
            with contextlib.suppress(KithError, OSError):
                await self.node.close()
        if self.owned is not None:
            await self.owned.stop()

    async def on_unmount(self) -> None:
        await self.shutdown()


class StartingScreen(Screen[None]):
    """A calm line while something slow happens (attaching, starting the node)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def compose(self):
        from textual.widgets import Static

        yield Static(line(self.text), id="starting")

    def show_error(self, message: str) -> None:
        from textual.widgets import Static

        self.query_one("#starting", Static).update(line("! ", message, "\n\nPress Ctrl+Q to quit."))


def make_app(home: Path | Home, *, node_args: list[str] | None = None, demo: bool = False) -> KithApp:
    """The client for one home (tests and `kith` both build it here)."""
    return KithApp(home if isinstance(home, Home) else Home(home), node_args=node_args, demo=demo)
