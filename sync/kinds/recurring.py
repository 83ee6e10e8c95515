"""Recurring contributions and pledges: every month, until withdrawn (docs/OPS.md, Fund).

A ``fund.contribute`` or ``aid.pledge`` with the optional key ``monthly`` (its first month,
``"YYYY-MM"``) repeats every month from then on; without the key it is the one-off op it
always was, byte for byte. For a recurring contribution each month is an *installment*: a
treasurer confirms one with a ``fund.receipt`` naming the month (``month``), at most once
per month and never before the first month, and each confirmed installment adds the
amount to its currency's balance. Its author stops it with ``fund.stop``, naming the last
month they pay: installments up to that month can still be confirmed (money already
sent), later ones never. A recurring pledge ends as any pledge does (``aid.withdraw``, or
the fulfilment of its request); until then the forecast counts it every month.

The fold has no clock: months are what the ops name, compared as strings (``YYYY-MM``
sorts as the months do). Which month is "now" is only a viewer's question (the forecast,
`sync.forecast`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kith.sync.kinds import schema
from kith.sync.kinds.common import Handler, OpRejected
from kith.sync.kinds.records import Recurring
from kith.sync.opkind import OpKind

if TYPE_CHECKING:
    from kith.sync.ops import Op, SignedOp
    from kith.sync.state import CircleState

MONTHLY = "monthly"
"""The optional key of ``fund.contribute`` and ``aid.pledge``: the first month."""
MONTH = "month"
"""The optional key of ``fund.receipt``: the installment it confirms."""

_STOP_KEYS = frozenset({"contribution", "last"})

NOT_A_CONTRIBUTION = "contribution is not a contribution of this circle"
NOT_RECURRING = "the contribution is not recurring"
NEEDS_MONTH = "a recurring contribution's receipt names the month it confirms"
NO_MONTH_FOR_ONE_OFF = "only a recurring contribution's receipt names a month"
BEFORE_FIRST = "the month is before the contribution's first month"
AFTER_STOP = "the contribution was stopped before that month"
INSTALLMENT_CONFIRMED = "that month's installment is already confirmed"
NOT_CONTRIBUTOR = "only its author may stop a recurring contribution"
ALREADY_STOPPED = "the recurring contribution is already stopped"
LAST_TOO_EARLY = "last is before a month already confirmed, or before the month before the first"


def month_index(month: str) -> int:
    """``"2026-12"`` -> months since year 0 (for arithmetic; comparisons use the strings)."""
    return int(month[:4]) * 12 + int(month[5:7]) - 1


def month_at(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def add_months(month: str, count: int) -> str:
    return month_at(month_index(month) + count)


def first_month(state: CircleState, body: dict[str, Any]) -> str | None:
    """The ``monthly`` key of a contribution or pledge body (validated), or None if absent."""
    return schema.month(body[MONTHLY], MONTHLY) if MONTHLY in body else None


def start(state: CircleState, item_id: bytes, first: str | None) -> None:
    """Record a recurring contribution or pledge (a no-op for a one-off)."""
    if first is not None:
        state.put(state.recurring, item_id, Recurring(first, None, None))


def check_installment(state: CircleState, contribution_id: bytes, month: str | None) -> None:
    """Reject a receipt that does not fit the contribution's schedule (before any effect)."""
    recurring = state.recurring.get(contribution_id)
    if recurring is None:
        if month is not None:
            raise OpRejected(NO_MONTH_FOR_ONE_OFF)
        return
    if month is None:
        raise OpRejected(NEEDS_MONTH)
    if month < recurring.first:
        raise OpRejected(BEFORE_FIRST)
    if recurring.last is not None and month > recurring.last:
        raise OpRejected(AFTER_STOP)
    if month in state.installments.get(contribution_id, {}):
        raise OpRejected(INSTALLMENT_CONFIRMED)


def confirm_installment(state: CircleState, contribution_id: bytes, month: str, receipt: bytes) -> None:
    confirmed = state.installments.get(contribution_id)
    if confirmed is None:
        state.put(state.installments, contribution_id, {month: receipt})
    else:
        state.put(confirmed, month, receipt)


def fund_stop(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    body = schema.exact_keys(body, _STOP_KEYS, "body")
    contribution_id = schema.op_ref(body["contribution"], "contribution")
    last = schema.month(body["last"], "last")
    contribution = state.contributions.get(contribution_id)
    if contribution is None:
        raise OpRejected(NOT_A_CONTRIBUTION)
    recurring = state.recurring.get(contribution_id)
    if recurring is None:
        raise OpRejected(NOT_RECURRING)
    if contribution.author != op.author:
        raise OpRejected(NOT_CONTRIBUTOR)
    if recurring.stopped_by is not None:
        raise OpRejected(ALREADY_STOPPED)
    confirmed = state.installments.get(contribution_id, {})
    if month_index(last) < month_index(recurring.first) - 1 or any(month > last for month in confirmed):
        raise OpRejected(LAST_TOO_EARLY)
    state.put(state.recurring, contribution_id, recurring._replace(last=last, stopped_by=signed.id))


HANDLERS: dict[str, Handler] = {OpKind.FUND_STOP: fund_stop}
