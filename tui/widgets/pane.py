"""What every view pane shares: how it gets the circle's views, acts, and asks for input."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets.data_table import CellDoesNotExist, RowDoesNotExist

from kith.tui.member_text import plain
from kith.tui.screens.form import Field, FormScreen

if TYPE_CHECKING:
    from kith.tui.screens.main import MainScreen


class Pane(Vertical):
    """One view of the open circle (feed, aid board, fund, ...), shown one at a time."""

    TITLE: ClassVar[str] = ""
    HELP: ClassVar[str] = ""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.views: dict[str, Any] | None = None

    @property
    def main(self) -> MainScreen:
        from kith.tui.screens.main import MainScreen

        for screen in self.app.screen_stack:
            if isinstance(screen, MainScreen):
                return screen
        raise LookupError("the main screen is not open")

    @property
    def me(self) -> str:
        return (self.views or {}).get("me", "")

    def show(self, views: dict[str, Any]) -> None:
        """Redraw from fresh views (called on every change; keep the cursor where it was)."""
        self.views = views
        self.refresh_bindings()  # roles may have changed what this member may do

    @property
    def usable_width(self) -> int:
        return self.size.width or max(40, self.app.size.width - 22)

    def on_resize(self) -> None:
        if self.views is not None:
            self.show(self.views)

    def focus_main(self) -> None:
        target = self.query(".main").first(Widget) if self.query(".main") else None
        (target or self).focus()

    def act(self, method: str, done: str, **params: Any) -> None:
        self.main.act(method, done, **params)

    def ask(
        self,
        title: str | Text,
        fields: list[Field],
        then: Callable[[dict[str, Any]], object],
        *,
        submit: str = "Send",
        note: str | Text = "",
        convert: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        writes: bool = True,
    ) -> None:
        """Ask with a form, then ``then`` the values. A form that ``writes`` to the open
        circle is refused at once (one line) in a circle this member is no longer in."""
        if writes and self.main.refuse_if_removed():
            return

        def done(values: dict[str, Any] | None) -> None:
            if values is not None:
                then(values)

        self.app.push_screen(FormScreen(title, fields, submit=submit, note=note, convert=convert), done)

    def my_roles(self) -> tuple[str, ...]:
        for member in (self.views or {}).get("members", ()):
            if member["id"] == self.me:
                return tuple(member["roles"])
        return ()


def stamp(ts: int | None, now: float | None = None) -> str:
    """A short local time: "14:05" today, "27 Nov 14:05" this year, "27 Nov 2025 14:05" otherwise."""
    if not ts:
        return "-"
    local = time.localtime(ts)
    today = time.localtime(now if now is not None else time.time())
    if local[:3] == today[:3]:
        return time.strftime("%H:%M", local)
    if local.tm_year == today.tm_year:
        return time.strftime("%d %b %H:%M", local)
    return time.strftime("%d %b %Y %H:%M", local)


def day_and_time(ts: int, now: float | None = None) -> str:
    """When an event starts: "Sun 07 Dec 18:30", with the year when it is not this year."""
    local = time.localtime(ts)
    this_year = time.localtime(now if now is not None else time.time()).tm_year
    return time.strftime("%a %d %b %H:%M" if local.tm_year == this_year else "%a %d %b %Y %H:%M", local)


SEALED = "(sealed before you joined)"
"""Shown instead of words this device holds no key for (the circle keeps history from newcomers)."""


def words(item: dict[str, Any], field: str) -> str:
    """An item's text, or the sealed mark when this node cannot read it."""
    return item.get(field) or "" if item.get("readable", True) else SEALED


def short(hex_id: str | None) -> str:
    return (hex_id or "")[:8]


def fill_table(table: Any, rows: list[tuple[str, tuple[Any, ...]]]) -> None:
    """Replace a DataTable's rows, keeping the cursor on the same row key where possible.

    A DataTable reads a ``str`` cell as markup, so every cell becomes a `Text` here: a
    member's words in a cell are shown as typed (tui/member_text.py).
    """
    keep = None
    if table.row_count and table.cursor_row is not None:
        try:
            keep = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        except (CellDoesNotExist, RowDoesNotExist):  # an empty or shrinking table
            keep = None
    table.clear()
    for key, cells in rows:
        table.add_row(*(cell if isinstance(cell, Text) else plain(cell) for cell in cells), key=key)
    if keep is not None and any(key == keep for key, _ in rows):
        table.move_cursor(row=table.get_row_index(keep), animate=False)


def selected_key(table: Any) -> str | None:
    if not table.row_count or table.cursor_row is None:
        return None
    try:
        return table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
    except (CellDoesNotExist, RowDoesNotExist):  # no cell under the cursor
        return None


def clip(text: str | None, width: int) -> Text:
    """Untrusted text for a table cell ``width`` wide: never markup, cut with an ellipsis."""
    return plain(text, limit=width)


def fit_columns(table: Any, columns: list[tuple[str, int]], flex: int, width: int) -> list[int]:
    """(Re)create the columns so the table fits ``width`` cells; column ``flex`` takes the rest.

    Returns the widths, so callers can clip long text with an ellipsis instead of pushing
    columns off screen (80 columns is a size people really use).
    """
    widths = [w for _label, w in columns]
    fixed = sum(w for i, w in enumerate(widths) if i != flex) + 2 * len(columns) + 1
    widths[flex] = max(8, width - fixed)
    if getattr(table, "kith_columns", None) != (columns, widths):
        table.clear(columns=True)
        for (label, _), w in zip(columns, widths, strict=True):
            table.add_column(label, width=w)
        table.kith_columns = (columns, widths)
    return widths
