"""The events a node tells its control clients about (`subscribe`; docs/API.md, "Events").

One name per kind of event, so mypy checks every `emit` against the list and a client can
match on them. Each event's payload is a JSON object documented in docs/API.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

EventName = Literal[
    "ops",  # a circle's state changed (new ops folded)
    "stored",  # a relay stored envelopes of a topic
    "peer",  # a peer connected, went away or was banned
    "joined",  # we joined a circle
    "join_refused",
    "member_added",
    "rotated",  # a circle's key was rotated
    "private_checkin",  # a check-in sealed to organizers arrived
    "report",  # a report sealed to organizers arrived
    "join_request",  # someone asked to join with one of our invites
    "rejected",  # the fold refused an op
    "synced",  # a reconciliation with a peer ended
]

Emit = Callable[[EventName, dict[str, Any]], None]
"""How a service tells the node's clients that something happened."""
