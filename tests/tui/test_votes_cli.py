"""`kith propose --closes` and how proposals show their closing time (pure, no node)."""

from __future__ import annotations

import pytest

from kith.identity.errors import UsageError
from kith.tui.commands.circle_cmds import parse_closes
from kith.tui.render import awaits_my_vote, proposal_lines, time_left


@pytest.mark.parametrize(("text", "seconds"), [("48h", 172_800), ("3d", 259_200), ("90m", 5400), ("60", 60)])
def test_closes_takes_the_units_people_type(text: str, seconds: int) -> None:
    assert parse_closes(text) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [("59s", "from 1 minute to 30 days"), ("31d", "from 1 minute to 30 days"), ("soon", "not a duration")],
)
def test_closes_out_of_bounds_is_one_line(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_closes(text)


def test_time_left_is_coarse_and_never_negative() -> None:
    assert time_left(1000 + 2 * 86_400 + 5 * 3600 + 59, 1000) == "2d 5h left"
    assert time_left(1000 + 3 * 3600 + 120, 1000) == "3h 2 min left"
    assert time_left(1030, 1000) == "1 min left"
    assert time_left(1000, 1000) == "closing"


def _proposal(status: str, voted: list[str]) -> dict[str, object]:
    return {
        "id": "ab" * 32, "title": "Bus passes", "kind": "general", "status": status, "author_name": "Ash",
        "details": {}, "rule": {"quorum_pct": 30, "threshold_pct": 50, "consent": False},
        "approve": len(voted), "object": 0, "abstain": 0, "eligible": 2, "closes_at": 1000 + 7200,
        "voters": ["aa", "bb"], "voter_names": ["Ash", "Bea"],
        "votes": [{"voter": v, "voter_name": v, "choice": "approve", "reason": None, "op": "cd" * 32} for v in voted],
    }  # fmt: skip


def test_the_reminder_is_for_an_eligible_member_who_has_not_voted_on_an_open_proposal() -> None:
    assert awaits_my_vote(_proposal("open", ["aa"]), "bb")
    assert not awaits_my_vote(_proposal("open", ["aa"]), "aa")  # voted
    assert not awaits_my_vote(_proposal("open", []), "cc")  # not eligible (joined after it opened)
    assert not awaits_my_vote(_proposal("approved", []), "bb")  # decided
    lines = proposal_lines({"proposals": [_proposal("open", ["aa"])]}, now=1000)
    assert "OPEN · 2h 0 min left (closes 1970-01-01 02:16 UTC)" in lines[0]
    assert lines[-1] == "    eligible: Ash, Bea (not voted)"
