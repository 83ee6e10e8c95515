"""The circles sidebar: each circle with its new-message and urgent counts (in words)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from tui.member_text import NAME, line, plain
from tui.messages import CircleChosen


class CircleList(OptionList):
    def show(self, circles: list[dict[str, Any]], unread: dict[str, int], current: str | None) -> None:
        options = []
        for circle in circles:
            label = plain(circle["name"], "bold", limit=NAME)
            marks = []
            if unread.get(circle["id"]):
                marks.append(f"{unread[circle['id']]} new")
            if circle["urgent"]:
                marks.append(f"!{circle['urgent']} urgent")
            label.append(f"\n  {circle['members']} members")
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
