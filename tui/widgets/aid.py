"""The mutual-aid board: requests (people who need help) first, then pledges (offers)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from kith.identity.errors import UsageError
from kith.tui.member_text import NAME, line, plain
from kith.tui.screens.form import Field, field_of
from kith.tui.widgets.pane import Pane, clip, fill_table, fit_columns, selected_key, words

CATEGORIES = tuple((c, c) for c in ("money", "housing", "ride", "food", "time", "skill", "other"))


def _amount(item: dict[str, Any]) -> str:
    if item["amount"] is None:
        return ""
    return f"{item['amount']} {item['unit'] or ''}".strip()


def _convert_aid(values: dict[str, Any]) -> dict[str, Any]:
    amount = values.get("amount") or ""
    if amount and not amount.isdigit():
        raise UsageError("amount must be a whole number (e.g. 40), with its unit below")
    private = {"private": True} if values.get("private") else {}
    return {
        **private,
        "category": values["category"],
        "description": values["description"],
        "amount": int(amount) if amount else None,
        "unit": values.get("unit") or None,
    }


HIDDEN = "hidden"
"""Who a private request is from, for everyone but organizers and the requester."""
PRIVATE_WHAT = "only organizers know who asked and why"


def _who(item: dict[str, Any]) -> str:
    """Who asked or offered. A private request is posted by an organizer on someone's
    behalf: organizers (and the requester) see the requester, nobody sees the organizer."""
    if not item.get("private"):
        return item["author_name"]
    return item.get("requester_name") or HIDDEN


def _owner(item: dict[str, Any]) -> str | None:
    """The member an item speaks for: the requester of a private request (None when hidden)."""
    return item.get("requester") if item.get("private") else item["author"]


def _what(item: dict[str, Any]) -> str:
    if item.get("private") and item.get("requester") is None:
        return PRIVATE_WHAT
    return words(item, "description")


def _choice(item: dict[str, Any]) -> Text:
    """One line for a list to pick from: ``ride: To the clinic (Bea)``."""
    who = plain(_who(item), limit=NAME)
    return line(plain(item["category"]), ": ", plain(_what(item), limit=40), " (", who, ")")


class AidPane(Pane):
    TITLE = "Aid"
    HELP = "Requests first (who needs help), then pledges (who offers it). Match a pledge to a request."
    BINDINGS = [
        Binding("p", "pledge", "Pledge"),
        Binding("r", "request", "Request"),
        Binding("m", "match", "Match"),
        Binding("f", "fulfil", "Fulfilled"),
        Binding("w", "withdraw", "Withdraw"),
    ]

    def compose(self) -> ComposeResult:
        yield Static("", id="aid-summary")
        yield DataTable(id="aid-table", classes="main", cursor_type="row")
        yield Static("", id="aid-detail", classes="detail")

    def show(self, views: dict[str, Any]) -> None:
        super().show(views)
        aid = views["aid"]
        self.items = {item["id"]: item for key in ("open_requests", "open_pledges", "fulfilled") for item in aid[key]}
        matched_to = {p: r for p, r in aid["matches"]} | {r: p for p, r in aid["matches"]}
        self.matched_to = matched_to
        table = self.query_one("#aid-table", DataTable)
        columns = [("", 7), ("What", 0), ("Amount", 8), ("Who", 9), ("Status", 9)]
        widths = fit_columns(table, columns, 1, self.usable_width)
        rows = []
        for key, label in (("open_requests", "NEEDS"), ("open_pledges", "OFFERS"), ("fulfilled", "done")):
            for item in aid[key]:
                status = item["status"] + (", expired" if item["expired"] else "")
                who = _who(item) + (" (you)" if _owner(item) == self.me else "")
                what = f"{item['category']}: {_what(item)}"
                mark = "PRIVATE" if item.get("private") and key != "fulfilled" else label
                rows.append((item["id"], (mark, clip(what, widths[1]), _amount(item), clip(who, 9), status)))
        fill_table(table, rows)
        self._detail()
        self.query_one("#aid-summary", Static).update(
            line(
                f"{len(aid['open_requests'])} requests · {len(aid['open_pledges'])} open pledges · "
                f"{len(aid['matches'])} matches · {len(aid['fulfilled'])} fulfilled"
            )
        )

    def _detail(self) -> None:
        item = self.selected()
        text = line()
        if item is not None:
            if not item.get("private"):
                by = line(plain(item["type"]), " by ", plain(item["author_name"], limit=NAME))
            elif item.get("requester_name") is not None:
                by = line("private request from ", plain(item["requester_name"], limit=NAME),
                          " (only organizers see who asked)")  # fmt: skip
            else:
                by = line("private request (posted by an organizer for someone)")
            text = line(
                by, " · ", plain(item["category"]), ": ", plain(_what(item), multiline=True),
            )  # fmt: skip
            if item["id"] in getattr(self, "matched_to", {}):
                other = self.items.get(self.matched_to[item["id"]])
                if other and _who(other) == HIDDEN:
                    text.append(" · matched with a private request")
                elif other:
                    text.append_text(line(" · matched with ", plain(_who(other), limit=NAME), "'s ",
                                          plain(other["type"])))  # fmt: skip
                else:
                    text.append(" · matched")
        self.query_one("#aid-detail", Static).update(text)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._detail()

    def selected(self) -> dict[str, Any] | None:
        key = selected_key(self.query_one("#aid-table", DataTable))
        return getattr(self, "items", {}).get(key) if key else None

    def _form(self, kind: str) -> None:
        verb = "Offer help" if kind == "pledge" else "Ask for help"
        self.ask(
            verb,
            [
                Field("category", "Kind of help", kind="choice", choices=CATEGORIES),
                field_of(kind, "description", "What, when, where (keep details you would not tell everyone out)"),
                Field("amount", "Amount (a whole number)", placeholder="e.g. 40"),
                field_of(kind, "unit", "Unit", placeholder="EUR, hours, nights, meals ..."),
                *(
                    [field_of("request", "private", "Private: only organizers see who asked and why")]
                    if kind == "request"
                    else []
                ),
            ],
            lambda v: self.act(kind, "Pledged." if kind == "pledge" else "Request posted.", **v),
            convert=_convert_aid,
            submit="Pledge" if kind == "pledge" else "Request",
        )

    def action_pledge(self) -> None:
        self._form("pledge")

    def action_request(self) -> None:
        self._form("request")

    def action_match(self) -> None:
        """Match one of your pledges to someone's request (the circle's rule: pledgers match)."""
        item = self.selected()
        if item is None or item["status"] != "open":
            self.app.notify("Choose an open pledge of yours, or a request you can help with.")
            return
        if self.views is None:  # not loaded yet: there is nothing to act on
            return
        aid = self.views["aid"]
        if item["type"] == "pledge":
            if item["author"] != self.me:
                self.app.notify("Only the person who pledged can match a pledge.")
                return
            others = [o for o in aid["open_requests"] if o["status"] == "open" and _owner(o) != self.me]
            label, missing = "Request it answers", "There is no open request from someone else to match it with."
        else:
            if _owner(item) == self.me:
                self.app.notify("Choose your pledge instead and match it to someone else's request.")
                return
            others = [o for o in aid["open_pledges"] if o["author"] == self.me]
            label, missing = "Your pledge that answers it", "You have no open pledge; press p to offer help first."
        if not others:
            self.app.notify(missing)
            return
        choices = tuple((_choice(o), o["id"]) for o in others)

        def match(values: dict[str, Any]) -> None:
            pair = (item["id"], values["other"])
            pledge, request = pair if item["type"] == "pledge" else pair[::-1]
            self.act("match", "Matched.", pledge=pledge, request=request)

        self.ask(line("Match: ", plain(item["description"], limit=50)),
                 [Field("other", label, kind="choice", choices=choices)], match, submit="Match")  # fmt: skip

    def action_fulfil(self) -> None:
        item = self.selected()
        if item is None or item["type"] != "request":
            self.app.notify("Choose a request first. Only the person who was helped confirms it.")
            return
        self.act("fulfil", "Marked as fulfilled. Thank you for telling the circle.", request=item["id"])

    def action_withdraw(self) -> None:
        item = self.selected()
        if item is None:
            self.app.notify("Choose one of your pledges or requests first.")
            return
        self.act("withdraw", "Withdrawn.", item=item["id"])
