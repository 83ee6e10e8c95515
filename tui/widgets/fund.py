"""The community fund: balance, proposals with live tallies, and the signed ledger."""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Label, Static

from kith.identity.errors import UsageError
from kith.sync.forecast import month_of
from kith.sync.kinds.recurring import add_months
from kith.tui.member_text import NAME, line, plain
from kith.tui.money import check_currency, format_amount, parse_amount
from kith.tui.render import awaits_my_vote, charter_changes, charter_summary, time_left
from kith.tui.screens.form import Field, field_of
from kith.tui.widgets.pane import Pane, clip, fill_table, fit_columns, selected_key, stamp

VOTES = (("approve", "approve"), ("object", "object"), ("abstain", "abstain"))
CHARTER_FLAGS = ("members_can_invite", "history", "confirm_joins")


def _tally(p: dict[str, Any]) -> str:
    return f"{p['approve']} approve, {p['object']} object, {p['abstain']} abstain of {p['eligible']}"


def _contribution(entry: dict[str, Any]) -> Text:
    money = plain(format_amount(entry["amount"], entry["currency"]))
    return line(money, " from ", plain(entry["signer_name"], limit=NAME))


def _installments_due(recurring: list[dict[str, Any]], now: str) -> tuple[tuple[Text, str], ...]:
    """Monthly contributions' months up to ``now`` not confirmed yet (the latest three of
    each), as receipt choices whose value is ``op@YYYY-MM``."""
    choices = []
    for r in recurring:
        if r["type"] != "contribution":
            continue
        last = min(now, r["last"]) if r["last"] else now
        month, months = r["first"], []
        while month <= last:
            if month not in r["confirmed"]:
                months.append(month)
            month = add_months(month, 1)
        for month in months[-3:]:
            label = line(plain(format_amount(r["amount"], r["currency"])), " from ",
                         plain(r["author_name"], limit=NAME), f" for {month} (monthly)")  # fmt: skip
            choices.append((label, f"{r['id']}@{month}"))
    return tuple(choices)


def _convert_money(values: dict[str, Any]) -> dict[str, Any]:
    currency = check_currency(values.get("currency") or "")
    out = dict(values)
    out["currency"] = currency
    out["amount"] = parse_amount(values["amount"], currency)
    return out


class FundPane(Pane):
    TITLE = "Fund"
    HELP = (
        "The balance counts contributions a treasurer confirmed. Spending needs an approved proposal;"
        " h proposes a charter change."
    )
    BINDINGS = [
        Binding("c", "contribute", "Contribute"),
        Binding("n", "propose", "Propose"),
        # Not in the footer (it is full at 80 columns); in help (?), the palette and HELP.
        Binding("h", "charter", "Propose a charter change", show=False),
        Binding("v", "vote", "Vote"),
        Binding("t", "receipt", "Receipt"),
        Binding("d", "disburse", "Disburse"),
        # Asks under the charter's allocation rules (when it has some): in help and the palette.
        Binding("a", "ask_fund", "Ask the fund (under the charter's rules)", show=False),
        Binding("y", "pay_ask", "Pay the chosen ask (treasurers)", show=False),
    ]

    def compose(self) -> ComposeResult:
        yield Static("", id="fund-balance")
        yield Label("Proposals", classes="section")
        yield DataTable(id="proposals", classes="main", cursor_type="row")
        yield Static("", id="proposal-detail", classes="detail")
        yield Label("Ledger (every entry is signed)", classes="section")
        yield DataTable(id="ledger", cursor_type="row")
        # Shown only once the charter has allocation rules (`_asks`).
        asks_label = Label("Asks to the fund", id="asks-label", classes="section")
        asks: DataTable[Any] = DataTable(id="asks", cursor_type="row")
        asks_label.display = asks.display = False
        yield asks_label
        yield asks

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # receipts and disbursements are for treasurers: hidden for everyone else
        if action == "ask_fund":
            return self._rules() is not None
        return not (action in ("receipt", "disburse", "pay_ask") and "treasurer" not in self.my_roles())

    def _rules(self) -> dict[str, Any] | None:
        return ((self.views or {}).get("allocations") or {}).get("rules")

    def show(self, views: dict[str, Any]) -> None:
        super().show(views)
        fund = views["fund"]
        balance = ", ".join(format_amount(a, c) for c, a in fund["balances"]) or "nothing confirmed yet"
        text = line("Balance: ", plain(balance))
        if fund["pending"]:
            text.append("\nAwaiting a treasurer's receipt: ")
            for index, e in enumerate(fund["pending"]):
                text.append_text(line(", " if index else "", _contribution(e)))
        for t in fund.get("totals") or []:
            if t["monthly"]:  # a circle with monthly money: what each currency brings
                code = t["currency"]
                parts = [f"{label} {format_amount(t[key], code)}" for key, label in
                         (("received", "received"), ("disbursed", "paid out"), ("monthly", "expected monthly"))
                         if t[key]]  # fmt: skip
                text.append_text(line(f"\n{code}: ", plain(", ".join(parts))))
        forecast = fund.get("forecast") or []
        if forecast:
            text.append("\nForecast: ")
            months: dict[str, list[str]] = {}
            for f in forecast:
                expected = format_amount(f["contributions"] + f["pledges"], f["currency"])
                months.setdefault(f["month"], []).append(expected)
            text.append_text(plain("; ".join(f"{m} {' + '.join(v)}" for m, v in months.items())))
        self.query_one("#fund-balance", Static).update(text)
        self.proposals = {p["id"]: p for p in views["proposals"]}
        table = self.query_one("#proposals", DataTable)
        columns = [("Proposal", 0), ("Amount", 10), ("Tally", 14), ("Status", 10)]
        widths = fit_columns(table, columns, 0, self.usable_width)
        rows = []
        for p in views["proposals"]:
            details = p["details"] if isinstance(p["details"], dict) else {}
            amount = format_amount(details["amount"], details["currency"]) if p["kind"] == "spend" and details else ""
            status = p["status"].upper() + (", paid" if p.get("disbursed_by") else "")
            tally = f"{p['approve']} yes {p['object']} no /{p['eligible']}"
            # The reminder: a proposal waiting for my vote is marked (the detail line says why).
            title = ("● " if awaits_my_vote(p, self.me) else "") + p["title"]
            rows.append((p["id"], (clip(title, widths[0]), amount, tally, status)))
        fill_table(table, rows)
        self._detail()
        ledger = self.query_one("#ledger", DataTable)
        when = max((len(stamp(e["ts"])) for e in fund["entries"]), default=5)  # with a year when not this one
        columns = [("When", when), ("Entry", 12), ("Amount", 10), ("Signed by", 9), ("Note", 0)]
        widths = fit_columns(ledger, columns, 4, self.usable_width)
        entries = [
            (
                e["op"],
                (
                    stamp(e["ts"]),
                    e["entry"],
                    format_amount(e["amount"], e["currency"]),
                    clip(e["signer_name"], 9),
                    clip(e["note"] or "", widths[4]),
                ),
            )  # fmt: skip
            for e in reversed(fund["entries"])
        ]
        fill_table(ledger, entries)
        self._asks(views)

    def _asks(self, views: dict[str, Any]) -> None:
        """Each ask to the fund and where it stands under the rules, and why (shown only when
        the charter has allocation rules). The committee sees who asked; others a pseudonym."""
        allocations = views.get("allocations") or {}
        label, table = self.query_one("#asks-label", Label), self.query_one("#asks", DataTable)
        label.display = allocations.get("rules") is not None
        table.display = bool(label.display and allocations["asks"])
        label.update("Asks to the fund (by the charter's rules)" if table.display else
                     "Asks to the fund: none yet (a to ask)")  # fmt: skip
        if not table.display:
            return
        names = {m["id"]: m["name"] for m in views["members"]}
        columns = [("Period", 6), ("Ask", 16), ("Who", 10), ("Where it stands", 0)]
        widths = fit_columns(table, columns, 3, self.usable_width)
        rows = []
        for ask in allocations["asks"]:
            who = names.get(ask["member"], ask["member"][:8]) if ask.get("member") else "#" + ask["pseudonym"][:6]
            what = f"{ask['category']} {format_amount(ask['amount'], ask['currency'])}"
            rows.append((ask["id"], (str(ask["period"]), clip(what, widths[1]), clip(who, 10),
                                     clip(ask["standing"], widths[3]))))  # fmt: skip
        fill_table(table, rows)

    def action_ask_fund(self) -> None:
        rules = self._rules()
        if rules is None:
            self.app.notify("The charter has no allocation rules: ask on the Aid board instead.")
            return
        currency = rules["currency"]

        def convert(values: dict[str, Any]) -> dict[str, Any]:
            return {**values, "amount": parse_amount(values["amount"], currency)}

        categories = tuple((name, name) for name in sorted(rules["categories"]))
        self.ask(
            "Ask the fund",
            [
                Field("category", "Category", kind="choice", choices=categories),
                Field("amount", f"Amount ({currency})", required=True, placeholder="100.00"),
                field_of("ask_fund", "note", "Note (only the treasurers read it)"),
            ],
            lambda v: self.act(
                "ask_fund",
                "Ask sent to the treasurers; only they learn it was you. The rules decide when the period ends.",
                category=v["category"],
                amount=v["amount"],
                note=v["note"] or None,
            ),  # fmt: skip
            convert=convert,
            submit="Ask",
        )

    def action_pay_ask(self) -> None:
        key = selected_key(self.query_one("#asks", DataTable))
        asks = {a["id"]: a for a in ((self.views or {}).get("allocations") or {}).get("asks", [])}
        ask = asks.get(key) if key else None
        if ask is None or ask["outcome"] != "allocated" or ask["paid"]:
            self.app.notify("Choose an allocated ask that is not paid yet.")
            return
        self.ask(
            line("Pay the ask: ", plain(f"{ask['category']} {format_amount(ask['amount'], ask['currency'])}")),
            [field_of("pay_ask", "note", "Note (how it was paid)")],
            lambda v: self.act("pay_ask", "Payment recorded.", ask=ask["id"], note=v["note"] or None),
            submit="Pay",
        )

    def _detail(self) -> None:
        p = self.selected()
        text = line()
        if p is not None:
            mine = next((v["choice"] for v in p["votes"] if v["voter"] == self.me), None)
            rule = p["rule"]
            text = line(
                plain(p["title"]), " (", plain(p["kind"]), ", by ", plain(p["author_name"], limit=NAME), "): ",
                plain(_tally(p)), "; ",
                plain(f"needs {rule['quorum_pct']}% voting and {rule['threshold_pct']}% approval"),
                ", no objection" if rule["consent"] else "",
                ". You: ", plain(mine or "not voted"), ".",
            )  # fmt: skip
            if p["status"] == "open" and "closes_at" in p:
                text.append_text(line(" Voting: ", plain(time_left(p["closes_at"], time.time())), "."))
                if awaits_my_vote(p, self.me):
                    text.append_text(line(" ● Your vote is awaited (v to vote)."))
            details = p["details"] if isinstance(p["details"], dict) else {}
            if p["kind"] == "spend" and details:
                text.append_text(line(" Purpose: ", plain(details["purpose"]), "."))
            if p["kind"] == "charter" and details:
                changes = charter_changes((self.views or {}).get("charter"), details) if p["status"] == "open" else ""
                text.append_text(line(" Charter: ", plain(changes or charter_summary(details)), "."))
        self.query_one("#proposal-detail", Static).update(text)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "proposals":
            self._detail()

    def selected(self) -> dict[str, Any] | None:
        key = selected_key(self.query_one("#proposals", DataTable))
        return getattr(self, "proposals", {}).get(key) if key else None

    def action_contribute(self) -> None:
        self.ask(
            "Contribute to the fund",
            [
                Field("amount", "Amount", required=True, placeholder="20.00"),
                Field("currency", "Currency", value="EUR"),
                field_of("contribute", "note", "Note"),
            ],
            lambda v: self.act(
                "contribute",
                "Contribution recorded; a treasurer confirms it when the money arrives.",
                amount=v["amount"],
                currency=v["currency"],
                note=v["note"] or None,
            ),  # fmt: skip
            convert=_convert_money,
            submit="Contribute",
        )

    def action_propose(self) -> None:
        if self.views is None:  # not loaded yet: there is nothing to act on
            return
        members = tuple((plain(m["name"], limit=NAME), m["id"]) for m in self.views["members"])
        self.ask(
            "Propose spending from the fund",
            [
                field_of("propose", "title", "Title"),
                Field("amount", "Amount", required=True, placeholder="120.00"),
                Field("currency", "Currency", value="EUR"),
                Field("recipient", "Paid to", kind="choice", choices=members),
                field_of("propose", "purpose", "Purpose", required=True),  # a spend needs one
            ],
            lambda v: self.act("propose", "Proposed. The circle can vote now.", kind="spend", **v),
            convert=_convert_money,
            submit="Propose",
        )

    def action_charter(self) -> None:
        """Propose turning charter settings on or off (the CLI also changes rules and guidelines)."""
        charter = (self.views or {}).get("charter")
        if not charter:
            self.app.notify("The circle's charter has not arrived yet.")
            return

        def setting(name: str, label: str) -> Field:
            now = "on" if charter[name] else "off"
            keep = (f"keep as it is ({now})", "")
            return Field(name, label, kind="choice", choices=(keep, ("on", "on"), ("off", "off")))

        def convert(values: dict[str, Any]) -> dict[str, Any]:
            changes = {name: values[name] == "on" for name in CHARTER_FLAGS if values.get(name)}
            if not changes:
                raise UsageError("choose a setting to change")
            if all(charter[name] == value for name, value in changes.items()):
                raise UsageError("the charter already says that: the proposal would change nothing")
            return {"kind": "charter", "title": values["title"], "text": values["text"], "charter": changes}

        self.ask(
            "Propose a charter change",
            [
                field_of("propose", "title", "Title"),
                setting("members_can_invite", "Members may invite (not only organizers)"),
                setting("history", "Newcomers read what was said before they joined"),
                setting("confirm_joins", "An organizer confirms every join, even with a valid invite"),
                field_of("propose", "text", "Why"),
            ],
            lambda v: self.act("propose", "Proposed. The circle can vote now.", **v),
            convert=convert,
            submit="Propose",
        )

    def action_vote(self) -> None:
        proposal = self.selected()
        if proposal is None or proposal["status"] != "open":
            self.app.notify("Choose an open proposal first.")
            return
        self.ask(
            line("Vote: ", plain(proposal["title"])),
            [Field("choice", "Your vote", kind="choice", choices=VOTES), field_of("vote", "reason", "Reason")],
            lambda v: self.act(
                "vote", "Vote counted.", proposal=proposal["id"], choice=v["choice"], reason=v["reason"] or None
            ),  # fmt: skip
            note=line("Now: ", plain(_tally(proposal)), "."),
            submit="Vote",
        )

    def action_receipt(self) -> None:
        if self.views is None:  # not loaded yet: there is nothing to act on
            return
        pending = self.views["fund"]["pending"]
        due = _installments_due(self.views["fund"].get("recurring") or [], month_of(time.time()))
        if not pending and not due:
            self.app.notify("No contribution is waiting for a receipt.")
            return
        choices = tuple((_contribution(e), e["op"]) for e in pending) + due

        def send(values: dict[str, Any]) -> None:
            contribution, _, month = values["contribution"].partition("@")
            extra = {"month": month} if month else {}
            self.act("receipt", "Receipt signed; the balance counts it now.", contribution=contribution, **extra)

        self.ask(
            "Confirm a contribution arrived",
            [Field("contribution", "Contribution", kind="choice", choices=choices)],
            send,
            submit="Confirm",
        )

    def action_disburse(self) -> None:
        proposal = self.selected()
        if proposal is None or proposal["kind"] != "spend" or proposal["status"] != "approved":
            self.app.notify("Choose an approved spending proposal first.")
            return
        self.ask(
            line("Pay out: ", plain(proposal["title"])),
            [Field("note", "Note (how it was paid)")],
            lambda v: self.act("disburse", "Disbursement recorded.", proposal=proposal["id"], note=v["note"] or None),
            submit="Disburse",
        )
