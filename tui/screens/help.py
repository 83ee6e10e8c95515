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
    "leaves this device; relays store it without being able to read it. The command palette finds every "
    "action by name."
)

KEY_NAMES = {"question_mark": "?", "exclamation_mark": "!", "plus": "+", "escape": "Esc", "enter": "Enter"}


def key_name(key: str) -> str:
    """How a binding's key reads in help: "?", "Ctrl+C", "Esc"."""
    if key in KEY_NAMES:
        return KEY_NAMES[key]
    if "+" in key:  # ctrl+c
        return "+".join(part.capitalize() if len(part) > 1 else part.upper() for part in key.split("+"))
    return key


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
                text.append(f"  {key_name(key):>9}  {description[:1].upper()}{description[1:]}\n")
        with Vertical(id="dialog", classes="help"):
            yield Label("Keys", id="dialog-title")
            with VerticalScroll():
                yield Static(text)
                yield Static(SECURITY, classes="note")
            yield Static("Esc: close", classes="hint")

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).styles.max_height = max(4, self.app.size.height - 6)

    def action_close(self) -> None:
        self.dismiss(None)
