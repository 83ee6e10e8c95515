"""Read-only views of a circle state, shaped for the clients (feed, aid board, fund, votes).

Views are computed from a `CircleState` on demand and never change it. Everything is
ordered by fold order ``(lamport, op id)`` or by id, never by dict order, so two nodes
with the same ops show the same lists. Times are the authors' claims (``ts``), for
display only; the only clock is the ``now`` a caller passes to mark expired aid items.
Long lists take a ``limit`` (the newest items are kept) so a client opening a circle
with years of history builds what one screen shows.

What members said is sealed (`sync.content`): views open it with a `ContentReader`
holding the content keys this node has. Content a node cannot open (said before it
joined, in a circle that keeps history from newcomers) shows as ``readable=False`` with
empty text: the item, its author and its place in the thread stay visible.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kith.sync.content import NO_READER, ContentReader
from kith.sync.forecast import (
    CurrencyTotals,
    ForecastLine,
    Installment,
    fund_forecast,
    fund_totals,
    installments,
    month_of,
)
from kith.sync.kinds.aid import item_content
from kith.sync.kinds.alloc import rules_body
from kith.sync.kinds.events import event_content
from kith.sync.kinds.governance import tally
from kith.sync.kinds.records import (
    FULFILLED,
    MATCHED,
    OPEN,
    PROPOSAL_KINDS,
    Charter,
    Checkin,
    DecisionRule,
    ReviewDetails,
    SpendDetails,
)
from kith.sync.kinds.support import checkin_content, post_content
from kith.sync.money import CURRENCIES
from kith.sync.opkind import OpKind

if TYPE_CHECKING:
    from kith.sync.state import CircleState

MAX_THREAD_DEPTH = 16
"""Replies nest this deep; deeper replies are listed flat under their depth-16 ancestor."""


def display_name(state: CircleState, member_id: bytes) -> str:
    """The member's chosen display name, else a short hex form of their id."""
    profile = state.profiles.get(member_id)
    return profile.display_name if profile is not None else f"member {member_id[:4].hex()}"


# --- feed ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FeedItem:
    id: bytes
    kind: str
    """"post" or "checkin"."""
    author: bytes
    author_name: str
    lamport: int
    ts: int
    text: str
    """The post text ("" once deleted or when not readable); a check-in's note or ""."""
    content_warning: str | None
    urgent: bool
    status: str | None
    """A check-in's status (ok, struggling, need-help); None for posts."""
    edited: bool
    deleted: bool
    reactions: tuple[tuple[str, int], ...]
    replies: tuple[FeedItem, ...]
    readable: bool = True
    """False when this node does not hold the content key the text was sealed with."""
    hidden: str | None = None
    """The reason an organizer gave when hiding the post for everyone (its text is gone)."""
    hidden_by: str | None = None
    """That organizer's display name."""


def _reaction_counts(state: CircleState, item_id: bytes) -> tuple[tuple[str, int], ...]:
    by_member = state.reactions.get(item_id)
    if not by_member:
        return ()
    counts: dict[str, int] = {}
    for emojis in by_member.values():
        for emoji in emojis:
            counts[emoji] = counts.get(emoji, 0) + 1
    return tuple(sorted(counts.items()))


def _descendants(state: CircleState, item_id: bytes) -> list[bytes]:
    found: list[bytes] = []
    stack = list(state.replies.get(item_id, ()))
    while stack:
        child = stack.pop()
        found.append(child)
        stack.extend(state.replies.get(child, ()))
    found.sort(key=lambda m: (state.messages[m].lamport, m))
    return found


def _feed_item(state: CircleState, item_id: bytes, depth: int, reader: ContentReader) -> FeedItem:
    if depth >= MAX_THREAD_DEPTH:
        flat = (_make_item(state, child, (), reader) for child in _descendants(state, item_id))
        return _make_item(state, item_id, tuple(flat), reader)
    children = tuple(_feed_item(state, child, depth + 1, reader) for child in state.replies.get(item_id, ()))
    return _make_item(state, item_id, children, reader)


def post_text(reader: ContentReader, author: bytes, content: bytes) -> tuple[str, str | None, bool]:
    """(text, content warning, readable) of a post's sealed content."""
    if not content:
        return "", None, True
    fields = reader.read(content, author, OpKind.MSG_POST, post_content)
    if fields is None:
        fields = reader.read(content, author, OpKind.MSG_EDIT, post_content)
    if fields is None:
        return "", None, False
    return fields["text"], fields["content_warning"], True


def _make_item(state: CircleState, item_id: bytes, replies: tuple[FeedItem, ...], reader: ContentReader) -> FeedItem:
    reactions = _reaction_counts(state, item_id)
    m = state.messages.get(item_id)
    if m is not None:
        name = display_name(state, m.author)
        text, warning, readable = post_text(reader, m.author, m.content)
        hidden = state.hidden.get(item_id)
        return FeedItem(item_id, "post", m.author, name, m.lamport, m.ts, text, warning, m.urgent,
                        None, m.edits > 0, m.deleted, reactions, replies, readable,
                        *(() if hidden is None else (hidden.reason, display_name(state, hidden.by))))  # fmt: skip
    c = state.checkins[item_id]
    name = display_name(state, c.author)
    fields = reader.read(c.content, c.author, OpKind.CHECKIN, checkin_content)
    note = (fields["note"] or "") if fields else ""
    return FeedItem(item_id, "checkin", c.author, name, c.lamport, c.ts, note, None, False, c.status,
                    False, False, reactions, replies, fields is not None)  # fmt: skip


def feed(state: CircleState, *, limit: int | None = 50, reader: ContentReader = NO_READER) -> tuple[FeedItem, ...]:
    """The newest ``limit`` threads (posts and check-ins with their replies), oldest first."""
    roots = state.roots if limit is None else state.roots[-limit:] if limit > 0 else []
    return tuple(_feed_item(state, root, 0, reader) for root in roots)


# --- attention ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttentionItem:
    id: bytes
    kind: str
    """"urgent" (an urgent post) or "checkin" (a member struggling or needing help)."""
    author: bytes
    author_name: str
    lamport: int
    ts: int
    text: str
    status: str | None


def _answered_by_others(state: CircleState, item_id: bytes, author: bytes) -> bool:
    messages = state.messages
    return any(messages[reply].author != author for reply in state.replies.get(item_id, ()))


def needs_attention(state: CircleState, reader: ContentReader = NO_READER) -> tuple[AttentionItem, ...]:
    """Urgent posts and check-ins needing a reply that no other member has answered yet.

    Only each member's latest check-in counts: a later "ok" settles an earlier "need-help".
    """
    items: list[AttentionItem] = []
    for message_id, m in state.messages.items():
        hidden = message_id in state.hidden
        if m.urgent and not m.deleted and not hidden and not _answered_by_others(state, message_id, m.author):
            name = display_name(state, m.author)
            text = post_text(reader, m.author, m.content)[0]
            items.append(AttentionItem(message_id, "urgent", m.author, name, m.lamport, m.ts, text, None))
    for checkin_id, c in _latest_checkins(state).items():
        if c.status != "ok" and not _answered_by_others(state, checkin_id, c.author):
            name = display_name(state, c.author)
            fields = reader.read(c.content, c.author, OpKind.CHECKIN, checkin_content)
            note = (fields["note"] or "") if fields else ""
            items.append(AttentionItem(checkin_id, "checkin", c.author, name, c.lamport, c.ts, note, c.status))
    items.sort(key=lambda item: (item.lamport, item.id))
    return tuple(items)


def _latest_checkins(state: CircleState) -> dict[bytes, Checkin]:
    latest: dict[bytes, tuple[tuple[int, bytes], bytes]] = {}
    for checkin_id, checkin in state.checkins.items():
        key = (checkin.lamport, checkin_id)
        current = latest.get(checkin.author)
        if current is None or key > current[0]:
            latest[checkin.author] = (key, checkin_id)
    return {checkin_id: state.checkins[checkin_id] for _key, checkin_id in latest.values()}


def wellbeing(state: CircleState) -> dict[bytes, str]:
    """Each member's latest check-in status."""
    return {checkin.author: checkin.status for checkin in _latest_checkins(state).values()}


@dataclass(frozen=True, slots=True)
class PrivateCheckinView:
    """A check-in sealed to the organizers (``checkin`` with ``private``): never an op, so
    it is not in the circle's state; an organizer's node keeps what it opened."""

    id: bytes
    """The envelope that carried it."""
    member: bytes
    member_name: str
    status: str
    note: str
    ts: int
    latest: bool
    """It is the member's newest check-in, private or in the circle: it says how they are now."""
    needs_attention: bool
    """``latest`` and not "ok": organizers should reach out (privately: a reply in the
    circle would tell everyone)."""


def private_checkins(
    state: CircleState, notes: Iterable[tuple[bytes, bytes, str, str, int]]
) -> tuple[PrivateCheckinView, ...]:
    """Organizers' view of the private check-ins ``(id, member, status, note, ts)`` their
    node opened, oldest first; those of people who are no longer members are left out.

    A check-in's time is its author's claim; comparing two claims of one author is fair
    (a member who sets their clock back only misorders their own check-ins)."""
    rows = sorted((ts, envelope, member, status, note) for envelope, member, status, note, ts in notes
                  if member in state.members)  # fmt: skip
    newest: dict[bytes, tuple[int, bytes]] = {}
    for ts, envelope, member, _status, _note in rows:
        newest[member] = max(newest.get(member, (ts, envelope)), (ts, envelope))
    public = {c.author: c.ts for c in _latest_checkins(state).values()}
    views = []
    for ts, envelope, member, status, note in rows:
        latest = newest[member] == (ts, envelope) and public.get(member, ts) <= ts
        name = display_name(state, member)
        views.append(PrivateCheckinView(envelope, member, name, status, note, ts, latest, latest and status != "ok"))
    return tuple(views)


# --- members ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemberView:
    id: bytes
    name: str
    pronouns: str | None
    skills: tuple[str, ...]
    roles: tuple[str, ...]
    joined_op: bytes
    added_by: bytes
    vouch: str | None
    wellbeing: str | None
    forked: bool = False
    """They signed two different ops with one place in their chain (docs/OPS.md §2): a
    modified client showing members different histories. Both ops are folded; organizers
    should ask why."""


def members(state: CircleState) -> tuple[MemberView, ...]:
    """Current members, organizers first, then by name and id."""
    status = wellbeing(state)
    forked = {author for author, _seq in state.forks}
    views = []
    for member_id, member in state.members.items():
        profile = state.profiles.get(member_id)
        views.append(
            MemberView(
                member_id,
                display_name(state, member_id),
                profile.pronouns if profile else None,
                profile.skills if profile else (),
                member.roles,
                member.joined_op,
                member.added_by,
                member.vouch,
                status.get(member_id),
                member_id in forked,
            )
        )
    views.sort(key=lambda v: ("organizer" not in v.roles, v.name.casefold(), v.id))
    return tuple(views)


# --- aid board ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AidView:
    id: bytes
    author_name: str
    expired: bool
    """Only ever True when the caller passed ``now`` and ``expires`` is before it."""
    type: str
    """The rest are the fields of `kith.sync.kinds.records.AidItem`, in its order."""
    author: bytes
    lamport: int
    ts: int
    category: str
    content: bytes
    amount: int | None
    unit: str | None
    expires: int | None
    status: str
    matched: tuple[bytes, ...]
    closed_by: bytes | None
    private: object = None
    """Set for a private request: only organizers can read who asked and why. ``author``
    is then the organizer who posted it on the requester's behalf, never the requester."""
    description: str = ""
    """What it is about ("" when this node cannot read it: see ``readable``; for a private
    request, "" unless this node is an organizer's or the requester's)."""
    readable: bool = True
    requester: bytes | None = None
    """For a private request this node can open (an organizer's, or the requester's own):
    the member who asked; None everywhere else."""
    requester_name: str | None = None
    """The display name of ``requester``."""


@dataclass(frozen=True, slots=True)
class AidBoard:
    open_pledges: tuple[AidView, ...]
    open_requests: tuple[AidView, ...]
    """Requests still needing help: open, or matched but not yet fulfilled."""
    matches: tuple[tuple[bytes, bytes], ...]
    """(pledge id, request id) for every live or fulfilled match."""
    fulfilled: tuple[AidView, ...]


def aid_board(state: CircleState, *, now: int | None = None, reader: ContentReader = NO_READER) -> AidBoard:
    views = []
    for item_id, item in state.aid.items():
        expired = now is not None and item.expires is not None and item.expires < now
        kind = OpKind.AID_PLEDGE if item.type == "pledge" else OpKind.AID_REQUEST
        name = display_name(state, item.author)
        if item.private is not None:
            # The placeholder's own text is the organizer's; what matters is sealed in the boxes.
            opened = reader.open_private(item.private)
            description = opened["description"] if opened else ""
            requester = opened["requester"] if opened else None
            who = display_name(state, requester) if requester is not None else None
            views.append(AidView(item_id, name, expired, *item, description, True, requester, who))
        else:
            fields = reader.read(item.content, item.author, kind, item_content)
            description = fields["description"] if fields else ""
            views.append(AidView(item_id, name, expired, *item, description, fields is not None))
    views.sort(key=lambda v: (v.lamport, v.id))
    return AidBoard(
        tuple(v for v in views if v.type == "pledge" and v.status == OPEN),
        tuple(v for v in views if v.type == "request" and v.status in (OPEN, MATCHED)),
        tuple(
            (v.id, v.matched[0]) for v in views if v.type == "pledge" and v.matched and v.status in (MATCHED, FULFILLED)
        ),
        tuple(v for v in views if v.type == "request" and v.status == FULFILLED),
    )


# --- fund ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LedgerLine:
    signer_name: str
    op: bytes
    """The rest are the fields of `kith.sync.kinds.records.LedgerEntry`, in its order."""
    lamport: int
    ts: int
    entry: str
    """"contribution" (stated by a member), "receipt" (confirmed by a treasurer), "disbursement"
    (an approved spend) or "allocation" (an ask the charter's rules allocated: docs/OPS.md)."""
    signer: bytes
    amount: int
    currency: str
    ref: bytes | None
    note: str | None


@dataclass(frozen=True, slots=True)
class RecurringView:
    """A recurring contribution or pledge: its schedule and the months confirmed so far."""

    id: bytes
    type: str
    """"contribution" or "pledge"."""
    author: bytes
    author_name: str
    amount: int | None
    currency: str | None
    """A contribution's currency; a pledge's unit when it is a currency code, else None."""
    first: str
    last: str | None
    stopped_by: bytes | None
    confirmed: tuple[str, ...]
    """Months a treasurer confirmed (contributions only), in order."""
    active: bool
    """Not stopped (a contribution) / still open or matched (a pledge)."""


@dataclass(frozen=True, slots=True)
class FundLedger:
    balances: tuple[tuple[str, int], ...]
    """Confirmed balance per currency (receipts minus disbursements), in minor units."""
    pending: tuple[LedgerLine, ...]
    """One-off contributions no treasurer has confirmed yet."""
    entries: tuple[LedgerLine, ...]
    """Every contribution, receipt and disbursement, in fold order."""
    totals: tuple[CurrencyTotals, ...] = ()
    """Received, disbursed, awaiting, pledged and monthly, per currency (`sync.forecast`)."""
    forecast: tuple[ForecastLine, ...] = ()
    """Expected per month and currency from the viewer's month on (only when ``now`` is given)."""
    recurring: tuple[RecurringView, ...] = ()
    installments: tuple[Installment, ...] = ()
    """Each confirmed monthly installment: which receipt confirmed which month."""


def recurring_views(state: CircleState) -> tuple[RecurringView, ...]:
    views = []
    for item_id, schedule in state.recurring.items():
        contribution = state.contributions.get(item_id)
        if contribution is not None:
            confirmed = tuple(sorted(state.installments.get(item_id, {})))
            views.append((contribution.lamport, item_id, RecurringView(
                item_id, "contribution", contribution.author, display_name(state, contribution.author),
                contribution.amount, contribution.currency, schedule.first, schedule.last, schedule.stopped_by,
                confirmed, schedule.stopped_by is None,
            )))  # fmt: skip
            continue
        item = state.aid[item_id]
        currency = item.unit if item.unit in CURRENCIES else None
        views.append((item.lamport, item_id, RecurringView(
            item_id, "pledge", item.author, display_name(state, item.author), item.amount, currency,
            schedule.first, schedule.last, item.closed_by, (), item.status in (OPEN, MATCHED),
        )))  # fmt: skip
    views.sort(key=lambda row: row[:2])
    return tuple(view for _lamport, _id, view in views)


def fund_ledger(state: CircleState, *, now: float | None = None) -> FundLedger:
    lines = tuple(LedgerLine(display_name(state, entry.signer), *entry) for entry in state.ledger)
    contributions, recurring = state.contributions, state.recurring
    pending = tuple(
        line
        for line in lines
        if line.entry == "contribution" and contributions[line.op].receipt is None and line.op not in recurring
    )
    balances = tuple(sorted(state.balances.items()))
    forecast = fund_forecast(state, month_of(now)) if now is not None else ()
    return FundLedger(
        balances, pending, lines, fund_totals(state), forecast, recurring_views(state), installments(state)
    )


# --- proposals ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VoteView:
    voter: bytes
    voter_name: str
    choice: str
    reason: str | None
    op: bytes


@dataclass(frozen=True, slots=True)
class ProposalView:
    id: bytes
    author_name: str
    eligible: int
    """Members of the electorate who are members now (for an open proposal: the quorum base)."""
    votes: tuple[VoteView, ...]
    voters: tuple[bytes, ...]
    """The eligible voters (its electorate, less those removed since): anyone can recount."""
    voter_names: tuple[str, ...]
    author: bytes
    """The rest are the fields of `kith.sync.kinds.records.Proposal`, in its order."""
    lamport: int
    ts: int
    kind: str
    title: str
    text: str
    details: object
    """SpendDetails, the proposed charter (a `CharterView`), the member id a remove, review or
    organizer proposal names, or None."""
    rule: DecisionRule
    electorate: tuple[bytes, ...]
    status: str
    decided_by: bytes | None
    approve: int
    object: int
    abstain: int
    disbursed_by: bytes | None
    closes_at: int
    """Claimed time (s) from which a member's node closes the vote (docs/OPS.md §6)."""


@dataclass(frozen=True, slots=True)
class CharterView:
    """A charter (the one in force, or one a proposal would adopt), rules by proposal kind."""

    text: str
    members_can_invite: bool
    history: bool
    confirm_joins: bool
    rules: dict[str, DecisionRule]
    adopted_by: bytes | None
    alloc: dict[str, Any] | None = None
    """The fund's allocation rules, in their wire form (docs/OPS.md §4), or None."""


def charter_view(charter: Charter) -> CharterView:
    rules = {kind: charter.rule(kind) for kind in PROPOSAL_KINDS}
    alloc = None if charter.alloc is None else rules_body(charter.alloc)
    return CharterView(
        charter.text, charter.members_can_invite, charter.history, charter.confirm_joins, rules, charter.adopted_by,
        alloc,
    )  # fmt: skip


def proposals(state: CircleState, *, decided_limit: int | None = 100) -> tuple[ProposalView, ...]:
    """Every open proposal and the newest ``decided_limit`` decided ones, in fold order."""
    ordered = sorted(state.proposals.items(), key=lambda item: (item[1].lamport, item[0]))
    decided = [proposal_id for proposal_id, proposal in ordered if proposal.status != OPEN]
    if decided_limit is not None:
        decided = decided[-decided_limit:] if decided_limit > 0 else []
    shown = set(decided)
    views = []
    for proposal_id, proposal in ordered:
        if proposal.status != OPEN and proposal_id not in shown:
            continue
        votes = sorted(state.votes.get(proposal_id, {}).items())
        vote_views = tuple(VoteView(voter, display_name(state, voter), v.choice, v.reason, v.op) for voter, v in votes)
        eligible = tally(state, proposal_id, proposal)[0]
        name = display_name(state, proposal.author)
        details: object = proposal.details
        if isinstance(details, Charter):
            details = charter_view(details)
        elif isinstance(details, ReviewDetails):
            details = details.member  # the reason is sealed
        voters = tuple(m for m in proposal.electorate if m in state.members)
        voter_names = tuple(display_name(state, m) for m in voters)
        fields = (*proposal[:6], details, *proposal[7:])
        views.append(ProposalView(proposal_id, name, eligible, vote_views, voters, voter_names, *fields))
    return tuple(views)


def approved_unpaid_spends(state: CircleState) -> tuple[tuple[bytes, SpendDetails], ...]:
    """Approved spend proposals a treasurer has not paid out yet, in fold order."""
    found = [
        (proposal.lamport, proposal_id, proposal.spend)
        for proposal_id, proposal in state.proposals.items()
        if proposal.kind == "spend" and proposal.status == "approved" and proposal.disbursed_by is None
    ]
    found.sort(key=lambda item: item[:2])
    return tuple((proposal_id, details) for _lamport, proposal_id, details in found)


# --- events -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventView:
    id: bytes
    author: bytes
    author_name: str
    title: str
    starts: int
    place_hint: str | None
    text: str | None
    rsvps: tuple[tuple[bytes, str, str], ...]
    """(member id, display name, answer) of current members, by name."""
    yes: int
    no: int
    maybe: int
    readable: bool = True


def events(state: CircleState, reader: ContentReader = NO_READER) -> tuple[EventView, ...]:
    """Events by start time (then id); RSVPs of people who are no longer members are left out."""
    views = []
    for event_id, event in state.events.items():
        answers = state.rsvps.get(event_id, {})
        rsvps = sorted(
            (
                (member, display_name(state, member), answer)
                for member, answer in answers.items()
                if member in state.members
            ),
            key=lambda row: (row[1].casefold(), row[0]),
        )
        counts = {"yes": 0, "no": 0, "maybe": 0}
        for _member, _name, answer in rsvps:
            counts[answer] += 1
        fields = reader.read(event.content, event.author, OpKind.EVENT_CREATE, event_content)
        views.append(
            EventView(
                event_id,
                event.author,
                display_name(state, event.author),
                fields["title"] if fields else "",
                event.starts,
                fields["place_hint"] if fields else None,
                fields["text"] if fields else None,
                tuple(rsvps),
                counts["yes"],
                counts["no"],
                counts["maybe"],
                fields is not None,
            )
        )
    views.sort(key=lambda v: (v.starts, v.id))
    return tuple(views)


# --- moderation log -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModerationEntry:
    """One line of the moderation log every member reads: who did what to whom, and why."""

    op: bytes
    lamport: int
    ts: int
    action: str
    """"hide" here; a log may merge in other actions (removals, handovers) as entries of
    this shape, ordered by ``(lamport, op)``."""
    actor: bytes
    actor_name: str
    target: bytes
    """The hidden post."""
    target_member: bytes | None
    """The post's author."""
    target_name: str | None
    reason: str | None


def moderation_entries(state: CircleState) -> tuple[ModerationEntry, ...]:
    """The hides (`kith.sync.kinds.moderation`), in fold order: the moderation log's part about posts.

    Never who reported a post: reports are sealed to the organizers (`sync.reports`)."""
    entries = []
    for message_id, hidden in state.hidden.items():
        message = state.messages[message_id]
        entries.append(ModerationEntry(
            hidden.op, hidden.lamport, hidden.ts, "hide", hidden.by, display_name(state, hidden.by),
            message_id, message.author, display_name(state, message.author), hidden.reason,
        ))  # fmt: skip
    entries.sort(key=lambda entry: (entry.lamport, entry.op))
    return tuple(entries)


# --- rejected -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RejectedView:
    op: bytes
    lamport: int
    author: bytes
    author_name: str
    kind: str
    reason: str


def rejected(state: CircleState, *, limit: int | None = 200) -> tuple[RejectedView, ...]:
    """The newest ``limit`` rejected ops with their reasons, in fold order."""
    rows = sorted(state.rejected.values(), key=lambda r: (r.lamport, r.op))
    if limit is not None:
        rows = rows[-limit:] if limit > 0 else []
    return tuple(RejectedView(r.op, r.lamport, r.author, display_name(state, r.author), r.kind, r.reason) for r in rows)


# --- everything ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CircleViews:
    name: str | None
    description: str | None
    charter_text: str | None
    feed: tuple[FeedItem, ...]
    needs_attention: tuple[AttentionItem, ...]
    members: tuple[MemberView, ...]
    aid: AidBoard
    fund: FundLedger
    proposals: tuple[ProposalView, ...]
    events: tuple[EventView, ...]
    rejected: tuple[RejectedView, ...]
    charter: CharterView | None = None
    """The charter in force (``charter_text`` is its text)."""
    moderation: tuple[ModerationEntry, ...] = ()
    """The moderation log: posts organizers hid, and why."""


def build_views(
    state: CircleState,
    *,
    now: int | None = None,
    feed_limit: int | None = 50,
    reader: ContentReader = NO_READER,
) -> CircleViews:
    """Every view a client shows when it opens a circle (content opened with ``reader``)."""
    info = state.info.get("circle")
    charter = state.info.get("charter")
    return CircleViews(
        info.name if info else None,
        info.description if info else None,
        charter.text if charter else None,
        feed(state, limit=feed_limit, reader=reader),
        needs_attention(state, reader),
        members(state),
        aid_board(state, now=now, reader=reader),
        fund_ledger(state, now=now),
        proposals(state),
        events(state, reader),
        rejected(state),
        charter_view(charter) if charter else None,
        moderation_entries(state),
    )
