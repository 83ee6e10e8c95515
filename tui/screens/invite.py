"""An invite: the code to copy and the same code as a QR block to scan from the screen."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from tui.member_text import NAME, TEXT, line, plain


class InviteScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape", "dismiss", "Close"), Binding("enter", "dismiss", "Close", show=False)]

    def __init__(self, circle_name: str, invite: dict[str, Any]) -> None:
        super().__init__()
        self.circle_name = circle_name
        self.invite = invite

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="invite"):
            yield Label(line("Invite someone to ", plain(self.circle_name, limit=NAME)), id="dialog-title")
            yield Static(
                line(
                    "Give this code to one person, in a way only they see (in person, or a private message). "
                    "When they join, an organizer lets them in."
                ),
                classes="note",
            )
            yield Static(plain(self.invite["code"], limit=TEXT), id="invite-code")
            with VerticalScroll(id="invite-qr-box"):
                yield Static(plain(self.invite.get("qr"), limit=None, multiline=True), id="invite-qr")
            yield Static(line("Esc: close"), classes="hint")

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)
