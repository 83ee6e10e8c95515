"""Help: every key, grouped by view, and what the security marks mean."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

SECURITY = (
    "What the marks mean: 'verified' means you compared safety numbers with that person; until then a "
    "member is 'unverified'. Everything you write is signed by you and encrypted for the circle before it "
    "leaves this device; relays store it without being able to read it. Ctrl+P opens the command palette, "
    "where every action can be found by name."
)

KEY_NAMES = {"question_mark": "?", "plus": "+", "escape": "Esc", "enter": "Enter"}


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape", "close", "Close"), Binding("question_mark", "close", "Close", show=False)]

    def __init__(self, groups: list[tuple[str, list[tuple[str, str]]]]) -> None:
        super().__init__()
        self.groups = groups

    def compose(self) -> ComposeResult:
        text = Text()
        for title, bindings in self.groups:
            text.append(f"{title}\n", style="bold underline")
            for key, description in bindings:
                text.append(f"  {KEY_NAMES.get(key, key):>6}  {description}\n")
        with Vertical(id="dialog", classes="help"):
            yield Label("Keys", id="dialog-title")
            with VerticalScroll():
                yield Static(text)
                yield Static(SECURITY, classes="note")
            yield Static("Esc: close", classes="hint")

    def action_close(self) -> None:
        self.dismiss(None)
