"""The views clients show: feed, attention, members, aid board, ledger, proposals, events, rejected ops."""

from __future__ import annotations

from typing import Any

from kith.sync import views
from kith.sync.replica import CircleReplica


def _named(circle: Any) -> None:
    for name in ("alice", "bob", "carol", "dana"):
        circle.act(name, "profile.set", {"display_name": name.title(), "pronouns": None, "skills": []})


def test_feed_threads_replies_reactions_and_tombstones(circle: Any) -> None:
    _named(circle)
    post = circle.post("bob", "rough day")
    reply = circle.post("carol", "here for you", reply_to=post.id)
    nested = circle.post("bob", "thank you", reply_to=reply.id)
    checkin = circle.act("dana", "checkin", {"status": "ok", "note": "better today"})
    circle.act("alice", "msg.react", {"target": post.id, "emoji": "💜", "on": True})
    circle.act("carol", "msg.react", {"target": post.id, "emoji": "💜", "on": True})
    circle.act("bob", "msg.delete", {"target": nested.id})
    feed = views.feed(circle.state, reader=circle.reader)
    assert [item.id for item in feed] == [post.id, checkin.id]
    thread = feed[0]
    assert (thread.author_name, thread.text, thread.reactions) == ("Bob", "rough day", (("💜", 2),))
    assert thread.replies[0].id == reply.id and thread.replies[0].replies[0].deleted
    assert thread.replies[0].replies[0].text == ""
    assert (feed[1].kind, feed[1].status, feed[1].text) == ("checkin", "ok", "better today")
    assert [item.id for item in views.feed(circle.state, limit=1, reader=circle.reader)] == [checkin.id]


def test_deep_threads_are_flattened(circle: Any) -> None:
    root = circle.post("bob", "0")
    parent = root
    for n in range(views.MAX_THREAD_DEPTH + 4):
        parent = circle.post("carol", str(n + 1), reply_to=parent.id)
    item = views.feed(circle.state, reader=circle.reader)[0]
    depth = 0
    while item.replies and len(item.replies) == 1:
        item, depth = item.replies[0], depth + 1
    assert depth == views.MAX_THREAD_DEPTH
    assert [reply.text for reply in item.replies] == [str(n) for n in range(views.MAX_THREAD_DEPTH + 1, 21)]


def test_needs_attention(circle: Any) -> None:
    urgent = circle.post("bob", "I need help right now", urgent=True)
    circle.post("bob", "anyone?", reply_to=urgent.id)  # answering yourself does not count
    help_checkin = circle.act("dana", "checkin", {"status": "need-help", "note": None})
    circle.act("carol", "checkin", {"status": "struggling", "note": None})
    circle.act("carol", "checkin", {"status": "ok", "note": "sorted"})  # carol's latest is fine
    assert [(i.kind, i.id) for i in views.needs_attention(circle.state, circle.reader)] == [
        ("urgent", urgent.id),
        ("checkin", help_checkin.id),
    ]
    circle.post("alice", "calling you now", reply_to=urgent.id)
    assert [i.id for i in views.needs_attention(circle.state, circle.reader)] == [help_checkin.id]


def test_members_with_roles_and_wellbeing(circle: Any) -> None:
    _named(circle)
    circle.act("dana", "checkin", {"status": "struggling", "note": None})
    members = views.members(circle.state)
    assert [m.name for m in members] == ["Alice", "Bob", "Carol", "Dana"]
    assert members[0].roles == ("organizer",) and members[1].roles == ("treasurer",)
    assert members[3].wellbeing == "struggling"


def test_aid_board_and_expiry_shown_only_with_now(circle: Any) -> None:
    item = {"category": "housing", "description": "a sofa", "amount": None, "unit": None}
    request = circle.act("dana", "aid.request", {**item, "expires": 1_000})
    pledge = circle.act("bob", "aid.pledge", {**item, "expires": None})
    spare = circle.act("carol", "aid.pledge", {**item, "expires": 5_000})
    circle.act("bob", "aid.match", {"pledge": pledge.id, "request": request.id})
    board = views.aid_board(circle.state, reader=circle.reader)
    assert [v.id for v in board.open_pledges] == [spare.id]
    assert [v.id for v in board.open_requests] == [request.id]
    assert board.matches == ((pledge.id, request.id),)
    assert not board.open_requests[0].expired
    later = views.aid_board(circle.state, now=2_000, reader=circle.reader)
    assert later.open_requests[0].expired and not later.open_pledges[0].expired
    circle.act("dana", "aid.fulfil", {"request": request.id})
    board = views.aid_board(circle.state, reader=circle.reader)
    assert [v.id for v in board.fulfilled] == [request.id] and board.open_requests == ()


def test_fund_ledger(circle: Any) -> None:
    _named(circle)
    confirmed = circle.contribute("carol", 4000)
    pending = circle.contribute("dana", 900)
    circle.act("bob", "fund.receipt", {"contribution": confirmed.id})
    spend = circle.propose("alice", "spend", {"amount": 1500, "currency": "EUR", "recipient": "Clinic", "purpose": "x"})
    for voter in ("alice", "bob", "carol"):
        circle.vote(voter, spend, "approve")
    assert views.approved_unpaid_spends(circle.state)[0][0] == spend.id
    circle.act("bob", "fund.disburse", {"proposal": spend.id, "note": "bank transfer"})
    ledger = views.fund_ledger(circle.state)
    assert ledger.balances == (("EUR", 2500),)
    assert [line.op for line in ledger.pending] == [pending.id]
    assert [(line.entry, line.signer_name, line.amount) for line in ledger.entries] == [
        ("contribution", "Carol", 4000),
        ("contribution", "Dana", 900),
        ("receipt", "Bob", 4000),
        ("disbursement", "Bob", 1500),
    ]
    assert views.approved_unpaid_spends(circle.state) == ()


def test_proposals_with_tallies(circle: Any) -> None:
    proposal = circle.propose("alice", "remove", {"member": circle.member("dana")}, title="Remove Dana")
    circle.vote("bob", proposal, "abstain")
    circle.vote("carol", proposal, "approve")
    (view,) = views.proposals(circle.state)
    # Dana does not vote on her own removal: three eligible.
    assert (view.title, view.kind, view.status, view.eligible) == ("Remove Dana", "remove", "open", 3)
    assert (view.approve, view.object, view.abstain) == (1, 0, 1)
    assert view.rule == (75, 67, False, 72 * 3600)
    assert view.closes_at == circle.state.proposals[proposal.id].ts + 72 * 3600
    assert sorted(v.choice for v in view.votes) == ["abstain", "approve"]
    general = circle.propose("alice", "general", {})
    circle.vote("alice", general, "approve")
    circle.vote("bob", general, "approve")
    assert [v.id for v in views.proposals(circle.state, decided_limit=0)] == [proposal.id]


def test_events_show_current_members_rsvps(circle: Any) -> None:
    _named(circle)
    event = circle.act("alice", "event.create", {"title": "Picnic", "starts": 10, "place_hint": None, "text": None})
    for name, answer in (("bob", "yes"), ("carol", "maybe"), ("dana", "yes")):
        circle.act(name, "event.rsvp", {"event": event.id, "answer": answer})
    circle.act("dana", "member.remove", {"member": circle.member("dana"), "reason": None})
    (view,) = views.events(circle.state, circle.reader)
    assert [(name, answer) for _id, name, answer in view.rsvps] == [("Bob", "yes"), ("Carol", "maybe")]
    assert (view.yes, view.no, view.maybe) == (1, 0, 1)


def test_rejected_ops_with_reasons(circle: Any) -> None:
    bad = circle.act("mallory", "msg.post", {"text": "hi", "reply_to": None, "content_warning": None, "urgent": False})
    worse = circle.act("carol", "fund.receipt", {"contribution": bytes(32)})
    rejected = views.rejected(circle.state)
    assert [(r.op, r.kind, r.reason) for r in rejected] == [
        (bad.id, "msg.post", "author is not a member"),
        (worse.id, "fund.receipt", "only a treasurer may do this"),
    ]
    assert views.rejected(circle.state, limit=1)[0].op == worse.id


def test_every_view_is_the_same_on_two_replicas(circle: Any) -> None:
    _named(circle)
    circle.post("bob", "hello", urgent=True)
    circle.act("dana", "checkin", {"status": "need-help", "note": None})
    other = CircleReplica(circle.genesis.op.circle)
    other.ingest_many(reversed(list(circle.replica.ops())))
    assert other.views(now=5) == circle.replica.views(now=5)
    everything = circle.replica.views()
    assert everything.name == "Night owls" and everything.needs_attention and everything.members


def test_private_checkins_say_who_and_whether_it_is_still_how_they_are(circle: Any) -> None:
    _named(circle)
    bob, carol, eve = circle.member("bob"), circle.member("carol"), circle.people["eve"].member_id
    circle.act("carol", "checkin", {"status": "ok", "note": None})  # ts 6: in the circle, before
    notes = [
        (b"\x01" * 32, bob, "struggling", "", 3),
        (b"\x02" * 32, bob, "need-help", "call me", 4),  # bob's newest: it is how he is now
        (b"\x03" * 32, carol, "need-help", "rent", 5),  # older than carol's "ok" in the circle
        (b"\x04" * 32, eve, "need-help", "", 9),  # not a member: left out
    ]
    found = views.private_checkins(circle.state, reversed(notes))
    assert [(v.member_name, v.status, v.latest, v.needs_attention) for v in found] == [
        ("Bob", "struggling", False, False),
        ("Bob", "need-help", True, True),
        ("Carol", "need-help", False, False),
    ]
    assert views.private_checkins(circle.state, [(b"\x05" * 32, carol, "ok", "", 99)])[0].needs_attention is False
