"""Check-ins: who needs attention now, and how everyone said they are doing."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Label, Static

from kith.tui.member_text import NAME, line, plain, visible
from kith.tui.widgets.pane import Pane, clip, fill_table, fit_columns, selected_key, stamp

STATUS = {"ok": "ok", "struggling": "struggling", "need-help": "NEEDS HELP", None: "no check-in yet"}
DOING_WIDTH = max(map(len, STATUS.values())) + len(" (private)")


class CarePane(Pane):
    TITLE = "Care"
    HELP = (
        "Urgent posts and check-ins nobody has answered yet come first; organizers also see private"
        " check-ins. Check in with c."
    )
    BINDINGS = [
        Binding("c", "checkin", "Check in"),
        Binding("r", "reply", "Reply"),
    ]

    def compose(self) -> ComposeResult:
        yield Label("Needs attention (nobody has answered yet)", classes="section")
        yield DataTable(id="attention-table", classes="main", cursor_type="row")
        yield Label("Latest check-ins", classes="section")
        wellbeing: DataTable[Any] = DataTable(id="wellbeing-table", cursor_type="row")
        wellbeing.add_column("Who")
        # A fixed width: sized to its first rows ("no check-in yet"), the column kept that
        # width, and a "NEEDS HELP (private)" arriving later showed cut.
        wellbeing.add_column("Doing", width=DOING_WIDTH)
        yield wellbeing
        # Organizers only: reports sealed to them, and the moderation log (hidden when empty).
        yield Label("Reports to the organizers (only organizers see these)", id="reports-label", classes="section")
        yield Static("", id="reports")

    def show(self, views: dict[str, Any]) -> None:
        super().show(views)
        # Private check-ins reach organizers' nodes only (views carry them for organizers).
        private = views.get("private_checkins") or []
        self.attention = {a["id"]: a for a in views["needs_attention"]}
        self.private = {p["id"]: p for p in private if p["needs_attention"]}
        table = self.query_one("#attention-table", DataTable)
        stamps = [stamp(a["ts"]) for a in views["needs_attention"]] + [stamp(p["ts"]) for p in self.private.values()]
        when = max(map(len, stamps), default=5)  # "14:05", "27 Nov 14:05" or with a year
        columns = [("Who", 10), ("Why", 20 if self.private else 10), ("When", when), ("What they said", 0)]
        widths = fit_columns(table, columns, 3, self.usable_width)
        rows = []
        for a in views["needs_attention"]:
            why = "!! URGENT" if a["kind"] == "urgent" else STATUS.get(a["status"], a["status"])
            rows.append((a["id"], (clip(a["author_name"], 10), why, stamp(a["ts"]), clip(a["text"], widths[3]))))
        for p in self.private.values():
            why = f"{STATUS.get(p['status'], p['status'])} (private)"
            rows.append((p["id"], (clip(p["member_name"], 10), why, stamp(p["ts"]), clip(p["note"], widths[3]))))
        fill_table(table, rows)
        latest = {p["member"]: p["status"] for p in private if p["latest"]}
        people = []
        for m in views["members"]:
            doing = STATUS.get(m["wellbeing"], m["wellbeing"])
            if m["id"] in latest:
                doing = f"{STATUS.get(latest[m['id']], latest[m['id']])} (private)"
            people.append((m["id"], (clip(m["name"], NAME), doing)))
        fill_table(self.query_one("#wellbeing-table", DataTable), people)
        self._show_reports(views.get("reports") or [], views.get("moderation") or [])

    def _show_reports(self, reports: list[dict[str, Any]], moderation: list[dict[str, Any]]) -> None:
        text = line()
        for index, r in enumerate(reports):
            if r["target"] == "member":
                what = line("member ", plain(r["target_name"] or "", limit=NAME))
            else:
                what = line("a post by ", plain(r["target_name"] or "someone this device has not seen", limit=NAME))
                if r["hidden"] is not None:
                    what.append(" (hidden)")
                elif not r["readable"]:
                    what.append(" (not readable here)")
            text.append_text(line("\n" if index else "", stamp(r["ts"]), " ", plain(r["reporter_name"], limit=NAME),
                                  " reported ", what, ": ", plain(r["reason"])))  # fmt: skip
        hides = [e for e in moderation if e["action"] == "hide"]
        if reports and hides:
            text.append(f"\n{len(hides)} post(s) hidden so far (kith moderation CIRCLE lists why)")
        shown = bool(reports)
        self.query_one("#reports-label", Label).display = shown
        widget = self.query_one("#reports", Static)
        widget.display = shown
        widget.update(text)

    def action_checkin(self) -> None:
        self.main.ask_checkin()

    def action_reply(self) -> None:
        key = selected_key(self.query_one("#attention-table", DataTable))
        private = getattr(self, "private", {}).get(key) if key else None
        if private is not None:
            self.app.notify(
                f"{visible(private['member_name'], NAME)} checked in privately: reach out to them directly. "
                "A reply in the circle would tell everyone."
            )
            return
        item = getattr(self, "attention", {}).get(key) if key else None
        if item is None:
            self.app.notify("Nothing here needs an answer right now.")
            return
        self.main.reply_to(item["id"], item["author_name"])
