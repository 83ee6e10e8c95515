"""Events with RSVPs: who is coming, and your own answer."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from kith.identity.errors import UsageError
from kith.tui.member_text import NAME, line, plain
from kith.tui.screens.form import Field, field_of
from kith.tui.widgets.pane import Pane, clip, day_and_time, fill_table, fit_columns, selected_key, words


def convert_event(values: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """The new event's fields; `UsageError` (one line) for a start that is not a date or
    that has already passed: an event is planned ahead, and a typo in the year ("2020")
    would otherwise go out to the whole circle as a date nobody can come to."""
    try:
        starts = int(datetime.fromisoformat(values["starts"]).timestamp())
    except ValueError:
        raise UsageError("the start must look like 2026-12-01 18:30") from None
    if starts < (now if now is not None else time.time()):
        shown = time.strftime("%Y-%m-%d %H:%M", time.localtime(starts))
        raise UsageError(f"{shown} has already passed: give a start in the future (check the year)")
    return {"title": values["title"], "starts": starts, "place_hint": values["place_hint"] or None}


class EventsPane(Pane):
    TITLE = "Events"
    HELP = "Events by start time. Your answer is visible to the circle."
    BINDINGS = [
        Binding("a", "add_event", "New event"),
        Binding("y", "rsvp('yes')", "Going"),
        Binding("m", "rsvp('maybe')", "Maybe"),
        Binding("x", "rsvp('no')", "Can't go"),
    ]

    def compose(self) -> ComposeResult:
        yield DataTable(id="events-table", classes="main", cursor_type="row")
        yield Static("", id="event-detail")

    def show(self, views: dict[str, Any]) -> None:
        super().show(views)
        self.events = {e["id"]: e for e in views["events"]}
        table = self.query_one("#events-table", DataTable)
        when = max((len(day_and_time(e["starts"])) for e in views["events"]), default=16)  # a year makes it 21
        columns = [("When", when), ("What", 0), ("Going", 5), ("Maybe", 5), ("You", 5)]
        widths = fit_columns(table, columns, 1, self.usable_width)
        rows = []
        for e in views["events"]:
            mine = next((answer for member, _name, answer in e["rsvps"] if member == self.me), "-")
            title = clip(words(e, "title"), widths[1])
            cells = (day_and_time(e["starts"]), title, str(e["yes"]), str(e["maybe"]), mine)
            rows.append((e["id"], cells))
        fill_table(table, rows)
        self._detail()

    def _detail(self) -> None:
        event = self.selected()
        detail = self.query_one("#event-detail", Static)
        if event is None:
            detail.update(line("No events yet. Press a to plan one." if not getattr(self, "events", None) else ""))
            return
        text = line(plain(words(event, "title")), ", by ", plain(event["author_name"], limit=NAME), ".")
        if event["place_hint"]:
            text.append_text(line(" Where: ", plain(event["place_hint"]), "."))
        text.append(" Answers: ")
        for index, (_member, name, answer) in enumerate(event["rsvps"]):
            text.append_text(line(", " if index else "", plain(name, limit=NAME), " (", plain(answer), ")"))
        if not event["rsvps"]:
            text.append("nobody has answered yet")
        detail.update(text)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._detail()

    def selected(self) -> dict[str, Any] | None:
        key = selected_key(self.query_one("#events-table", DataTable))
        return getattr(self, "events", {}).get(key) if key else None

    def action_add_event(self) -> None:
        self.ask(
            "Plan an event",
            [
                field_of("event.create", "title", "What"),
                Field("starts", "Starts (YYYY-MM-DD HH:MM, your local time)", required=True),
                field_of("event.create", "place_hint", "Where (a hint; share exact places 1:1 if it is sensitive)"),
            ],
            lambda v: self.act("event.create", "Event added.", **v),
            convert=convert_event,
            submit="Add",
        )

    def action_rsvp(self, answer: str) -> None:
        event = self.selected()
        if event is None:
            self.app.notify("Choose an event first.")
            return
        self.act("rsvp", f"Answered {answer}.", event=event["id"], answer=answer)
