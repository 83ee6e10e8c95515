"""Members: names, pronouns, roles, latest check-in, ids and whether you verified them."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from tui.widgets.pane import Pane, clip, fill_table, fit_columns, selected_key, short

WELLBEING = {"ok": "ok", "struggling": "struggling", "need-help": "NEEDS HELP", None: "-"}


class MembersPane(Pane):
    TITLE = "People"
    HELP = (
        "Verified means you compared safety numbers with that person (in person or on a call). "
        "Until then a member is marked unverified."
    )
    BINDINGS = [Binding("d", "details", "Details")]

    def compose(self) -> ComposeResult:
        yield Static("", id="me-line")
        yield DataTable(id="members-table", classes="main", cursor_type="row")
        yield Static("", id="member-detail")

    def show(self, views: dict[str, Any]) -> None:
        super().show(views)
        self.members = {m["id"]: m for m in views["members"]}
        table = self.query_one("#members-table", DataTable)
        wide = self.usable_width >= 80
        columns = [("Name", 0), ("Roles", 20), ("Id", 8), ("Verified", 10)]
        if wide:
            columns[1:1] = [("Pronouns", 9)]
            columns.append(("Check-in", 10))
        widths = fit_columns(table, columns, 0, self.usable_width)
        rows = []
        for m in views["members"]:
            you = m["id"] == self.me
            mark = "(you)" if you else ("✓ verified" if m.get("verified") else "unverified")
            roles = ", ".join(m["roles"]) or "member"
            cells = [clip(m["name"], widths[0]), roles, short(m["id"]), mark]
            if wide:
                cells[1:1] = [m["pronouns"] or ""]
                cells.append(WELLBEING.get(m["wellbeing"], "-"))
            rows.append((m["id"], tuple(cells)))
        fill_table(table, rows)
        me = self.app.me  # type: ignore[attr-defined]
        self.query_one("#me-line", Static).update(
            f"{len(rows)} members. Your fingerprint (compare it with people you verify):\n{me.get('fingerprint', '?')}"
        )

    def selected(self) -> dict[str, Any] | None:
        key = selected_key(self.query_one("#members-table", DataTable))
        return getattr(self, "members", {}).get(key) if key else None

    def action_details(self) -> None:
        m = self.selected()
        if m is None:
            return
        skills = ", ".join(m["skills"]) or "none listed"
        vouch = f" Vouched: {m['vouch']}." if m.get("vouch") else ""
        pronouns = f" ({m['pronouns']})" if m["pronouns"] else ""
        self.query_one("#member-detail", Static).update(
            f"{m['name']}{pronouns}: member id {m['id']}. Skills: {skills}.{vouch}"
        )

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_details()
