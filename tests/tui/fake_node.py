"""A node that answers the client from canned data: no process, no socket, no clock.

`hostile_world(text)` is one circle in which everything a member (or a stranger asking
to join, a peer, a relay) can choose is ``text``: names, posts, titles, places, notes,
reasons, circle names, error messages. Its shape follows the node's real answers
(docs/API.md; recorded from a demo world), so the client draws every view from it.
`attach_fake_node` makes `make_app` talk to a `FakeNode` instead of starting or dialling
a real one, through the client's own start-up path.
"""

from __future__ import annotations

import copy
import inspect
import time
from collections.abc import Callable
from typing import Any

import pytest

import kith.tui.app as tui_app
from kith.tui.rpc import NodeConnection

ME = "a1" * 32
OTHER = "b2" * 32
STRANGER = "c3" * 32
CIRCLE = "d4" * 16
POST, REPLY, CHECKIN = "e1" * 32, "e2" * 32, "e3" * 32
PLEDGE, REQUEST, MY_PLEDGE = "f1" * 32, "f2" * 32, "f3" * 32
PROPOSAL, EVENT, CONTRIBUTION = "a7" * 32, "a8" * 32, "a9" * 32
TS = 1_796_457_858
FINGERPRINT = "01a6 b2ba 241f 9e2c b1bd 7428 6dea dcee 0000 1111"


class FakeNode:
    """Answers `call` from ``answers`` (a value, a callable of the params - which may be a
    coroutine function, to answer late - or an exception to raise) and records every call;
    `push` delivers a node event as the real pump does."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.on_event: Callable[[dict[str, Any]], None] | None = None
        self.closed = False

    async def call(self, method: str, **params: Any) -> Any:
        self.calls.append((method, params))
        answer = self.answers[method]
        if isinstance(answer, Exception):
            raise answer
        if not callable(answer):
            return copy.deepcopy(answer)
        result = answer(params)
        return await result if inspect.isawaitable(result) else result

    async def subscribe(self, events: list[str], on_event: Callable[[dict[str, Any]], None]) -> None:
        self.on_event = on_event

    async def close(self) -> None:
        self.closed = True

    def push(self, event: dict[str, Any]) -> None:
        assert self.on_event is not None, "the client has not subscribed yet"
        self.on_event(event)

    def count(self, method: str) -> int:
        return sum(1 for called, _params in self.calls if called == method)


def attach_fake_node(monkeypatch: pytest.MonkeyPatch, node: FakeNode) -> None:
    """The client finds a running node for its home and attaches to ``node``."""

    async def open_fake(socket_path: Any) -> FakeNode:
        return node

    monkeypatch.setattr(tui_app, "socket_in_use", lambda path: True)
    monkeypatch.setattr(NodeConnection, "open", staticmethod(open_fake))


def _post(item_id: str, text: str, *, replies: list[dict[str, Any]], kind: str = "post") -> dict[str, Any]:
    return {
        "id": item_id, "kind": kind, "author": OTHER, "author_name": text, "lamport": 1, "ts": TS, "text": text,
        "content_warning": None, "urgent": kind == "post", "status": "struggling" if kind == "checkin" else None,
        "edited": True, "deleted": False, "reactions": [[text[:16], 2]], "replies": replies, "readable": True,
    }  # fmt: skip


def _aid(item_id: str, kind: str, author: str, text: str, status: str = "open") -> dict[str, Any]:
    return {
        "id": item_id, "author_name": text, "expired": False, "type": kind, "author": author, "lamport": 2,
        "ts": TS, "category": "ride", "content": "00", "amount": 12, "unit": text[:16], "expires": None,
        "status": status, "matched": [], "closed_by": None, "private": None, "description": text,
        "readable": True, "requester": None,
    }  # fmt: skip


def hostile_views(text: str) -> dict[str, Any]:
    """The `views` answer for a circle where every member-chosen string is ``text``."""
    warned = _post(REPLY, text, replies=[]) | {"content_warning": text}
    member = {
        "pronouns": text, "skills": [text, text], "joined_op": "00", "added_by": ME, "vouch": text,
        "wellbeing": "struggling", "forked": False, "verified": False, "has_current_key": True,
    }  # fmt: skip
    return {
        "id": CIRCLE, "me": ME, "name": text, "description": text, "charter_text": text, "private_checkins": [],
        "feed": [
            _post(POST, text, replies=[warned]),
            _post(CHECKIN, text, replies=[], kind="checkin"),
        ],
        "needs_attention": [
            {"id": POST, "kind": "urgent", "author": OTHER, "author_name": text, "lamport": 1, "ts": TS,
             "text": text, "status": None},
            {"id": CHECKIN, "kind": "checkin", "author": OTHER, "author_name": text, "lamport": 3, "ts": TS,
             "text": text, "status": "need-help"},
        ],
        "members": [
            {"id": ME, "name": text, "roles": ["organizer", "treasurer"], **member},
            {"id": OTHER, "name": text, "roles": [], **member},
        ],
        "aid": {
            "open_requests": [_aid(REQUEST, "request", OTHER, text)],
            "open_pledges": [_aid(PLEDGE, "pledge", OTHER, text), _aid(MY_PLEDGE, "pledge", ME, text)],
            "matches": [],
            "fulfilled": [],
        },
        "fund": {
            "balances": [["EUR", 5000]],
            "pending": [
                {"signer_name": text, "op": CONTRIBUTION, "lamport": 4, "ts": TS, "entry": "contribution",
                 "signer": OTHER, "amount": 1500, "currency": "EUR", "ref": None, "note": text},
            ],
            "entries": [
                {"signer_name": text, "op": "ab" * 32, "lamport": 5, "ts": TS, "entry": "contribution",
                 "signer": OTHER, "amount": 5000, "currency": "EUR", "ref": None, "note": text},
            ],
        },
        "proposals": [
            {"id": PROPOSAL, "author_name": text, "eligible": 2, "author": OTHER, "lamport": 6, "ts": TS,
             "kind": "spend", "title": text, "text": text,
             "votes": [{"voter": OTHER, "voter_name": text, "choice": "approve", "reason": text, "op": "ac" * 32}],
             "details": {"amount": 6000, "currency": "EUR", "recipient": OTHER, "purpose": text},
             "rule": {"quorum_pct": 50, "threshold_pct": 60, "consent": False}, "electorate": [ME, OTHER],
             "status": "approved", "decided_by": "ad" * 32, "approve": 2, "object": 0, "abstain": 0,
             "disbursed_by": None, "closes_at": TS + 3 * 86_400, "voters": [ME, OTHER], "voter_names": [text, text]},
        ],
        "events": [
            {"id": EVENT, "author": OTHER, "author_name": text, "title": text, "starts": TS + 86_400,
             "place_hint": text, "text": text, "rsvps": [[OTHER, text, "yes"], [ME, text, "maybe"]],
             "yes": 1, "no": 0, "maybe": 1, "readable": True},
        ],
        "rejected": [{"op": "ae" * 32, "kind": "msg.post", "author": OTHER, "author_name": text, "reason": text}],
    }  # fmt: skip


def hostile_answers(text: str) -> dict[str, Any]:
    """Every control API answer the client asks for, with ``text`` wherever others choose it."""
    sync = {"finished": TS, "received": 3, "sent": 1, "rounds": 1, "error": text}
    return {
        "subscribe": {"subscribed": []},
        "whoami": {"name": text, "member_id": ME, "fingerprint": FINGERPRINT},
        "circles": [{"id": CIRCLE, "name": text, "members": 2, "ops": 40, "urgent": 1, "am_member": True}],
        "views": hostile_views(text),
        "status": {
            "mode": "member", "peer_id": "12D3KooW" + text, "addresses": [text], "uptime_s": 3.5,
            "peers": [{"peer": text, "connected_at": TS, "last_sync": sync}],
            "circles": [{"id": CIRCLE, "name": text, "topic": "00", "ops": 40, "envelopes": 50, "state_hash": "00",
                         "last_sync": TS}],
            "relay_topics": [{"label": text, "envelopes": 1, "bytes": 10, "quota_bytes": 100}],
            "accepted": 1, "refused": {}, "syncs": 1, "sync_errors": 0,
            "gossip": None,
        },
        "requests": [{"member": STRANGER, "name": text, "fingerprint": text}],
        "member.card": {"member": OTHER, "fingerprint": text, "safety_number": text, "verified": True},
        "invite.create": {"code": "KITH-INVITE:" + text, "qr": text, "invite": "00", "expires": None, "uses": 1,
                          "addresses": [text]},
        "rsvp": {"rejected": text},
        "sync": {"synced": [{"peer": text, "error": text, "received": 0, "sent": 0}]},
        "connect": {"peer": text},
        "joins": [{"inviter": text, "refused": text, "topic": "00"}],
        "verify": {"member": OTHER, "verified": True},
    }  # fmt: skip


# --- a calm circle, for driving every action and taking snapshots ----------------------

ASH, BEA = "b3" * 32, "b4" * 32
SEALED_POSTS = ["e4" * 32, "e5" * 32, "e6" * 32]
PAST = 1_741_939_440
"""14 Mar 2025: the calm circle's items are from a past year, so every run draws their
dates the same way (with the year), whatever day the tests run on."""
FUTURE = 1_906_905_600
"""5 Jun 2030: the calm circle's event, also drawn the same way on every run until then."""
NOW = PAST


def _dated(value: Any) -> Any:
    """``value`` with every ``ts`` moved to `PAST` (the hostile world's are recent)."""
    if isinstance(value, dict):
        return {key: PAST if key == "ts" else _dated(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_dated(item) for item in value]
    return value


def calm_views() -> dict[str, Any]:
    """The `views` answer for a small, ordinary circle seen by Sam (an organizer and
    treasurer) who joined after three posts were sealed: one of each kind of item."""
    views = hostile_views("x")
    sealed = [
        _post(item, "", replies=[]) | {"readable": False, "text": None, "author_name": "Ash", "urgent": False,
                                       "edited": False, "reactions": []}
        for item in SEALED_POSTS
    ]  # fmt: skip
    sealed[0]["replies"] = [dict(sealed[1], id="e7" * 32, author_name="Bea")]  # a sealed thread, its reply too
    views["feed"] = [
        *sealed,
        _post(POST, "My ride to the clinic tomorrow at 9 fell through. Can anyone drive me?", replies=[
            _post(REPLY, "I can. Where from?", replies=[]) | {"urgent": False, "edited": False, "reactions": [],
                                                              "author_name": "Ash", "author": ASH,
                                                              "content_warning": "hospital"},
        ]) | {"author_name": "Bea", "author": BEA, "edited": False, "reactions": [["💜", 2]]},
        _post(CHECKIN, "Rough week. Could use some company.", replies=[], kind="checkin")
        | {"author_name": "Ash", "author": ASH, "edited": False, "reactions": [], "urgent": False},
    ]  # fmt: skip
    views["name"] = "Riverside Mutual Aid"
    views["description"] = "Checking in, asking for help, sharing what we can."
    views["charter_text"] = "Be gentle with each other."
    views["charter"] = {"history": False, "members_can_invite": True, "confirm_joins": False, "text": "Be gentle.",
                        "rules": {"spend": {"quorum_pct": 50, "threshold_pct": 60, "consent": False}}}  # fmt: skip
    views["needs_attention"] = [
        {"id": POST, "kind": "urgent", "author": BEA, "author_name": "Bea", "lamport": 1, "ts": TS,
         "text": "My ride to the clinic tomorrow at 9 fell through.", "status": None},
    ]  # fmt: skip
    base = views["members"][0]
    views["members"] = [
        base | {"id": ME, "name": "Sam", "pronouns": "they/them", "skills": ["driving"], "vouch": None,
                "roles": ["organizer", "treasurer"], "wellbeing": "ok", "verified": False},
        base | {"id": ASH, "name": "Ash", "pronouns": "she/her", "skills": ["cooking"], "vouch": "met at the hub",
                "roles": ["organizer"], "wellbeing": "struggling", "verified": True},
        base | {"id": BEA, "name": "Bea", "pronouns": "", "skills": [], "vouch": "Ash's neighbour", "roles": [],
                "wellbeing": None, "verified": False},
    ]  # fmt: skip
    request = _aid(REQUEST, "request", BEA, "A ride to the clinic, Tuesday 9:00") | {
        "author_name": "Bea", "category": "ride", "amount": None, "unit": None}  # fmt: skip
    pledge = _aid(PLEDGE, "pledge", ASH, "Hot meals on Sundays") | {
        "author_name": "Ash", "category": "food", "amount": 4, "unit": "meals"}  # fmt: skip
    mine = _aid(MY_PLEDGE, "pledge", ME, "Driving on weekday mornings") | {
        "author_name": "Sam", "category": "ride", "amount": 2, "unit": "hours"}  # fmt: skip
    views["aid"] = {"open_requests": [request], "open_pledges": [pledge, mine], "matches": [], "fulfilled": []}
    views["fund"]["balances"] = [["EUR", 12000]]
    views["fund"]["pending"][0] |= {"signer_name": "Bea", "signer": BEA, "note": "bank transfer"}
    views["fund"]["entries"][0] |= {"signer_name": "Ash", "signer": ASH, "amount": 12000, "note": "bake sale"}
    proposal = views["proposals"][0]
    proposal |= {"author_name": "Ash", "author": ASH, "title": "Bus passes for March", "text": "Two monthly passes",
                 "status": "open", "approve": 1, "eligible": 3, "electorate": [ME, ASH, BEA], "decided_by": None,
                 "details": {"amount": 6000, "currency": "EUR", "recipient": BEA, "purpose": "bus passes"}}  # fmt: skip
    proposal["votes"] = [{"voter": ASH, "voter_name": "Ash", "choice": "approve", "reason": None, "op": "ac" * 32}]
    event = views["events"][0]
    event |= {"author_name": "Bea", "author": BEA, "title": "Sunday potluck", "place_hint": "the community hub",
              "text": "", "rsvps": [[BEA, "Bea", "yes"]], "yes": 1, "maybe": 0}  # fmt: skip
    views["rejected"] = []
    views = _dated(views)
    views["events"][0]["starts"] = FUTURE
    # The proposal closes 2 days 16.5 hours from now: it reads "2d 16h left" on every run
    # (a fixed time would read differently each day, and wrap differently too).
    views["proposals"][0]["closes_at"] = int(time.time()) + 2 * 86_400 + 16 * 3600 + 1800
    return views


def calm_answers() -> dict[str, Any]:
    """Every control API answer for the calm circle; actions answer like the node does."""
    answers = hostile_answers("x")
    done = {"op": "ff" * 32}
    relay = "12D3KooWRelayRelayRelayRelayRelayRelayRelayRelay"

    def status(params: dict[str, Any]) -> dict[str, Any]:
        """Ages on the Net view keep their width: 10 minutes connected, synced 30 s ago."""
        now = time.time()
        sync = {"finished": now - 30, "received": 0, "sent": 0, "rounds": 1, "error": None}
        return {
            "mode": "member", "peer_id": "12D3KooWSamSamSamSamSamSamSamSamSamSamSamSamSam",
            "addresses": ["/ip4/127.0.0.1/tcp/4001"], "uptime_s": 95.0,
            "peers": [
                {"peer": relay, "connected_at": now - 600, "received": 57, "last_sync": sync},
                {"peer": "12D3KooWAshAshAshAshAshAshAshAshAshAshAshAshAsh", "connected_at": now - 660,
                 "received": 3, "last_sync": None},
            ],
            "circles": [{"id": CIRCLE, "name": "Riverside Mutual Aid", "topic": "00", "ops": 40, "envelopes": 57,
                         "state_hash": "00", "last_sync": now - 30}],
            "relay_topics": [], "accepted": 60, "refused": {}, "syncs": 2, "sync_errors": 0, "gossip": None,
        }  # fmt: skip

    answers |= {
        "whoami": {"name": "Sam", "member_id": ME, "fingerprint": FINGERPRINT},
        "circles": [{"id": CIRCLE, "name": "Riverside Mutual Aid", "members": 3, "ops": 40, "urgent": 1,
                     "am_member": True}],
        "views": calm_views(),
        "status": status,
        "requests": [{"member": STRANGER, "name": "Cal", "fingerprint": "9a8b 7c6d 5e4f 3a2b 1c0d"}],
        "modlog": {"id": CIRCLE, "advice": None, "entries": [
            {"kind": "handover", "target": ASH, "actor": ME, "ts": 1_700_000_000, "lamport": 9, "op": "ab" * 32,
             "proposal": None, "outcome": "organizer", "note": None, "target_name": "Ash", "actor_name": "Sam"}]},
        "member.card": {"member": ASH, "fingerprint": FINGERPRINT, "safety_number": "12345 67890 " * 6,
                        "verified": False},
        "invite.create": {"code": "KITH-INVITE:ABC", "qr": "▀▄\n▄▀", "invite": "00", "expires": None, "uses": 1,
                          "addresses": []},
        "joins": [],
        "join": {"topic": "77" * 32, "status": "pending"},
        "connect": {"peer": relay},
        "sync": {"synced": [{"peer": relay, "error": None, "received": 2, "sent": 0}]},
        "circle.create": {"id": "d5" * 16, "name": "Night owls", "topic": "00"},
    }  # fmt: skip
    for method in (
        "post",
        "react",
        "checkin",
        "pledge",
        "request",
        "match",
        "fulfil",
        "withdraw",
        "contribute",
        "propose",
        "vote",
        "receipt",
        "disburse",
        "event.create",
        "rsvp",
        "approve",
        "verify",
    ):
        answers[method] = done
    return answers
