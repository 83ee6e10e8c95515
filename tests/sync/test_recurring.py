"""Recurring contributions and pledges: installments, stopping, totals and forecast per currency."""

from __future__ import annotations

from typing import Any

import pytest
from circle_support import Circle
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from test_state_authority import assert_rejected_without_effect

from kith.sync.forecast import fund_forecast, fund_totals, month_of
from kith.sync.kinds import fund, recurring
from kith.sync.kinds.common import NOT_TREASURER
from kith.sync.replica import CircleReplica
from kith.sync.views import fund_ledger

RECEIPT = "fund.receipt"


def _monthly(circle: Circle, who: str, amount: int, currency: str = "EUR", first: str = "2026-12") -> Any:
    return circle.act(who, "fund.contribute", {"amount": amount, "currency": currency, "note": None, "monthly": first})


def _receipt(circle: Circle, contribution: Any, month: str | None, who: str = "bob") -> Any:
    body: dict[str, Any] = {"contribution": contribution.id}
    if month is not None:
        body["month"] = month
    return circle.act(who, RECEIPT, body)


def test_one_off_ops_keep_their_exact_bodies(circle: Circle) -> None:
    """Absent keys are the old ops: a one-off contribution and its receipt fold as before."""
    one_off = circle.contribute("carol", 700)
    receipt = _receipt(circle, one_off, None)
    assert circle.reason(receipt) is None and circle.state.balances == {"EUR": 700}
    assert set(one_off.op.body) == {"amount", "currency", "note"} and set(receipt.op.body) == {"contribution"}
    assert circle.state.recurring == {} and "recurring" not in circle.state.canonical()


def test_each_installment_is_confirmed_once_in_its_own_month(circle: Circle) -> None:
    monthly = _monthly(circle, "carol", 2500)
    for month in ("2026-12", "2027-01", "2027-03"):
        assert circle.reason(_receipt(circle, monthly, month)) is None
    assert circle.state.balances == {"EUR": 7500}
    assert circle.state.installments[monthly.id].keys() == {"2026-12", "2027-01", "2027-03"}
    for month, reason in (
        ("2027-01", recurring.INSTALLMENT_CONFIRMED),  # the same month twice
        ("2026-11", recurring.BEFORE_FIRST),
    ):
        assert_rejected_without_effect(circle, "bob", RECEIPT, {"contribution": monthly.id, "month": month}, reason)
    assert_rejected_without_effect(circle, "bob", RECEIPT, {"contribution": monthly.id}, recurring.NEEDS_MONTH)
    one_off = circle.contribute("dana", 100)
    assert_rejected_without_effect(circle, "bob", RECEIPT, {"contribution": one_off.id, "month": "2026-12"},
                                   recurring.NO_MONTH_FOR_ONE_OFF)  # fmt: skip
    for bad in ("2026-13", "26-12", "2026-1", 202612, "1999-12"):
        body = {"contribution": monthly.id, "month": bad}
        rule = "wrong type" if isinstance(bad, int) else "bad format"
        assert_rejected_without_effect(circle, "bob", RECEIPT, body, f"invalid body: month: {rule}")
    assert circle.state.balances == {"EUR": 7500}


def test_a_non_treasurer_cannot_confirm_an_installment(circle: Circle) -> None:
    monthly = _monthly(circle, "carol", 2500)
    for who in ("carol", "dana", "alice"):  # the contributor, a member, an organizer
        body = {"contribution": monthly.id, "month": "2026-12"}
        assert_rejected_without_effect(circle, who, RECEIPT, body, NOT_TREASURER)


def test_stopping_ends_later_installments_but_not_money_already_sent(circle: Circle) -> None:
    monthly = _monthly(circle, "carol", 1000)
    _receipt(circle, monthly, "2026-12")
    assert_rejected_without_effect(circle, "dana", "fund.stop", {"contribution": monthly.id, "last": "2027-01"},
                                   recurring.NOT_CONTRIBUTOR)  # fmt: skip
    assert_rejected_without_effect(circle, "carol", "fund.stop", {"contribution": monthly.id, "last": "2026-11"},
                                   recurring.LAST_TOO_EARLY)  # fmt: skip
    stop = circle.act("carol", "fund.stop", {"contribution": monthly.id, "last": "2027-01"})
    assert circle.reason(stop) is None
    assert circle.reason(_receipt(circle, monthly, "2027-01")) is None  # sent before stopping, confirmed late
    assert_rejected_without_effect(circle, "bob", RECEIPT, {"contribution": monthly.id, "month": "2027-02"},
                                   recurring.AFTER_STOP)  # fmt: skip
    assert_rejected_without_effect(circle, "carol", "fund.stop", {"contribution": monthly.id, "last": "2027-05"},
                                   recurring.ALREADY_STOPPED)  # fmt: skip
    one_off = circle.contribute("carol", 5)
    assert_rejected_without_effect(circle, "carol", "fund.stop", {"contribution": one_off.id, "last": "2027-05"},
                                   recurring.NOT_RECURRING)  # fmt: skip
    assert circle.state.balances == {"EUR": 2000}


def test_stop_cannot_end_before_a_confirmed_month(circle: Circle) -> None:
    monthly = _monthly(circle, "carol", 1000)
    _receipt(circle, monthly, "2027-02")
    assert_rejected_without_effect(circle, "carol", "fund.stop", {"contribution": monthly.id, "last": "2027-01"},
                                   recurring.LAST_TOO_EARLY)  # fmt: skip


def test_monthly_is_refused_where_it_does_not_belong(circle: Circle) -> None:
    body = {"category": "money", "description": "rent", "amount": 5, "unit": "EUR", "expires": None,
            "monthly": "2026-12"}  # fmt: skip
    assert_rejected_without_effect(circle, "carol", "aid.request", body, "invalid body: body: wrong fields")
    body = {"amount": 5, "currency": "EUR", "note": None, "monthly": None}
    assert_rejected_without_effect(circle, "carol", "fund.contribute", body, "invalid body: monthly: wrong type")


def test_totals_and_forecast_are_per_currency_and_never_mixed(circle: Circle) -> None:
    eur = _monthly(circle, "carol", 2500, "EUR", "2026-12")
    _monthly(circle, "dana", 1000, "USD", "2027-01")
    yen = _monthly(circle, "carol", 3000, "JPY", "2026-11")
    one_off = circle.contribute("dana", 400, "EUR")
    circle.contribute("dana", 50, "USD")
    _receipt(circle, eur, "2026-12")
    _receipt(circle, one_off, None)
    circle.act("carol", "fund.stop", {"contribution": yen.id, "last": "2026-12"})
    pledge = {"category": "money", "description": "groceries", "amount": 2000, "unit": "GBP", "expires": None,
              "monthly": "2027-01"}  # fmt: skip
    circle.act("alice", "aid.pledge", pledge)
    circle.act("alice", "aid.pledge", {**pledge, "unit": "nights", "amount": 2})  # not money: never summed
    circle.act("bob", "aid.pledge", {key: value for key, value in pledge.items() if key != "monthly"})
    totals = {t.currency: t for t in fund_totals(circle.state)}
    assert set(totals) == {"EUR", "GBP", "USD"}  # JPY: stopped, nothing confirmed: nothing to total
    assert (totals["EUR"].received, totals["EUR"].balance, totals["EUR"].awaiting, totals["EUR"].monthly) == (
        2900,
        2900,
        0,
        2500,
    )
    assert (totals["USD"].awaiting, totals["USD"].monthly, totals["USD"].received) == (50, 1000, 0)
    assert (totals["GBP"].pledged, totals["GBP"].monthly) == (2000, 2000)
    forecast = [(f.month, f.currency, f.contributions, f.confirmed, f.pledges)
                for f in fund_forecast(circle.state, "2026-12")]  # fmt: skip
    assert forecast == [
        ("2026-12", "EUR", 2500, 2500, 0),
        ("2026-12", "JPY", 3000, 0, 0),
        ("2027-01", "EUR", 2500, 0, 0),
        ("2027-01", "GBP", 0, 0, 2000),
        ("2027-01", "USD", 1000, 0, 0),
        ("2027-02", "EUR", 2500, 0, 0),
        ("2027-02", "GBP", 0, 0, 2000),
        ("2027-02", "USD", 1000, 0, 0),
    ]
    ledger = fund_ledger(circle.state, now=1_796_083_200)  # 2026-12-01 UTC
    assert month_of(1_796_083_200) == "2026-12" and ledger.forecast[0].month == "2026-12"
    assert [p.amount for p in ledger.pending] == [50]  # recurring contributions are not "awaiting"
    assert {(r.type, r.currency, r.active) for r in ledger.recurring} == {
        ("contribution", "EUR", True),
        ("contribution", "USD", True),
        ("contribution", "JPY", False),
        ("pledge", "GBP", True),
        ("pledge", None, True),
    }


def test_the_state_restores_from_its_canonical_picture(circle: Circle) -> None:
    monthly = _monthly(circle, "carol", 2500)
    _receipt(circle, monthly, "2026-12")
    circle.act("carol", "fund.stop", {"contribution": monthly.id, "last": "2027-01"})
    post = circle.post("carol")
    circle.act("alice", "msg.hide", {"target": post.id, "reason": "spam"})
    from kith.identity import codec
    from kith.sync.state import CircleState

    picture = codec.decode(circle.state.encode(), max_size=1 << 20)  # as a snapshot stores it
    assert {"hidden", "recurring", "installments"} <= set(picture)
    copy = CircleState.restore(circle.state.circle_id, picture)
    assert copy.state_hash() == circle.state.state_hash()
    assert copy.installments == circle.state.installments and copy.hidden == circle.state.hidden


# --- a stateful property: installments ------------------------------------------------

MONTHS = [recurring.add_months("2026-10", n) for n in range(8)]


class Installments(RuleBasedStateMachine):
    """Contributions (some monthly), receipts of chosen months by the treasurer or not,
    stops: the fold agrees with a plain model of the rules, the balance per currency is
    the sum of what was confirmed, and a replica fed the ops in reverse-causal-safe batches
    reaches the same state."""

    def __init__(self) -> None:
        super().__init__()
        self.circle = Circle()
        for name in ("bob", "carol", "dana"):
            self.circle.add(name)
        self.circle.grant("bob", "treasurer")
        self.model: dict[bytes, dict[str, Any]] = {}
        self.balance: dict[str, int] = {}

    @rule(who=st.sampled_from(["carol", "dana"]), amount=st.integers(1, 10_000),
          currency=st.sampled_from(["EUR", "USD"]), first=st.sampled_from(MONTHS + [None]))  # fmt: skip
    def contribute(self, who: str, amount: int, currency: str, first: str | None) -> None:
        body: dict[str, Any] = {"amount": amount, "currency": currency, "note": None}
        if first is not None:
            body["monthly"] = first
        signed = self.circle.act(who, "fund.contribute", body)
        self.model[signed.id] = {"who": who, "amount": amount, "currency": currency, "first": first, "last": None,
                                 "stopped": False, "months": set(), "receipted": False}  # fmt: skip

    @precondition(lambda self: self.model)
    @rule(data=st.data(), month=st.sampled_from(MONTHS + [None]), who=st.sampled_from(["bob", "bob", "carol"]))
    def receipt(self, data: st.DataObject, month: str | None, who: str) -> None:
        contribution = data.draw(st.sampled_from(sorted(self.model)))
        entry = self.model[contribution]
        body: dict[str, Any] = {"contribution": contribution}
        if month is not None:
            body["month"] = month
        signed = self.circle.act(who, "fund.receipt", body)
        if who != "bob":
            expected = NOT_TREASURER
        elif entry["first"] is None:
            # docs/OPS.md: "already confirmed" (a one-off) is checked before a month on one.
            expected = fund.ALREADY_RECEIPTED if entry["receipted"] else (
                recurring.NO_MONTH_FOR_ONE_OFF if month is not None else None)  # fmt: skip
        elif month is None:
            expected = recurring.NEEDS_MONTH
        elif month < entry["first"]:
            expected = recurring.BEFORE_FIRST
        elif entry["last"] is not None and month > entry["last"]:
            expected = recurring.AFTER_STOP
        elif month in entry["months"]:
            expected = recurring.INSTALLMENT_CONFIRMED
        else:
            expected = None
        assert self.circle.reason(signed) == expected
        if expected is None:
            if month is None:
                entry["receipted"] = True
            else:
                entry["months"].add(month)
            self.balance[entry["currency"]] = self.balance.get(entry["currency"], 0) + entry["amount"]

    @precondition(lambda self: any(e["first"] for e in self.model.values()))
    @rule(data=st.data(), last=st.sampled_from(MONTHS))
    def stop(self, data: st.DataObject, last: str) -> None:
        contribution = data.draw(st.sampled_from(sorted(c for c, e in self.model.items() if e["first"])))
        entry = self.model[contribution]
        signed = self.circle.act(entry["who"], "fund.stop", {"contribution": contribution, "last": last})
        too_early = recurring.month_index(last) < recurring.month_index(entry["first"]) - 1 or any(
            m > last for m in entry["months"]
        )
        expected = recurring.ALREADY_STOPPED if entry["stopped"] else recurring.LAST_TOO_EARLY if too_early else None
        assert self.circle.reason(signed) == expected
        if expected is None:
            entry["stopped"], entry["last"] = True, last

    @invariant()
    def balances_are_what_was_confirmed(self) -> None:
        assert self.circle.state.balances == self.balance
        for contribution, entry in self.model.items():
            assert set(self.circle.state.installments.get(contribution, {})) == entry["months"]

    def teardown(self) -> None:
        ops = list(self.circle.replica.ops())
        other = CircleReplica(self.circle.state.circle_id)
        other.ingest_many(reversed(ops))  # the causal buffer reorders them
        assert other.state_hash() == self.circle.replica.state_hash()


Installments.TestCase.settings = settings(
    max_examples=40, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestInstallments = Installments.TestCase


@pytest.mark.parametrize("month", ["2026-12", "2000-01", "9999-12"])
def test_month_arithmetic_round_trips(month: str) -> None:
    assert recurring.month_at(recurring.month_index(month)) == month
    assert recurring.add_months(month, -1) < month
