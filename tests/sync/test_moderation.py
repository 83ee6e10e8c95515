"""Hiding posts (msg.hide) and reports sealed to the organizers: rules, attacks, views."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from circle_support import PEOPLE, Circle
from sync_support import sealed_body
from test_state_authority import assert_rejected_without_effect

from kith.identity.crypto import random_bytes
from kith.identity.errors import BadSignature, Undecryptable
from kith.sync.envelope import Envelope
from kith.sync.kinds import moderation, support
from kith.sync.kinds.common import NOT_ORGANIZER, STRUCK_DEMOTED
from kith.sync.modlog import moderation_log
from kith.sync.ops import Op, SignedOp
from kith.sync.private import make_statement, open_private, seal_private
from kith.sync.replica import CircleReplica
from kith.sync.reports import MAX_REASON_CHARS, REPORT_KIND, ReportBook, report_body, report_views
from kith.sync.views import build_views, display_name, feed, moderation_entries, needs_attention

EPOCH_KEY = bytes([0x33]) * 32
HIDE = "msg.hide"


def _hide(circle: Circle, who: str, target: bytes, reason: str = "doxxing") -> SignedOp:
    return circle.act(who, HIDE, {"target": target, "reason": reason})


def _forge(circle: Circle, who: str, kind: str, body: dict[str, Any], parents: tuple[bytes, ...], seq: int) -> SignedOp:
    lamport = 1 + max(circle.replica.dag.lamport_of(p) or 0 for p in parents)
    person = PEOPLE[who]
    body = sealed_body(kind, body, person.member_id, circle.state.circle_id)
    op = Op(circle.state.circle_id, person.member_id, tuple(sorted(set(parents))), lamport, 50, kind, body, seq=seq)
    return SignedOp.decode(SignedOp.create(op, person).data)


# --- hiding ------------------------------------------------------------------------


def test_an_organizer_hides_a_post_for_everyone_and_the_log_says_why(circle: Circle) -> None:
    post = circle.post("carol", "Bob lives at 12 Elm Street, go tell him what you think")
    reply = circle.post("dana", "please don't", reply_to=post.id)
    hide = _hide(circle, "alice", post.id, "it gives out someone's home address")
    assert circle.reason(hide) is None
    message = circle.state.messages[post.id]
    assert message.content == b""  # gone from the state: no honest client can show it
    assert message.author == circle.member("carol") and not message.deleted
    item = feed(circle.state, reader=circle.reader)[-1]
    assert item.id == post.id and item.text == "" and item.hidden == "it gives out someone's home address"
    assert item.hidden_by == display_name(circle.state, circle.member("alice"))
    assert item.replies[0].id == reply.id  # the thread keeps its shape
    (entry,) = moderation_entries(circle.state)
    assert (entry.action, entry.op, entry.actor, entry.target, entry.target_member, entry.reason) == (
        "hide",
        hide.id,
        circle.member("alice"),
        post.id,
        circle.member("carol"),
        "it gives out someone's home address",
    )
    assert build_views(circle.state).moderation == (entry,)
    # The governance log (`kith modlog`) lists it with removals and handovers.
    (logged,) = moderation_log(circle.state, circle.replica.ops())
    assert (logged.kind, logged.op, logged.actor, logged.target, logged.note) == (
        "hide",
        hide.id,
        circle.member("alice"),
        circle.member("carol"),
        "it gives out someone's home address",
    )


def test_a_hidden_urgent_post_no_longer_asks_for_attention(circle: Circle) -> None:
    post = circle.post("carol", "URGENT: click this link", urgent=True)
    assert [i.id for i in needs_attention(circle.state, circle.reader)] == [post.id]
    _hide(circle, "alice", post.id, "spam")
    assert needs_attention(circle.state, circle.reader) == ()


def test_a_member_cannot_hide(circle: Circle) -> None:
    post = circle.post("carol", "an opinion bob dislikes")
    assert_rejected_without_effect(circle, "bob", HIDE, {"target": post.id, "reason": "I disagree"}, NOT_ORGANIZER)
    assert moderation_entries(circle.state) == ()


@pytest.mark.parametrize("what", ["checkin", "contribution", "nothing"])
def test_only_posts_can_be_hidden(circle: Circle, what: str) -> None:
    if what == "checkin":
        target = circle.act("carol", "checkin", {"status": "struggling", "note": None}).id
    elif what == "contribution":
        target = circle.contribute("carol", 500).id
    else:
        target = bytes(32)
    assert_rejected_without_effect(circle, "alice", HIDE, {"target": target, "reason": "x"}, moderation.NOT_A_POST)


def test_hiding_twice_and_bad_bodies(circle: Circle) -> None:
    post = circle.post("carol")
    _hide(circle, "alice", post.id)
    assert_rejected_without_effect(circle, "alice", HIDE, {"target": post.id, "reason": "again"},
                                   moderation.ALREADY_HIDDEN)  # fmt: skip
    other = circle.post("carol")
    for body, reason in (
        ({"target": other.id, "reason": ""}, "reason: blank"),
        ({"target": other.id, "reason": "x" * (moderation.MAX_REASON_CHARS + 1)}, "reason: too long"),
        ({"target": other.id}, "body: wrong fields"),
        ({"target": other.id[:16], "reason": "x"}, "target: wrong size"),
    ):
        assert_rejected_without_effect(circle, "alice", HIDE, body, f"invalid body: {reason}")


def test_an_edit_cannot_bring_a_hidden_post_back_but_its_author_may_delete_it(circle: Circle) -> None:
    post = circle.post("carol", "slur")
    _hide(circle, "alice", post.id, "slur")
    body = {"target": post.id, "text": "slur, slightly reworded", "content_warning": None}
    assert_rejected_without_effect(circle, "carol", "msg.edit", body, support.IS_HIDDEN)
    delete = circle.act("carol", "msg.delete", {"target": post.id})
    assert circle.reason(delete) is None and circle.state.messages[post.id].deleted
    assert [e.target for e in moderation_entries(circle.state)] == [post.id]


def test_a_demoted_organizers_unseen_hide_is_struck() -> None:
    circle = Circle()
    for name in ("bob", "carol"):
        circle.add(name)
    circle.grant("bob", "organizer")
    circle.post("bob", "on it")
    seq, last = circle.state.chains[circle.member("bob")]
    post = circle.post("carol", "criticism of bob")
    for n in range(3):
        circle.post("alice", f"news {n}")
    demotion = circle.act("alice", "role.revoke", {"member": circle.member("bob"), "role": "organizer"})
    # bob's client signs the hide as if it had not seen the demotion (it cites the post only).
    hide = _forge(circle, "bob", HIDE, {"target": post.id, "reason": "rude"}, (last, post.id), seq + 1)
    assert hide.op.lamport < demotion.op.lamport  # it sorts while bob was still an organizer
    circle.replica.ingest(hide)
    assert circle.reason(hide) == STRUCK_DEMOTED
    assert circle.state.messages[post.id].content != b"" and moderation_entries(circle.state) == ()
    # After seeing the demotion, plainly refused.
    again = circle.act("bob", HIDE, {"target": post.id, "reason": "rude"})
    assert circle.reason(again) == NOT_ORGANIZER  # it cites the demotion: plainly refused


def test_concurrent_hide_edit_and_delete_converge_with_the_post_hidden() -> None:
    """The author edits and deletes while an organizer hides (neither saw the other):
    in every delivery order the state is the same, the text is gone and the log has the hide."""
    circle = Circle()
    circle.add("carol")
    post = circle.post("carol", "first version")
    seq, last = circle.state.chains[circle.member("carol")]
    alice_seq, alice_last = circle.state.chains[circle.member("alice")]
    heads = tuple(circle.replica.dag.heads())
    edit = _forge(circle, "carol", "msg.edit", {"target": post.id, "text": "worse", "content_warning": None},
                  (last, *heads), seq + 1)  # fmt: skip
    circle.replica.ingest(edit)
    delete = _forge(circle, "carol", "msg.delete", {"target": post.id}, (edit.id,), seq + 2)
    circle.replica.ingest(delete)
    hide = _forge(circle, "alice", HIDE, {"target": post.id, "reason": "abuse"}, (alice_last, *heads), alice_seq + 1)
    circle.replica.ingest(hide)
    hashes = set()
    history = [s for s in circle.replica.ops() if s.id not in (edit.id, delete.id, hide.id)]
    for order in itertools.permutations([edit, delete, hide]):
        if order.index(delete) < order.index(edit):
            continue  # delete cites the edit: causal delivery puts it after
        replica = CircleReplica(circle.state.circle_id)
        replica.ingest_many([*history, *order])
        hashes.add(replica.state_hash())
        state = replica.state
        assert state.messages[post.id].content == b"" and post.id in state.hidden
        assert replica.state.is_rejected(hide.id) is None
    assert len(hashes) == 1


# --- reports -----------------------------------------------------------------------


def _seal(statement: SignedOp, to: list[str]) -> Envelope:
    return seal_private(statement, [PEOPLE[n].dh_public for n in to], epoch_key=EPOCH_KEY, ts=100, rand=random_bytes)


def _named(circle: Circle) -> None:
    for who in ("alice", "bob", "carol", "dana"):
        circle.act(who, "profile.set", {"display_name": who, "pronouns": None, "skills": []})


def _report(circle: Circle, who: str, *, post: bytes | None = None, member: bytes | None = None,
            reason: str = "harassment") -> SignedOp:  # fmt: skip
    body = report_body(post=post, member=member, reason=reason)
    return make_statement(PEOPLE[who], circle.state.circle_id, REPORT_KIND, body, ts=77)


def test_a_report_reaches_the_organizers_only(circle: Circle) -> None:
    _named(circle)
    post = circle.post("carol", "you people should disappear")
    envelope = _seal(_report(circle, "dana", post=post.id), ["alice"])
    opened = open_private(envelope, PEOPLE["alice"])
    book = ReportBook()
    report = book.take(opened, envelope.id, circle.state)
    assert report is not None and report.reporter == circle.member("dana") and report.post == post.id
    (view,) = report_views(circle.state, book.reports.values(), circle.reader)
    assert (view.reporter_name, view.target, view.target_name, view.reason) == ("dana", "post", "carol", "harassment")
    assert view.post_text == "you people should disappear" and view.readable
    for outsider in ("bob", "carol", "mallory"):  # a member, the reported one, a stranger
        with pytest.raises(Undecryptable):
            open_private(envelope, PEOPLE[outsider])
    # Nothing in the circle's state names the report, the reporter or the reason.
    assert b"harassment" not in circle.replica.state.encode() and circle.state.rejected == {}


def test_a_report_about_a_post_the_organizer_cannot_read_still_shows(circle: Circle) -> None:
    _named(circle)
    unknown = bytes([9]) * 32  # a post this organizer's node has not received
    post = circle.post("carol", "sealed under a key the reader lacks")
    book = ReportBook()
    for target in (unknown, post.id):
        statement = _report(circle, "dana", post=target, reason=f"about {target.hex()[:6]}")
        book.take(statement, random_bytes(32), circle.state)
    views = report_views(circle.state, book.reports.values())  # a reader holding no content key
    by_target = {v.target_id: v for v in views}
    assert {(v.target_id, v.readable, v.post_text) for v in views} == {(unknown, False, ""), (post.id, False, "")}
    assert by_target[unknown].target_member is None and by_target[post.id].target_name == "carol"
    assert by_target[unknown].reason == f"about {unknown.hex()[:6]}"


def test_a_report_about_a_member_and_after_the_hide(circle: Circle) -> None:
    _named(circle)
    post = circle.post("carol", "spam spam")
    book = ReportBook()
    threats = _report(circle, "dana", member=circle.member("carol"), reason="sends me threats")
    book.take(threats, b"e" * 32, circle.state)
    book.take(_report(circle, "bob", post=post.id, reason="spam"), b"f" * 32, circle.state)
    _hide(circle, "alice", post.id, "spam")
    views = {v.target: v for v in report_views(circle.state, book.reports.values(), circle.reader)}
    assert views["member"].target_name == "carol" and views["member"].reason == "sends me threats"
    assert views["post"].hidden == "spam" and not views["post"].readable


def test_forged_replayed_oversized_and_outsider_reports_are_dropped_and_counted(circle: Circle) -> None:
    post = circle.post("carol")
    book = ReportBook()
    honest = _report(circle, "dana", post=post.id)
    assert book.take(honest, b"a" * 32, circle.state) is not None
    # Replayed: the same signed statement in another envelope counts once.
    assert book.take(honest, b"b" * 32, circle.state) is None
    # Oversized reason, a body naming both targets, a non-member (mallory), another circle.
    long = {"post": post.id, "member": None, "reason": "x" * (MAX_REASON_CHARS + 1)}
    both = {"post": post.id, "member": circle.member("carol"), "reason": "x"}
    for who, body in (("dana", long), ("dana", both), ("mallory", {"post": post.id, "member": None, "reason": "x"})):
        statement = make_statement(PEOPLE[who], circle.state.circle_id, REPORT_KIND, body, ts=78)
        assert book.take(statement, random_bytes(32), circle.state) is None
    elsewhere = make_statement(PEOPLE["dana"], bytes(16), REPORT_KIND, report_body(post=post.id, member=None,
                                                                                     reason="x"), ts=79)  # fmt: skip
    assert book.take(elsewhere, random_bytes(32), circle.state) is None
    # Forged: mallory's signature on a statement claiming dana as the reporter.
    statement = _report(circle, "dana", post=post.id, reason="framed")
    forged = statement.data[:-64] + PEOPLE["mallory"].sign(b"kith-op", statement.data[1:-66])
    with pytest.raises(BadSignature):
        SignedOp.decode(forged)
    book.refuse(BadSignature())
    assert book.dropped == {"replayed": 1, "oversized": 1, "malformed": 1, "not a member": 1, "wrong circle": 1,
                            "forged": 1}  # fmt: skip
    assert len(book.reports) == 1


def test_report_body_needs_exactly_one_target() -> None:
    from kith.sync.kinds.schema import InvalidBody

    with pytest.raises(InvalidBody):
        report_body(post=None, member=None, reason="x")
    with pytest.raises(InvalidBody):
        report_body(post=bytes(32), member=bytes(32), reason="x")
    with pytest.raises(InvalidBody):
        report_body(post=bytes(32), member=None, reason=" ")
