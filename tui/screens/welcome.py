"""First run: creating an identity (a display name and a passphrase, typed twice)."""

from __future__ import annotations

import os
import time

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input, Label, Static

from kith.identity.errors import KithError
from kith.identity.keys import DEFAULT_NAME, MemberIdentity, clean_display_text
from kith.identity.keystore import TEST_KDF, KdfParams, KeystoreData, check_new_passphrase
from kith.p2pnet.home import Home
from kith.p2pnet.keyfile import Keystore
from kith.tui.member_text import line


def kdf_params() -> KdfParams:
    """MODERATE Argon2id, unless KITH_INSECURE_TEST_KDF=1 (tests only; the screen says so)."""
    return TEST_KDF if os.environ.get("KITH_INSECURE_TEST_KDF") == "1" else KdfParams()


class WelcomeScreen(Screen[None]):
    BINDINGS = [Binding("ctrl+q", "app.quit", "Quit")]

    def __init__(self, home: Home) -> None:
        super().__init__()
        self.home = home

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="welcome"):
            yield Label("Welcome to kith", id="dialog-title")
            yield Static(
                "kith keeps your circles' messages, pledges and funds end-to-end encrypted on your own "
                "device. First, create your identity. Nobody, not even kith, can recover a forgotten passphrase."
                + ("\nTEST MODE: weak key protection (KITH_INSECURE_TEST_KDF=1)." if kdf_params() == TEST_KDF else ""),
                classes="note",
            )
            yield Label("Display name (what your circles see; you can change it per circle)")
            yield Input(placeholder="e.g. River", id="name")
            yield Label("Passphrase (at least 8 characters)")
            yield Input(password=True, id="passphrase")
            yield Label("The same passphrase again")
            yield Input(password=True, id="again")
            yield Static("", id="form-error")
            yield Static("Enter: next field / create · Ctrl+Q: quit", classes="hint")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#name", Input).focus()

    def show_error(self, message: str) -> None:
        self.query_one("#form-error", Static).update(line("! ", message))
        for field in self.query(Input):
            field.disabled = False

    @on(Input.Submitted)
    def _next(self, event: Input.Submitted) -> None:
        if event.input.id != "again":
            self.focus_next()
            return
        name = self.query_one("#name", Input).value.strip()
        passphrase = self.query_one("#passphrase", Input).value
        try:
            name = clean_display_text(name or DEFAULT_NAME, max_chars=64, what="display name")
            check_new_passphrase(passphrase)
        except KithError as exc:
            self.show_error(str(exc))
            return
        if passphrase != event.value:
            self.show_error("the two passphrases differ; type them again")
            self.query_one("#passphrase", Input).value = ""
            event.input.value = ""
            self.query_one("#passphrase", Input).focus()
            return
        for field in self.query(Input):
            field.disabled = True
        self.query_one("#form-error", Static).update("Creating your keys…")
        self.create(name, passphrase)

    @work(exclusive=True, thread=True)
    def create(self, name: str, passphrase: str) -> None:
        try:
            self.home.ensure()
            identity = MemberIdentity.generate(name, now=int(time.time()))
            Keystore.create(self.home.keystore, passphrase, KeystoreData.generate(identity), kdf_params())
        except KithError as exc:
            self.app.call_from_thread(self.show_error, str(exc))
            return
        self.app.call_from_thread(self.created, passphrase)

    def created(self, passphrase: str) -> None:
        self.query_one("#form-error", Static).update("Created. Starting your node…")
        self.app.start_and_attach(passphrase)  # type: ignore[attr-defined]
