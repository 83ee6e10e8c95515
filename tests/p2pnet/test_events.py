"""The node's event names: one list (kith.p2pnet.events.EventName, which mypy checks every
`emit` against) and docs/API.md's Notifications table name the same events."""

from __future__ import annotations

import re
import typing
from pathlib import Path

from kith.p2pnet.events import EventName

API = Path(__file__).resolve().parents[2] / "docs" / "API.md"


def test_the_event_names_are_the_ones_docs_api_lists() -> None:
    section = API.read_text().split("## Notifications", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `(\w+)` \|", section, flags=re.M))
    assert documented == set(typing.get_args(EventName))
