"""Reports to the organizers: a member flags a post or a member without telling the circle.

A report is a private statement (`sync.private`): the reporter's node signs a
``private.report`` that is never folded, and seals it to each organizer in an envelope
that looks like any other op's (same topic, same size classes). No op names the reporter,
the target or the reason, so the circle does not learn who reported whom, and a relay
does not even learn that a report was made. Only organizers' nodes open it; they keep
what they opened in a `ReportBook` and show it as the Reports list (`report_views`).

Reports are untrusted input like any other: a statement must be signed by its author
(forgeries fail `SignedOp.decode`), belong to this circle, come from a current member,
and have exactly the body below; each statement counts once however many envelopes carry
it. What fails is dropped and counted by reason (`ReportBook.dropped`), never raised.

The answer to a report about a post is ``msg.hide`` (`kith.sync.kinds.moderation`), which is
public: the moderation log tells every member that a post was hidden and why, never who
reported it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from kith.identity.errors import BadSignature, LocalProtocolError, RemoteProtocolError
from kith.sync.content import NO_READER, ContentReader
from kith.sync.kinds import schema
from kith.sync.ops import SignedOp

if TYPE_CHECKING:
    from kith.sync.state import CircleState

REPORT_KIND = "private.report"
MAX_REASON_CHARS = 500
MAX_REPORTS = 5_000
"""Reports one organizer's node keeps per circle (private envelopes have their own byte
quota too); beyond it new ones are dropped and counted as "full"."""
_KEYS = frozenset({"post", "member", "reason"})

DROP_REASONS = ("malformed", "oversized", "forged", "replayed", "not a member", "wrong circle", "full")


def report_body(*, post: bytes | None, member: bytes | None, reason: Any) -> dict[str, Any]:
    """The statement's body: exactly one of ``post`` (an op id) or ``member`` (a member id),
    and the reason as the reporter wrote it. Raises `schema.InvalidBody` if it is not one."""
    body = {"post": post, "member": member, "reason": reason}
    check_report_body(body)
    return body


def check_report_body(body: Any) -> tuple[bytes | None, bytes | None, str]:
    body = schema.exact_keys(body, _KEYS, "body")
    post = schema.optional_op_ref(body["post"], "post")
    member = None if body["member"] is None else schema.member_ref(body["member"], "member")
    if (post is None) == (member is None):
        raise schema.InvalidBody("post", "exactly one of post and member")
    reason = schema.long_text(body["reason"], "reason", MAX_REASON_CHARS)
    return post, member, reason


class Report(NamedTuple):
    id: bytes
    """The signed statement's id (the same report in two envelopes is one report)."""
    envelope: bytes
    reporter: bytes
    ts: int
    """The reporter's claimed time."""
    post: bytes | None
    member: bytes | None
    reason: str


class ReportBook:
    """The reports one organizer's node opened for one circle (sans-IO: the node feeds it)."""

    def __init__(self, max_reports: int = MAX_REPORTS) -> None:
        self.max_reports = max_reports
        self.reports: dict[bytes, Report] = {}
        self.dropped: dict[str, int] = {}

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1

    def take(self, statement: SignedOp, envelope: bytes, state: CircleState) -> Report | None:
        """Keep an opened ``private.report`` if it is one this circle should hear; else drop
        and count it. Returns the new report, or None."""
        op = statement.op
        if op.circle != state.circle_id:
            self.drop("wrong circle")
            return None
        if op.author not in state.members:
            self.drop("not a member")
            return None
        try:
            post, member, reason = check_report_body(op.body)
        except schema.InvalidBody as exc:
            self.drop("oversized" if exc.rule == "too long" else "malformed")
            return None
        if statement.id in self.reports:
            self.drop("replayed")
            return None
        if len(self.reports) >= self.max_reports:
            self.drop("full")
            return None
        report = Report(statement.id, envelope, op.author, op.ts, post, member, reason)
        self.reports[statement.id] = report
        return report

    def refuse(self, exc: RemoteProtocolError) -> None:
        """An envelope for us that did not hold a valid signed statement."""
        self.drop("forged" if isinstance(exc, BadSignature) else "malformed")


@dataclass(frozen=True, slots=True)
class ReportView:
    id: bytes
    reporter: bytes
    reporter_name: str
    ts: int
    target: str
    """"post" or "member"."""
    target_id: bytes
    target_member: bytes | None
    """The member reported, or the post's author (None for a post this node does not hold)."""
    target_name: str | None
    reason: str
    post_text: str
    readable: bool
    """False when this node cannot read the post (not received, or sealed under a key it
    lacks): the report still shows, with the post's id."""
    hidden: str | None
    """The reason an organizer gave when hiding the post, once hidden."""


def report_views(state: CircleState, reports: Any, reader: ContentReader = NO_READER) -> tuple[ReportView, ...]:
    """The Reports list, oldest first (by the reporters' claimed times, then id)."""
    from kith.sync.views import display_name, post_text

    views = []
    for report in sorted(reports, key=lambda r: (r.ts, r.id)):
        name = display_name(state, report.reporter)
        if report.post is not None:
            message = state.messages.get(report.post)
            hidden = state.hidden.get(report.post)
            author = message.author if message is not None else None
            text, _warning, readable = (
                ("", None, False) if message is None else post_text(reader, message.author, message.content)
            )
            readable = readable and message is not None and (hidden is None and not message.deleted)
            views.append(ReportView(
                report.id, report.reporter, name, report.ts, "post", report.post, author,
                None if author is None else display_name(state, author), report.reason, text, readable,
                None if hidden is None else hidden.reason,
            ))  # fmt: skip
        else:
            if report.member is None:
                raise LocalProtocolError("a report names neither a post nor a member")
            views.append(ReportView(
                report.id, report.reporter, name, report.ts, "member", report.member, report.member,
                display_name(state, report.member), report.reason, "", True, None,
            ))  # fmt: skip
    return tuple(views)
