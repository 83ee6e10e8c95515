"""Asking the fund under the charter's allocation rules: `kith ask`, `kith allocations`,
`kith pay-ask` (docs/API.md; the rules: docs/OPS.md, "Allocation").

Thin clients of the running node's control API, like the other circle commands.
"""

from __future__ import annotations

import argparse
import functools
from typing import Any

from kith.tui import render
from kith.tui.commands import subcommand
from kith.tui.commands.schema_args import call, done
from kith.tui.context import Context
from kith.tui.member_text import LINE, visible
from kith.tui.money import format_amount, parse_amount
from kith.tui.textinput import add_text_source, read_text


def register(sub: argparse._SubParsersAction) -> None:
    command = functools.partial(subcommand, sub)

    ask = command("ask", "ask the fund under the charter's rules (only the treasurers learn it was you)", cmd_ask)
    ask.add_argument("circle")
    ask.add_argument("category", help="one of the charter's categories (see 'kith allocations')")
    ask.add_argument("amount", help="e.g. 400.00, in the rules' currency")
    add_text_source(ask, "note", flag="--note")
    allocations = command("allocations", "asks to the fund: where each stands under the rules, and the totals",
                          cmd_allocations)  # fmt: skip
    allocations.add_argument("circle")
    pay = command("pay-ask", "treasurers: pay an ask the rules allocated money to", cmd_pay_ask)
    pay.add_argument("circle")
    pay.add_argument("ask")
    add_text_source(pay, "note", flag="--note")


def cmd_ask(ctx: Context, args: argparse.Namespace) -> int:
    view = call(ctx, "allocations", circle=args.circle)
    rules = view.get("rules")
    currency = rules["currency"] if rules else "EUR"
    result = call(ctx, "ask_fund", circle=args.circle, category=args.category,
                   amount=parse_amount(args.amount, currency), note=read_text(args, ctx.home))  # fmt: skip
    if result.get("rejected"):
        return done(ctx, result, "ask")
    if result.get("id") is None:
        ctx.emit(result, "ask sent to the treasurers: one of them posts it for you; nobody else learns it was you")
        return 0
    ctx.emit(result, f"ask {render.short(result['id'])} posted")
    return 0


def cmd_pay_ask(ctx: Context, args: argparse.Namespace) -> int:
    result = call(ctx, "pay_ask", circle=args.circle, ask=args.ask, note=read_text(args, ctx.home))
    return done(ctx, result, "payment")


def cmd_allocations(ctx: Context, args: argparse.Namespace) -> int:
    view = call(ctx, "allocations", circle=args.circle)
    ctx.emit(view, "\n".join(allocation_lines(view)))
    return 0


def allocation_lines(view: dict[str, Any]) -> list[str]:
    """The allocations view as text: the rules, each period's totals, each ask's standing."""
    rules = view.get("rules")
    if rules is None:
        return ["This circle's charter has no allocation rules (a charter proposal can add them)."]
    currency = rules["currency"]
    cats = ", ".join(
        f"{name} {format_amount(budget, currency)}" for name, budget in sorted(rules["categories"].items())
    )
    lines = [
        f"Rules: periods of {_duration(rules['period_s'])}; budgets {cats}; cap {format_amount(rules['cap'], currency)}"
        f" a person a period; cool-down {rules['cooldown']} period(s); "
        + ("those helped longest ago first" if rules["priority"] else "no priority")
        + "; ties by a draw nobody can steer.",
    ]
    if view.get("problems"):
        lines.append("PROBLEMS: " + "; ".join(visible(p, LINE) for p in view["problems"]))
    asks_by_period: dict[int, list[dict[str, Any]]] = {}
    for ask in view.get("asks", []):
        asks_by_period.setdefault(ask["period"], []).append(ask)
    for period in view.get("periods", []):
        number = period["period"]
        state = "drawn" if period["drawn"] else "closed, waiting for the draw" if period["closed"] else "open"
        lines.append(f"Period {number} ({state}):")
        for cat in period["categories"]:
            if cat["asked"]:
                lines.append(
                    f"  {cat['category']}: budget {format_amount(cat['budget'], currency)}, asked "
                    f"{format_amount(cat['asked'], currency)}, allocated {format_amount(cat['allocated'], currency)},"
                    f" paid {format_amount(cat['paid'], currency)}"
                )
        for ask in asks_by_period.get(number, []):
            who = f" for {render.short(ask['member'])}" if ask.get("member") else ""
            lines.append(
                f"  {render.short(ask['id'])} {ask['category']} {format_amount(ask['amount'], ask['currency'])}"
                f" by {render.short(ask['pseudonym'])}{who}: {visible(ask['standing'], LINE)}"
            )
    if len(lines) == 1:
        lines.append("No asks yet: 'kith ask CIRCLE CATEGORY AMOUNT' asks the fund.")
    return lines


def _duration(seconds: int) -> str:
    for unit, size in (("week", 7 * 86400), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} s"
