"""Joining a circle with an invite code, and watching the request until someone lets you in."""

from __future__ import annotations

from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from identity.errors import KithError
from p2pnet.control import METHOD_NOT_FOUND
from tui.member_text import line, plain
from tui.rpc import NodeError


class JoinScreen(ModalScreen[dict[str, Any] | None]):
    BINDINGS = [Binding("escape", "close", "Close")]

    def __init__(self) -> None:
        super().__init__()
        self.result: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="join"):
            yield Label("Join a circle", id="dialog-title")
            yield Static("Paste the invite code someone gave you.", classes="note")
            yield Input(placeholder="invite code", id="code")
            yield Static("", id="join-status")
            yield Static("Enter: join · Esc: close", classes="hint")

    @on(Input.Submitted, "#code")
    def _submit(self, event: Input.Submitted) -> None:
        code = event.value.strip()
        if not code:
            self.query_one("#join-status", Static).update(line("! paste a code first"))
            return
        self.query_one("#join-status", Static).update(line("Sending your request…"))
        self.join(code)

    @work(exclusive=True)
    async def join(self, code: str) -> None:
        status = self.query_one("#join-status", Static)
        try:
            result = await self.app.call("join", code=code)  # type: ignore[attr-defined]
        except NodeError as exc:
            if exc.code == METHOD_NOT_FOUND:
                status.update(line("! Your node cannot join by invite yet (it needs a newer kith)."))
            else:
                status.update(line("! ", str(exc)))
            return
        except KithError as exc:
            status.update(line("! ", str(exc)))
            return
        self.result = result
        self.show_status(result)

    def show_status(self, result: dict[str, Any]) -> None:
        status = self.query_one("#join-status", Static)
        if result.get("status") == "joined":
            status.update(line("You are in. Esc closes this; the circle is in your sidebar."))
        else:
            status.update(
                line(
                    "Request pending: an organizer of the circle lets you in. This updates when they do; "
                    "you can close it and carry on meanwhile."
                )
            )

    def refused(self, reason: str) -> None:
        """Called by the main screen when the node reports `join_refused`."""
        self.query_one("#join-status", Static).update(line("! The circle refused the request: ", plain(reason)))

    def joined(self) -> None:
        """Called by the main screen when the node reports `joined`."""
        if self.result is not None:
            self.result = dict(self.result, status="joined")
            self.show_status(self.result)

    def action_close(self) -> None:
        self.dismiss(self.result)
