"""Unlocking: the passphrase, checked here before any node starts.

A wrong passphrase is a message and another try. The check runs Argon2id (about half a
second at the default costs) in a thread, so the screen stays responsive meanwhile.
"""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input, Label, Static

from kith.identity.errors import BadPassphrase, KithError
from kith.p2pnet.home import Home
from kith.p2pnet.keyfile import Keystore
from kith.tui.member_text import line, plain


class UnlockScreen(Screen[None]):
    BINDINGS = [Binding("ctrl+q", "app.quit", "Quit")]

    def __init__(self, home: Home) -> None:
        super().__init__()
        self.home = home

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="unlock"):
            yield Label("Unlock kith", id="dialog-title")
            yield Static(line("Your keys are in ", plain(self.home.root, limit=None), "."), classes="note")
            yield Label("Passphrase")
            yield Input(password=True, id="passphrase")
            yield Static("", id="form-error")
            yield Static("Enter: unlock · Ctrl+Q: quit", classes="hint")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#passphrase", Input).focus()

    def show_error(self, message: str) -> None:
        self.query_one("#form-error", Static).update(line("! ", message))
        field = self.query_one("#passphrase", Input)
        field.disabled = False
        field.value = ""
        field.focus()

    @on(Input.Submitted, "#passphrase")
    def _submit(self, event: Input.Submitted) -> None:
        if not event.value:
            self.show_error("type your passphrase, then Enter")
            return
        event.input.disabled = True
        self.query_one("#form-error", Static).update("Checking…")
        self.check(event.value)

    @work(exclusive=True, thread=True)
    def check(self, passphrase: str) -> None:
        try:
            keystore = Keystore.unlock(self.home.keystore, passphrase)
        except BadPassphrase:
            self.app.call_from_thread(self.show_error, "That passphrase does not open these keys. Try again.")
            return
        except KithError as exc:
            self.app.call_from_thread(self.show_error, str(exc))
            return
        if keystore.data.identity is None:
            self.app.call_from_thread(self.show_error, "this home belongs to a relay; use 'kith relay' for it")
            return
        self.app.call_from_thread(self.unlocked, passphrase)

    def unlocked(self, passphrase: str) -> None:
        self.query_one("#form-error", Static).update("Unlocked. Starting your node…")
        self.app.start_and_attach(passphrase)  # type: ignore[attr-defined]
