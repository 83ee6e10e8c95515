"""Members: names, pronouns, roles, latest check-in, ids and whether you verified them."""

from __future__ import annotations

from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from kith.identity.errors import KithError
from kith.tui.commands.governance_cmds import modlog_lines
from kith.tui.member_text import NAME, line, plain, visible
from kith.tui.screens.form import Field, field_of
from kith.tui.widgets.pane import Pane, clip, fill_table, fit_columns, selected_key, short

WELLBEING = {"ok": "ok", "struggling": "struggling", "need-help": "NEEDS HELP", None: "-"}


class MembersPane(Pane):
    TITLE = "People"
    HELP = (
        "Verified means you compared safety numbers with that person (in person or on a call). "
        "Until then a member is marked unverified."
    )
    BINDINGS = [
        Binding("s", "safety", "Safety number"),
        Binding("d", "details", "Details"),
        Binding("a", "approve", "Let in"),
        Binding("l", "modlog", "Moderation log", show=False),
    ]

    def compose(self) -> ComposeResult:
        yield Static("", id="me-line")
        yield DataTable(id="members-table", classes="main", cursor_type="row")
        yield Static("", id="member-detail")
        yield Static("", id="join-requests")

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
            if m.get("forked"):
                mark = "FORKED"  # signed two histories: a modified client (docs/OPS.md §2)
            cells = [clip(m["name"], widths[0]), roles, short(m["id"]), mark]
            if wide:
                cells[1:1] = [clip(m["pronouns"], 9)]
                cells.append(WELLBEING.get(m["wellbeing"], "-"))
            rows.append((m["id"], tuple(cells)))
        fill_table(table, rows)
        me = self.app.me  # type: ignore[attr-defined]
        fingerprint = plain(me.get("fingerprint", "?"))
        self.query_one("#me-line", Static).update(
            line(f"{len(rows)} members. Your fingerprint, to compare when verifying:\n", fingerprint)
        )

        self.load_requests()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # letting people in is for organizers: hidden for everyone else
        return action != "approve" or "organizer" in self.my_roles()

    @work(exclusive=True, group="join-requests")
    async def load_requests(self) -> None:
        if "organizer" not in self.my_roles() or self.views is None:
            self.pending = []
            return
        try:
            self.pending = await self.app.call("requests", circle=self.views["id"])  # type: ignore[attr-defined]
        except KithError:
            self.pending = []
        text = line()
        if self.pending:
            text.append("Asking to join with an invite: ")
            for index, p in enumerate(self.pending):
                who = plain(p["name"], limit=NAME)
                text.append_text(line(", " if index else "", who, " (", plain(p["fingerprint"], limit=19), ")"))
            text.append(". Press a to let them in.")
        self.query_one("#join-requests", Static).update(text)

    def action_approve(self) -> None:
        pending = getattr(self, "pending", [])
        if not pending:
            self.app.notify("Nobody is waiting to join.")
            return
        choices = tuple(
            (line(plain(p["name"], limit=NAME), " · fingerprint ", plain(p["fingerprint"])), p["member"])
            for p in pending
        )
        self.ask(
            "Let someone in",
            [
                Field("member", "Who", kind="choice", choices=choices),
                field_of("approve", "vouch", "Vouch (how you know them)"),
            ],
            lambda v: self.act(
                "approve", "Let in: they get the circle's keys now.", member=v["member"], vouch=v["vouch"] or None
            ),  # fmt: skip
            note="Check the fingerprint with them first (in person or on a call).",
            submit="Let in",
        )

    @work(group="safety")
    async def action_safety(self) -> None:
        """Show the safety number to compare with someone; mark them verified if it matches."""
        member = self.selected()
        if member is None or member["id"] == self.me or self.views is None:
            self.app.notify("Choose someone else in the list first.")
            return
        try:
            info = await self.app.call("member.card", circle=self.views["id"], member=member["id"])  # type: ignore[attr-defined]
        except KithError as exc:
            self.app.notify(str(exc), severity="error")
            return
        name = plain(member["name"], limit=NAME)
        note = line(
            "Compare this number with ", name, ", in person or on a call (not by message):\n\n",
            plain(info["safety_number"]), "\n\nTheir fingerprint: ", plain(info["fingerprint"]),
            "\nYou verified them already." if info["verified"] else "",
        )  # fmt: skip
        choices = (("Not now", "no"), ("The numbers match: mark verified", "yes"))
        self.ask(
            line("Safety number with ", name),
            [Field("match", "Did every digit match?", kind="choice", choices=choices)],
            lambda v: (
                self.act("verify", f"{visible(member['name'], NAME)} is verified on this device.", member=member["id"])
                if v["match"] == "yes"
                else None
            ),
            note=note,
            submit="Done",
        )

    def selected(self) -> dict[str, Any] | None:
        key = selected_key(self.query_one("#members-table", DataTable))
        return getattr(self, "members", {}).get(key) if key else None

    def action_details(self) -> None:
        m = self.selected()
        if m is None:
            return
        text = plain(m["name"], limit=NAME)
        if m["pronouns"]:
            text.append_text(line(" (", plain(m["pronouns"], limit=NAME), ")"))
        text.append_text(line(": member id ", plain(m["id"]), ". Skills: "))
        for index, skill in enumerate(m["skills"]):
            text.append_text(line(", " if index else "", plain(skill, limit=NAME)))
        text.append("." if m["skills"] else "none listed.")
        if m.get("vouch"):
            text.append_text(line(" Vouched: ", plain(m["vouch"]), "."))
        self.query_one("#member-detail", Static).update(text)

    @work(exclusive=True, group="modlog")
    async def action_modlog(self) -> None:
        """The moderation log (docs/OPS.md §6a) under the table, as `kith modlog` prints it."""
        if self.views is None:
            return
        try:
            log = await self.app.call("modlog", circle=self.views["id"])  # type: ignore[attr-defined]
        except KithError as exc:
            self.query_one("#member-detail", Static).update(plain(str(exc)))
            return
        text = line("Moderation log:\n")
        for entry in modlog_lines(log)[-12:]:
            text.append_text(line(entry, "\n"))
        self.query_one("#member-detail", Static).update(text)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_details()
