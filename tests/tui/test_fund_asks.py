"""The Fund view under allocation rules: each ask's standing and why, who asked only for the
treasurers, asking the fund from a form (docs/OPS.md, "Allocation")."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from fake_node import ME, OTHER, FakeNode, calm_answers
from test_client_promises import drive
from textual.pilot import Pilot
from textual.widgets import DataTable
from tui_harness import type_text, wait_until

from kith.tui.demo_world import HARDSHIP_RULES
from kith.tui.screens.form import FormScreen
from kith.tui.screens.main import MainScreen

RULES = {"period_s": 604800, "reveal_s": 86400, "currency": "EUR", "categories": {"legal": 30000, "rent": 80000},
         "cap": 50000, "cooldown": 1, "priority": True}  # fmt: skip


def _ask(n: int, outcome: str | None, standing: str, member: str | None) -> dict[str, Any]:
    return {"id": f"{n:02x}" * 32, "period": 2930, "category": "rent", "amount": 40000, "currency": "EUR",
            "pseudonym": f"{n + 16:02x}" * 16, "rank": n, "outcome": outcome, "paid": False, "revealed": True,
            "standing": standing, "member": member}  # fmt: skip


def _answers(member_sees: bool) -> dict[str, Any]:
    answers = calm_answers()
    views = answers["views"]
    asks = [
        _ask(1, "allocated", "drawn 1st of 3: allocated, waiting for a treasurer to pay", ME if member_sees else None),
        _ask(2, "allocated", "drawn 2nd of 3: allocated, waiting for a treasurer to pay", None),
        _ask(3, "over-budget", "drawn 3rd of 3: the rent budget was spent by asks ranked before it",
             OTHER if member_sees else None),
    ]  # fmt: skip
    allocations = {"rules": RULES, "committee": [ME], "asks": asks, "periods": [], "problems": []}

    def with_allocations(params: dict[str, Any]) -> Any:
        base = views(params) if callable(views) else copy.deepcopy(views)
        return {**base, "allocations": copy.deepcopy(allocations)}

    answers["views"] = with_allocations
    answers["ask_fund"] = {"id": None, "private": "ee" * 32, "commit": "cc" * 32, "rejected": None}
    return answers


def _rows(main: MainScreen) -> list[list[str]]:
    table = main.query_one("#asks", DataTable)
    return [[str(cell) for cell in table.get_row_at(row)] for row in range(table.row_count)]


def test_the_fund_view_says_where_each_ask_stands_and_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario(pilot: Pilot[Any], main: MainScreen, node: FakeNode, said: list[str]) -> None:
        await pilot.press("4")
        await wait_until(pilot, lambda: main.query_one("#asks", DataTable).row_count == 3, what="the asks")
        rows = _rows(main)
        assert rows[2][3].startswith("drawn 3rd of 3: the rent budget was spent")
        assert rows[1][2] == "#" + "12" * 3  # a pseudonym: who asked is not shown to everyone
        assert rows[0][2] != "#" + "11" * 3  # the committee sees a name
        await pilot.press("a")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, FormScreen), what="the ask form")
        await pilot.press("tab")
        await type_text(pilot, "250.00")
        await pilot.press("enter")
        await wait_until(pilot, lambda: any(m == "ask_fund" for m, _p in node.calls), what="the ask")
        (params,) = [p for m, p in node.calls if m == "ask_fund"]
        assert (params["category"], params["amount"], params["note"]) == ("legal", 25000, None)

    drive(tmp_path, monkeypatch, scenario, size=(120, 50), answers=_answers(member_sees=True))


def test_the_demo_circle_runs_on_the_readme_peer_support_rules() -> None:
    """README, "Writing your circle's rules": the demo circle adopts its peer-support example."""
    import json
    import re

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    example = dict(re.findall(r"```json alloc-example ([a-z-]+)\n(.*?)```", readme, re.S))["peer-support"]
    assert json.loads(example) == HARDSHIP_RULES


def test_kith_allocations_prints_the_rules_totals_and_each_asks_standing() -> None:
    from kith.tui.commands.fund_cmds import allocation_lines

    answers = _answers(member_sees=False)
    view = answers["views"]({})["allocations"]
    view["periods"] = [{"period": 2930, "currency": "EUR", "closed": True, "drawn": True, "seed": "00" * 32,
                        "categories": [{"category": "rent", "budget": 80000, "asked": 120000, "allocated": 80000,
                                        "paid": 0}], "pseudonyms": []}]  # fmt: skip
    lines = allocation_lines(view)
    assert lines[0].startswith("Rules: periods of 1 week; budgets legal 300.00 EUR, rent 800.00 EUR; cap 500.00 EUR")
    assert "  rent: budget 800.00 EUR, asked 1200.00 EUR, allocated 800.00 EUR, paid 0.00 EUR" in lines
    assert any(line.endswith("drawn 3rd of 3: the rent budget was spent by asks ranked before it") for line in lines)
    assert allocation_lines({"rules": None})[0].startswith("This circle's charter has no allocation rules")
