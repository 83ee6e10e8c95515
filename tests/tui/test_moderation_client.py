"""The client's side of moderation and monthly money, against the fake node's calm circle:
reporting a post (sealed to organizers), hiding one (organizers only), what a hidden post
shows (to its author: that it was hidden and why), reports in the Care view, the Fund
view's totals and forecast, and a treasurer's receipt of a month's installment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fake_node import ASH, BEA, CIRCLE, ME, POST, TS, FakeNode, calm_answers, calm_views
from test_client_promises import drive, lines
from textual.pilot import Pilot
from textual.widgets import Input
from tui_harness import screen_text, type_text, wait_until

from kith.tui.screens.form import FormScreen
from kith.tui.screens.main import MainScreen


def _answers(views: dict[str, Any]) -> dict[str, Any]:
    answers = calm_answers()
    answers["views"] = views
    for method in ("report", "hide"):
        answers[method] = {"id": None if method == "report" else "ff" * 32, "rejected": None}
    return answers


async def _form(pilot: Pilot[Any], key: str) -> FormScreen:
    await pilot.press(key)
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, FormScreen), what=f"a form after {key}")
    await pilot.pause()
    return pilot.app.screen  # type: ignore[return-value]


async def _sent(pilot: Pilot[Any], node: FakeNode, method: str) -> dict[str, Any]:
    await wait_until(pilot, lambda: node.count(method) >= 1, what=f"the call {method}")
    return [params for called, params in node.calls if called == method][0]


def _select_post(main: MainScreen) -> None:
    feed = main.query_one("#feed")
    feed.listing.highlighted = feed.listing.get_option_index(POST)  # type: ignore[attr-defined]


@pytest.mark.parametrize("organizer", [True, False])
def test_report_and_hide_a_post(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, organizer: bool) -> None:
    views = calm_views()
    if not organizer:
        views["members"][0]["roles"] = []

    async def scenario(pilot: Pilot[Any], main: MainScreen, node: FakeNode, said: list[str]) -> None:
        _select_post(main)
        form = await _form(pilot, "exclamation_mark")
        form.query_one("#f-reason", Input).focus()
        await type_text(pilot, "it names her address")
        await pilot.press("enter")
        assert await _sent(pilot, node, "report") == {"post": POST, "reason": "it names her address", "circle": CIRCLE}
        await pilot.pause()
        await pilot.press("x")
        await pilot.pause()
        if not organizer:  # the key does nothing for a member: no form, no call
            assert not isinstance(pilot.app.screen, FormScreen) and node.count("hide") == 0
            return
        form = pilot.app.screen
        assert isinstance(form, FormScreen)
        form.query_one("#f-reason", Input).focus()
        await type_text(pilot, "doxxing")
        await pilot.press("enter")
        assert await _sent(pilot, node, "hide") == {"target": POST, "reason": "doxxing", "circle": CIRCLE}

    drive(tmp_path, monkeypatch, scenario, size=(100, 30), answers=_answers(views))


def test_a_hidden_post_tells_its_author_by_whom_and_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    views = calm_views()
    post = next(item for item in views["feed"] if item["id"] == POST)
    post |= {"text": "", "hidden": "it gave out a home address", "hidden_by": "Ash", "author": ME, "urgent": False}

    async def scenario(pilot: Pilot[Any], main: MainScreen, node: FakeNode, said: list[str]) -> None:
        text = screen_text(pilot.app)  # type: ignore[arg-type]
        assert "(your post was hidden by Ash: it gave out a home address)" in text
        assert "fell through" not in text

    drive(tmp_path, monkeypatch, scenario, size=(120, 40), answers=_answers(views))


def test_reports_show_in_care_for_organizers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    views = calm_views()
    views["reports"] = [
        {"id": "c1" * 32, "reporter": BEA, "reporter_name": "Bea", "ts": TS, "target": "post", "target_id": POST,
         "target_member": ASH, "target_name": "Ash", "reason": "threatening", "post_text": "", "readable": False,
         "hidden": None},
        {"id": "c2" * 32, "reporter": ASH, "reporter_name": "Ash", "ts": TS, "target": "member", "target_id": BEA,
         "target_member": BEA, "target_name": "Bea", "reason": "spam in DMs", "post_text": "", "readable": True,
         "hidden": None},
    ]  # fmt: skip

    async def scenario(pilot: Pilot[Any], main: MainScreen, node: FakeNode, said: list[str]) -> None:
        await pilot.press("2")
        await pilot.pause()
        text = screen_text(pilot.app)  # type: ignore[arg-type]
        assert "Reports to the organizers" in text
        assert "Bea reported a post by Ash (not readable here): threatening" in text
        assert "Ash reported member Bea: spam in DMs" in text

    drive(tmp_path, monkeypatch, scenario, size=(140, 50), answers=_answers(views))


def test_fund_shows_the_forecast_and_receipts_a_month(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    views = calm_views()
    monthly = {"id": "d1" * 32, "type": "contribution", "author": BEA, "author_name": "Bea", "amount": 2500,
               "currency": "EUR", "first": "2000-01", "last": "2000-03", "stopped_by": "d2" * 32,
               "confirmed": ["2000-01"], "active": False}  # fmt: skip
    views["fund"] |= {
        "pending": [],
        "totals": [{"currency": "USD", "received": 0, "disbursed": 0, "balance": 0, "awaiting": 0, "pledged": 0,
                    "monthly": 1000}],
        "forecast": [{"month": "2031-01", "currency": "USD", "contributions": 1000, "confirmed": 0, "pledges": 0},
                     {"month": "2031-01", "currency": "GBP", "contributions": 0, "confirmed": 0, "pledges": 500}],
        "recurring": [monthly],
    }  # fmt: skip

    async def scenario(pilot: Pilot[Any], main: MainScreen, node: FakeNode, said: list[str]) -> None:
        await pilot.press("4")
        await pilot.pause()
        shown = "\n".join(lines(pilot))
        assert "USD: expected monthly 10.00 USD" in shown
        assert "Forecast: 2031-01 10.00 USD + 5.00 GBP" in shown  # listed side by side, never added
        await _form(pilot, "t")
        text = screen_text(pilot.app)  # type: ignore[arg-type]
        assert "25.00 EUR from Bea for 2000-03 (monthly)" in text and "for 2000-01" not in text
        await pilot.press("enter")
        sent = await _sent(pilot, node, "receipt")
        assert sent["contribution"] == "d1" * 32 and sent["month"] in ("2000-02", "2000-03")

    drive(tmp_path, monkeypatch, scenario, size=(140, 50), answers=_answers(views))


# --- what the command line prints ------------------------------------------------------


def test_feed_and_ledger_lines_show_hides_totals_and_forecast() -> None:
    from kith.tui.render import feed_lines, ledger_lines

    post = {"id": POST, "kind": "post", "author": ME, "author_name": "Sam", "ts": TS, "status": None, "urgent": False,
            "edited": False, "deleted": False, "content_warning": None, "text": "", "reactions": [], "replies": [],
            "hidden": "slur", "hidden_by": "Ash"}  # fmt: skip
    text = "\n".join(feed_lines({"feed": [post], "me": ME}))
    assert "(your post was hidden by Ash: slur)" in text
    text = "\n".join(feed_lines({"feed": [post], "me": BEA}))
    assert "(hidden by Ash: slur)" in text
    receipt = {"op": "f1" * 32, "ts": TS, "entry": "receipt", "amount": 2500, "currency": "EUR", "signer_name": "Ash",
               "ref": "d1" * 32, "note": None}  # fmt: skip
    fund = {
        "balances": [["EUR", 2500], ["JPY", 300]], "pending": [], "entries": [receipt],
        "totals": [{"currency": "EUR", "received": 2500, "disbursed": 0, "balance": 2500, "awaiting": 0,
                    "pledged": 0, "monthly": 2500},
                   {"currency": "JPY", "received": 300, "disbursed": 0, "balance": 300, "awaiting": 0,
                    "pledged": 0, "monthly": 0}],
        "forecast": [{"month": "2026-12", "currency": "EUR", "contributions": 2500, "confirmed": 2500, "pledges": 0}],
        "recurring": [{"id": "d1" * 32, "type": "contribution", "author": BEA, "author_name": "Bea", "amount": 2500,
                       "currency": "EUR", "first": "2026-12", "last": None, "stopped_by": None,
                       "confirmed": ["2026-12"], "active": True}],
        "installments": [{"contribution": "d1" * 32, "month": "2026-12", "receipt": "f1" * 32}],
    }  # fmt: skip
    text = "\n".join(ledger_lines({"fund": fund}))
    assert "EUR: received 25.00 EUR, disbursed 0.00 EUR, balance 25.00 EUR, expected monthly 25.00 EUR" in text
    assert "JPY: received 300 JPY, disbursed 0 JPY, balance 300 JPY" in text
    assert "2026-12 EUR: contributions 25.00 EUR (25.00 EUR confirmed)" in text
    assert "from Bea, 2026-12 until stopped; confirmed: 2026-12" in text
    assert "(2026-12)" in text  # the receipt names its month
