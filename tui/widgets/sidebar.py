"""The circles sidebar: each circle with its new-message and urgent counts (in words).

Two circles may carry one name (anyone who starts a circle names it, and an invite can
bring in a second "Riverside"): wherever circles are listed, a shared name gets the
circle's short id after it, so they can be told apart. A circle this member was removed
from (or left) stays listed, marked, and read-only.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich.text import Text
from textual import on
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from kith.tui.member_text import NAME, line, plain, visible
from kith.tui.messages import CircleChosen

REMOVED = "removed: read only"
ID_CHARS = 6


def circle_suffixes(circles: list[dict[str, Any]]) -> dict[str, str]:
    """For each listed circle whose name another listed circle shares, "#" and its short id."""
    names = Counter(visible(c["name"], NAME).casefold() for c in circles)
    return {c["id"]: f"#{c['id'][:ID_CHARS]}" for c in circles if names[visible(c["name"], NAME).casefold()] > 1}


def circle_name(circle: dict[str, Any], circles: list[dict[str, Any]], style: str = "") -> Text:
    """A circle's name as shown, told apart from the others listed with the same name."""
    suffix = circle_suffixes(circles).get(circle["id"])
    return line(plain(circle["name"], style, limit=NAME), f" {suffix}" if suffix else "")


class CircleList(OptionList):
    def show(self, circles: list[dict[str, Any]], unread: dict[str, int], current: str | None) -> None:
        options = []
        suffixes = circle_suffixes(circles)
        for circle in circles:
            label = plain(circle["name"], "bold", limit=NAME)
            if circle["id"] in suffixes:
                label.append(f" {suffixes[circle['id']]}", style="bold")
            marks = []
            if unread.get(circle["id"]):
                marks.append(f"{unread[circle['id']]} new")
            if circle["urgent"]:
                marks.append(f"!{circle['urgent']} urgent")
            label.append(f"\n  {circle['members']} members")
            if not circle.get("am_member", True):
                label.append(f"\n  {REMOVED}", style="italic")
            if marks:
                label.append("\n  " + " · ".join(marks), style="bold")
            prefix = Text("▶ " if circle["id"] == current else "  ")
            options.append(Option(prefix + label, id=circle["id"]))
        highlighted = self.highlighted
        self.clear_options()
        self.add_options(options or [Option(line("No circles yet.\nPress + to start one\nor j to join."), id="none")])
        if options:
            ids = [c["id"] for c in circles]
            self.highlighted = ids.index(current) if current in ids else highlighted or 0

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id and event.option.id != "none":
            self.post_message(CircleChosen(event.option.id))
