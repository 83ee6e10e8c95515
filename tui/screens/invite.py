"""An invite: the code to copy and the same code as a QR block to scan from the screen.

A QR code scans only whole and unwrapped, so the dialog grows to the code's width and the
QR is drawn only when the terminal has room for all of it; otherwise the dialog says how
much room it needs and the code above stays there to copy (select it, then Ctrl+C).
"""

from __future__ import annotations

from typing import Any

from rich.cells import cell_len
from rich.console import Console
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from kith.tui.member_text import TEXT, line, plain
from kith.tui.widgets.sidebar import circle_name

NOTE = (
    "Give this code to one person, in a way only they see (in person, or a private message). "
    "When they join, an organizer lets them in."
)
DIALOG_WIDTH = 76
CHROME_CELLS = 4
"""The dialog's border and padding, left and right."""
CHROME_ROWS = 2
"""The dialog's border, top and bottom."""


def wrapped_rows(text: str, width: int) -> int:
    """How many rows ``text`` takes wrapped at ``width`` cells (as a Static wraps it)."""
    return len(Text(text).wrap(Console(width=width), width))


class InviteScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape", "dismiss", "Close"), Binding("enter", "dismiss", "Close", show=False)]

    def __init__(self, circle: dict[str, Any], invite: dict[str, Any], circles: list[dict[str, Any]] = ()) -> None:  # type: ignore[assignment]
        super().__init__()
        self.circle = circle
        self.invite = invite
        self.circles = list(circles) or [circle]
        self.qr = plain(invite.get("qr"), limit=None, multiline=True)  # whole: a QR cut short does not scan
        self.qr_lines = self.qr.plain.splitlines()
        self.code = plain(invite["code"], limit=TEXT)
        self.qr_width = max((cell_len(row) for row in self.qr_lines), default=0)

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="invite"):
            yield Label(line("Invite someone to ", circle_name(self.circle, self.circles)), id="dialog-title")
            yield Static(
                line(NOTE),
                classes="note",
            )
            yield Static(self.code, id="invite-code")
            yield Static(self.qr, id="invite-qr")
            yield Static("", id="invite-qr-note")
            yield Static(line("Esc: close"), classes="hint")

    def on_mount(self) -> None:
        self._fit()

    def on_resize(self, event: events.Resize) -> None:
        self._fit()

    def _fit(self) -> None:
        """Show the QR only when all of it fits; otherwise say what it needs. A wider
        dialog wraps the code into fewer rows, so the narrowest width that fits is used."""
        width, height = self.app.size
        base = min(width, max(DIALOG_WIDTH, self.qr_width + CHROME_CELLS))
        chosen, rows_needed = base, self.rows_needed(base)
        for candidate in range(base, width + 1, 4):
            rows = self.rows_needed(candidate)
            if rows < rows_needed:  # what to ask for, if nothing fits: the least height
                rows_needed = rows
            if rows <= height:
                chosen = candidate
                break
        self.query_one("#dialog").styles.width = chosen
        fits = self.qr_width + CHROME_CELLS <= width and rows_needed <= height
        self.query_one("#invite-qr").display = fits and bool(self.qr_lines)
        note = self.query_one("#invite-qr-note", Static)
        note.display = not fits and bool(self.qr_lines)
        if not fits:
            note.update(
                line(
                    f"The QR code needs a terminal of at least {self.qr_width + CHROME_CELLS} columns by "
                    f"{rows_needed} rows (this one is {width} by {height}): make the window bigger to scan it, "
                    "or give the code above as text (select it, then Ctrl+C)."
                )
            )

    def rows_needed(self, dialog_width: int) -> int:
        """The dialog's height with the QR, at ``dialog_width`` cells: the title and its gap,
        the note and its gap, the code and its gap, the QR, the keys and the border."""
        inner = max(1, dialog_width - CHROME_CELLS)
        text = 2 + wrapped_rows(NOTE, inner) + 1 + wrapped_rows(self.code.plain, inner) + 1 + 1
        return text + len(self.qr_lines) + CHROME_ROWS

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)
