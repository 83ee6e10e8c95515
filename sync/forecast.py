"""The fund's totals per currency and its monthly forecast (views; the fold never sums).

Money is only ever added within one currency: every total here is keyed by its ISO 4217
code, and nothing converts between currencies (a circle that holds EUR and USD has two
balances, two forecasts). Amounts are minor units, as the ops carry them.

The forecast is what the circle may expect month by month: every recurring contribution
(`kith.sync.kinds.recurring`) for the months it covers, and every recurring money pledge (an
``aid.pledge`` with ``monthly`` whose unit is a currency code) while it is open or
matched. Which month is "now" is the viewer's: the caller passes a time, and its UTC
calendar month is the first month shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from kith.sync.kinds.records import MATCHED, OPEN
from kith.sync.kinds.recurring import add_months
from kith.sync.money import CURRENCIES

if TYPE_CHECKING:
    from kith.sync.state import CircleState

FORECAST_MONTHS = 3


def month_of(ts: float) -> str:
    """The UTC calendar month of a time, ``"YYYY-MM"``."""
    moment = datetime.fromtimestamp(max(0, int(ts)), UTC)
    return f"{moment.year:04d}-{moment.month:02d}"


@dataclass(frozen=True, slots=True)
class CurrencyTotals:
    currency: str
    received: int
    """Confirmed by a treasurer: one-off receipts and monthly installments."""
    disbursed: int
    balance: int
    """received - disbursed (the fold's confirmed balance)."""
    awaiting: int
    """One-off contributions members stated that no treasurer has confirmed yet."""
    pledged: int
    """Money pledges on the aid board (open or matched, one-off)."""
    monthly: int
    """Expected every month now: recurring contributions not stopped, recurring money pledges."""


@dataclass(frozen=True, slots=True)
class ForecastLine:
    month: str
    currency: str
    contributions: int
    """Installments of recurring contributions that cover this month."""
    confirmed: int
    """Of which a treasurer already confirmed."""
    pledges: int
    """Recurring money pledges still open or matched (from their first month)."""


def _pledge_currency(unit: str | None) -> str | None:
    return unit if unit in CURRENCIES else None


def fund_totals(state: CircleState) -> tuple[CurrencyTotals, ...]:
    """Totals per currency, sorted by code."""
    rows: dict[str, list[int]] = {}

    def row(currency: str) -> list[int]:
        return rows.setdefault(currency, [0, 0, 0, 0, 0])

    for entry in state.ledger:
        if entry.entry == "receipt":
            row(entry.currency)[0] += entry.amount
        elif entry.entry == "disbursement":
            row(entry.currency)[1] += entry.amount
    for contribution_id, contribution in state.contributions.items():
        schedule = state.recurring.get(contribution_id)
        if schedule is None:
            if contribution.receipt is None:
                row(contribution.currency)[2] += contribution.amount
        elif schedule.stopped_by is None:
            row(contribution.currency)[4] += contribution.amount
    for item_id, item in state.aid.items():
        currency = _pledge_currency(item.unit)
        if item.type != "pledge" or item.status not in (OPEN, MATCHED) or currency is None or item.amount is None:
            continue
        row(currency)[4 if item_id in state.recurring else 3] += item.amount
    return tuple(
        CurrencyTotals(code, received, disbursed, received - disbursed, awaiting, pledged, monthly)
        for code, (received, disbursed, awaiting, pledged, monthly) in sorted(rows.items())
    )


def fund_forecast(state: CircleState, first: str, months: int = FORECAST_MONTHS) -> tuple[ForecastLine, ...]:
    """Per month from ``first`` (``"YYYY-MM"``) for ``months`` months, per currency: what
    recurring contributions and pledges bring. Months and currencies with nothing are left out."""
    lines: list[ForecastLine] = []
    for step in range(months):
        month = add_months(first, step)
        sums: dict[str, list[int]] = {}
        for contribution_id, schedule in state.recurring.items():
            contribution = state.contributions.get(contribution_id)
            if contribution is None or month < schedule.first or (schedule.last is not None and month > schedule.last):
                continue
            due = sums.setdefault(contribution.currency, [0, 0, 0])
            due[0] += contribution.amount
            if month in state.installments.get(contribution_id, {}):
                due[1] += contribution.amount
        for item_id, item in state.aid.items():
            pledge_schedule = state.recurring.get(item_id)
            currency = _pledge_currency(item.unit)
            if pledge_schedule is None or currency is None or item.amount is None or item.status not in (OPEN, MATCHED):
                continue
            if month >= pledge_schedule.first:
                sums.setdefault(currency, [0, 0, 0])[2] += item.amount
        lines.extend(ForecastLine(month, code, *sums[code]) for code in sorted(sums))
    return tuple(lines)


@dataclass(frozen=True, slots=True)
class Installment:
    contribution: bytes
    month: str
    receipt: bytes


def installments(state: CircleState) -> tuple[Installment, ...]:
    """Every confirmed installment of a recurring contribution, by contribution then month."""
    return tuple(
        Installment(contribution, month, receipt)
        for contribution in sorted(state.installments)
        for month, receipt in sorted(state.installments[contribution].items())
    )
