"""The control API's methods, each one's parameters declared once (kith.p2pnet.paramspec).

From `METHODS`: the node checks every request (`parse_method`) and builds each action's op
body (`op_body`); the command line reads a parameter's help, choices and type
(tui/commands/schema_args.py), the client's forms whether it is needed and its length limit
(tui/screens/form.py), and `actions_table` writes docs/API.md's table of actions.

Text limits and choices are the fold's own (kith.sync.kinds); the node enforces them where it
always has, in `kith.sync.precheck` (error 1, ``Refused``, one sentence naming the field), so
the answer to a too-long text is the same whether a form, the CLI or a script sent it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kith.p2pnet.paramspec import (
    Id,
    MemberRef,
    Method,
    Param,
    bad,
    describe,
    id_params,
    op_body,
    param,
    params_of,
    parse,
)
from kith.sync.kinds import schema
from kith.sync.kinds.aid import CATEGORIES
from kith.sync.kinds.decisions import VOTE_CHOICES
from kith.sync.kinds.events import RSVP_ANSWERS
from kith.sync.kinds.keys import MAX_ADDRESS_CHARS
from kith.sync.kinds.moderation import MAX_REASON_CHARS
from kith.sync.kinds.records import MAX_CLOSES_S, MIN_CLOSES_S, ROLES
from kith.sync.kinds.support import CHECKIN_STATUSES

MAX_INVITE_S = 366 * 86400
"""The longest an invite can stay valid (`kith invite --expires never` has no expiry)."""

__all__ = [
    "ACTIONS", "MAX_INVITE_S", "METHODS", "Id", "MemberRef", "Method", "Param", "actions_table", "bad",
    "id_params", "op_body", "param_of", "params_of", "parse", "parse_method",
]  # fmt: skip


# --- the methods' parameters --------------------------------------------------------------
# Actions (each signs one op; docs/API.md "Actions").


@dataclass(frozen=True, slots=True)
class Post:
    text: str = param("the message", sealed=True, max_chars=schema.MAX_POST_CHARS)
    reply_to: Id | None = param("the message this answers", default=None)
    content_warning: str | None = param(
        "readers see this and unfold the text", default=None, sealed=True, max_chars=schema.MAX_SHORT_CHARS
    )
    urgent: bool = param("flag it: I need support now", default=False)


@dataclass(frozen=True, slots=True)
class Edit:
    target: Id = param("your message")
    text: str = param("the new text", sealed=True, max_chars=schema.MAX_POST_CHARS)
    content_warning: str | None = param(
        "readers see this and unfold the text", default=None, sealed=True, max_chars=schema.MAX_SHORT_CHARS
    )


@dataclass(frozen=True, slots=True)
class Delete:
    target: Id = param("your message (a tombstone stays)")


@dataclass(frozen=True, slots=True)
class React:
    target: Id = param("the message")
    emoji: str = param("the reaction", max_chars=schema.MAX_EMOJI_CHARS)
    on: bool = param("false takes the reaction back", default=True)


@dataclass(frozen=True, slots=True)
class Checkin:
    status: str = param("how you are", choices=CHECKIN_STATUSES)
    note: str | None = param("a few words", default=None, sealed=True, max_chars=schema.MAX_NOTE_CHARS)
    private: bool = param("only the organizers see it", default=False, wire=False)


@dataclass(frozen=True, slots=True)
class Profile:
    display_name: str = param("how you appear in the circle", max_chars=schema.MAX_NAME_CHARS)
    pronouns: str | None = param("your pronouns", default=None, max_chars=schema.MAX_NAME_CHARS)
    skills: list[str] = param(
        "skills you can share", default_factory=list, items=(0, schema.MAX_SKILLS), max_chars=schema.MAX_NAME_CHARS
    )


@dataclass(frozen=True, slots=True)
class Pledge:
    category: str = param("the kind of help", choices=CATEGORIES)
    description: str = param("what, when, where", sealed=True, max_chars=schema.MAX_DESCRIPTION_CHARS)
    amount: int | None = param("how much (a whole number)", default=None)
    unit: str | None = param("what the amount counts: EUR, hours, nights ...", default=None,
                             max_chars=schema.MAX_UNIT_CHARS)  # fmt: skip
    expires: int | None = param("when it lapses", default=None, note="unix time")
    monthly: str | None = param(
        "the first month of a pledge repeated every month until withdrawn",
        default=None,
        omit_null=True,
        note="`YYYY-MM`: the first month of a pledge repeated every month until withdrawn",
    )


@dataclass(frozen=True, slots=True)
class Request:
    category: str = param("the kind of help", choices=CATEGORIES)
    description: str = param("what, when, where", sealed=True, max_chars=schema.MAX_DESCRIPTION_CHARS)
    amount: int | None = param("how much (a whole number)", default=None)
    unit: str | None = param("what the amount counts: EUR, hours, nights ...", default=None,
                             max_chars=schema.MAX_UNIT_CHARS)  # fmt: skip
    expires: int | None = param("when it lapses", default=None, note="unix time")
    private: bool = param("only organizers learn who asked and why; they post it for you", default=False, wire=False)


@dataclass(frozen=True, slots=True)
class Match:
    pledge: Id = param("your pledge")
    request: Id = param("the request it answers")


@dataclass(frozen=True, slots=True)
class Fulfil:
    request: Id = param("your request")


@dataclass(frozen=True, slots=True)
class Withdraw:
    item: Id = param("your pledge or request")


@dataclass(frozen=True, slots=True)
class Vote:
    proposal: Id = param("the proposal")
    choice: str = param("your vote", choices=VOTE_CHOICES)
    reason: str | None = param("why", default=None, max_chars=schema.MAX_NOTE_CHARS)


@dataclass(frozen=True, slots=True)
class ProposalWithdraw:
    proposal: Id = param("your proposal")


@dataclass(frozen=True, slots=True)
class Contribute:
    amount: int = param("minor units (cents)", note="minor units")
    currency: str = param("an ISO 4217 code, like EUR")
    note: str | None = param("a note", default=None, max_chars=schema.MAX_NOTE_CHARS)
    monthly: str | None = param(
        "the first month of a contribution repeated every month until stopped",
        default=None,
        omit_null=True,
        note="`YYYY-MM`: the first month of a contribution repeated every month until stopped",
    )


@dataclass(frozen=True, slots=True)
class Receipt:
    contribution: Id = param("the contribution")
    month: str | None = param(
        "the installment it confirms",
        default=None,
        omit_null=True,
        note="`YYYY-MM`: required for a monthly contribution, the installment it confirms; never for a one-off",
    )


@dataclass(frozen=True, slots=True)
class ContributionStop:
    contribution: Id = param("your monthly contribution", note="your monthly one")
    last: str = param("the last month you pay", note="`YYYY-MM`: the last month you pay")


@dataclass(frozen=True, slots=True)
class Hide:
    target: Id = param("the post", note="a post")
    reason: str = param(
        "why (every member and the author read it)",
        max_chars=MAX_REASON_CHARS,
        note="organizers; every member's moderation log shows it, and the post's author sees it on their post",
    )


@dataclass(frozen=True, slots=True)
class Disburse:
    proposal: Id = param("the approved spend proposal")
    note: str | None = param("how it was paid", default=None, max_chars=schema.MAX_NOTE_CHARS)


@dataclass(frozen=True, slots=True)
class EventCreate:
    title: str = param("what", sealed=True, max_chars=schema.MAX_TITLE_CHARS)
    starts: int = param("when it starts", note="unix time")
    place_hint: str | None = param(
        "where (a hint; share exact places 1:1 if it is sensitive)",
        default=None,
        sealed=True,
        max_chars=schema.MAX_SHORT_CHARS,
    )
    text: str | None = param("details", default=None, sealed=True, max_chars=schema.MAX_DESCRIPTION_CHARS)


@dataclass(frozen=True, slots=True)
class Rsvp:
    event: Id = param("the event")
    answer: str = param("will you come", choices=RSVP_ANSWERS)


@dataclass(frozen=True, slots=True)
class RelayAddress:
    address: str = param(
        "the relay's address",
        max_chars=MAX_ADDRESS_CHARS,
        note="`/ip4|ip6|dns|dns4|dns6/HOST/tcp/PORT/p2p/PEERID`; organizers; at most 8; members' nodes dial the "
        "circle's relays, invites and welcomes carry them",
    )


@dataclass(frozen=True, slots=True)
class MemberRemove:
    member: MemberRef = param("the member", note="removing yourself is leaving")
    reason: str | None = param("why", default=None, max_chars=schema.MAX_NOTE_CHARS)


@dataclass(frozen=True, slots=True)
class Role:
    member: MemberRef = param("the member")
    role: str = param("the role", choices=ROLES)


@dataclass(frozen=True, slots=True)
class Handover:
    member: MemberRef = param(
        "who takes your organizer role",
        note="your organizer role goes to them and you step down, in one op: OPS.md §6a",
    )


@dataclass(frozen=True, slots=True)
class Propose:
    kind: str = param("what it decides", choices=("spend", "charter", "remove", "general", "review", "organizer"))
    title: str = param("the proposal's title", max_chars=schema.MAX_TITLE_CHARS)
    text: str | None = param("why", default=None, max_chars=schema.MAX_POST_CHARS)
    amount: int | None = param("spend: minor units", default=None)
    currency: str | None = param("spend: an ISO 4217 code", default=None)
    recipient: str | None = param("spend: a member id or a name", default=None)
    purpose: str | None = param("spend: what the money is for", default=None, max_chars=schema.MAX_NOTE_CHARS)
    member: MemberRef | None = param("remove, organizer and review: the member", default=None)
    reason: str | None = param("review: why (sealed to the organizers)", default=None)
    charter: Any = param("charter: the settings to change", default=None)
    closes_s: int | None = param(
        "its voting window in seconds",
        default=None,
        range_error="closes_s must be a whole number of seconds",
        note=f"any kind: its voting window in seconds, {MIN_CLOSES_S} to {MAX_CLOSES_S}; default the charter rule's",
    )


# Other methods.


@dataclass(frozen=True, slots=True)
class NoParams:
    pass


@dataclass(frozen=True, slots=True)
class Address:
    address: str = param("a peer's address", note="`/ip4/…/tcp/…/p2p/…`")


@dataclass(frozen=True, slots=True)
class Peer:
    peer: str = param("a peer id")


@dataclass(frozen=True, slots=True)
class Block:
    peer: str = param("a peer id")
    seconds: float = param(
        "how long",
        default=600,
        minimum=0,
        exclusive_minimum=True,
        maximum=86400,
        range_error="seconds must be a number of seconds, more than 0 and at most 86400",
    )


@dataclass(frozen=True, slots=True)
class SyncPeers:
    peer: str | None = param("one connected peer (else every one)", default=None)


@dataclass(frozen=True, slots=True)
class Panic:
    warn: bool = param("sign member.compromised in every circle first", default=False)


@dataclass(frozen=True, slots=True)
class CircleCreate:
    name: str = param("the circle's name", max_chars=schema.MAX_NAME_CHARS)
    description: str | None = param("what it is for", default=None, max_chars=schema.MAX_DESCRIPTION_CHARS)
    confirm_joins: bool = param("an organizer confirms every join", default=False)


@dataclass(frozen=True, slots=True)
class Views:
    feed_limit: int = param(
        "the most feed threads", default=50, minimum=1, maximum=10_000, range_error="feed_limit must be 1..10000"
    )
    only: list[str] | None = param("view names", default=None)


@dataclass(frozen=True, slots=True)
class RelayTokenParams:
    label: str | None = param("what the relay operator sees", default=None)
    quota_bytes: int | None = param("storage the relay should allow", default=None, minimum=1,
                                    range_error="quota_bytes must be a whole number of bytes, at least 1")  # fmt: skip


@dataclass(frozen=True, slots=True)
class InviteCreate:
    uses: int = param("how many people it admits", default=1, minimum=1, maximum=1000,
                      range_error="uses must be 1..1000")  # fmt: skip
    expires_s: float | None = param(
        "seconds until it dies (null: never)",
        default=7 * 86400,
        minimum=0,
        exclusive_minimum=True,
        maximum=MAX_INVITE_S,
        range_error="expires_s must be 1 s to 366 days, or null for no expiry",
    )


@dataclass(frozen=True, slots=True)
class InviteRevoke:
    invite: str = param("an invite id prefix")


@dataclass(frozen=True, slots=True)
class Join:
    code: str = param("the invite code")


@dataclass(frozen=True, slots=True)
class Approve:
    member: str = param("a prefix of the waiting member's id")
    vouch: str | None = param("how you know them", default=None, max_chars=schema.MAX_NOTE_CHARS)


@dataclass(frozen=True, slots=True)
class MemberAdd:
    card: str = param("their card (hex, from whoami)")
    vouch: str | None = param("how you know them", default=None, max_chars=schema.MAX_NOTE_CHARS)


@dataclass(frozen=True, slots=True)
class MemberOnly:
    member: MemberRef = param("the member")


@dataclass(frozen=True, slots=True)
class PostMany:
    texts: list[str] = param("the messages", items=(1, 1000), range_error="texts must hold 1 to 1000 messages")


@dataclass(frozen=True, slots=True)
class Report:
    reason: str = param("what is wrong (only the organizers read it)", max_chars=MAX_REASON_CHARS)
    post: Id | None = param("the post (or member)", default=None)
    member: MemberRef | None = param("the member (or post)", default=None)


@dataclass(frozen=True, slots=True)
class AskFund:
    category: str = param("one of the charter's categories")
    amount: int = param("minor units, at most the cap")
    note: str | None = param("only the committee reads it", default=None, max_chars=schema.MAX_NOTE_CHARS)


@dataclass(frozen=True, slots=True)
class PayAsk:
    ask: Id = param("the allocated ask")
    note: str | None = param("how it was paid", default=None, max_chars=schema.MAX_NOTE_CHARS)


@dataclass(frozen=True, slots=True)
class RelayAllow:
    token: str = param("the relay token")


def _m(name: str, params: type, kind: str | None = None, **more: Any) -> tuple[str, Method]:
    return name, Method(name, params, kind, **more)


METHODS: dict[str, Method] = dict(
    [
        # Actions: docs/API.md's table of actions is written from these, in this order.
        _m("post", Post, "msg.post"),
        _m("edit", Edit, "msg.edit"),
        _m("delete", Delete, "msg.delete"),
        _m("react", React, "msg.react"),
        _m("checkin", Checkin, "checkin", summary="`private`: see below"),
        _m("profile", Profile, "profile.set"),
        _m("pledge", Pledge, "aid.pledge"),
        _m("request", Request, "aid.request", summary="`private`: see below"),
        _m("match", Match, "aid.match"),
        _m("fulfil", Fulfil, "aid.fulfil"),
        _m("withdraw", Withdraw, "aid.withdraw"),
        _m(
            "propose",
            Propose,
            "proposal.create",
            generic=False,
            summary="spend needs `amount`, `currency`, `recipient` (member id or a name) and `purpose`; remove "
            "and organizer: `member`; review: `member` and `reason` (your node seals it to each organizer but "
            "the member reviewed, OPS.md §6a; it never travels in the clear); charter: `charter`, the settings "
            "to change: a map with any of `text`, `members_can_invite`, `history`, `confirm_joins` (booleans) "
            "and `rules` (`{kind: {quorum_pct?, threshold_pct?, consent?, closes_s?}}`); the rest is taken from "
            "the charter in force, and the node checks the result as the fold will (OPS.md §4) before signing, "
            "answering a mistake or a change to nothing with a one-line error",
        ),
        _m("vote", Vote, "proposal.vote"),
        _m("proposal.withdraw", ProposalWithdraw, "proposal.withdraw"),
        _m("contribute", Contribute, "fund.contribute"),
        _m("receipt", Receipt, "fund.receipt"),
        _m("contribution.stop", ContributionStop, "fund.stop"),
        _m("hide", Hide, "msg.hide"),
        _m("disburse", Disburse, "fund.disburse"),
        _m("event.create", EventCreate, "event.create"),
        _m("rsvp", Rsvp, "event.rsvp"),
        _m("relay.add", RelayAddress, "relay.add"),
        _m("relay.remove", RelayAddress, "relay.remove"),
        _m("member.remove", MemberRemove, "member.remove"),
        _m("role.grant", Role, "role.grant"),
        _m("role.revoke", Role, "role.revoke"),
        _m("role.handover", Handover, "role.handover"),
        # Node-wide.
        _m("status", NoParams, circle=False),
        _m("stop", NoParams, circle=False),
        _m("connect", Address, circle=False),
        _m("disconnect", Peer, circle=False),
        _m("block", Block, circle=False),
        _m("unblock", Peer, circle=False),
        _m("sync", SyncPeers, circle=False),
        _m("panic", Panic, circle=False),
        _m("whoami", NoParams, circle=False),
        _m("circles", NoParams, circle=False),
        _m("circle.create", CircleCreate, circle=False),
        _m("join", Join, circle=False),
        _m("joins", NoParams, circle=False),
        _m("relay.allow", RelayAllow, circle=False),
        # One circle.
        _m("relays", NoParams),
        _m("views", Views),
        _m("modlog", NoParams),
        _m("state_hash", NoParams),
        _m("circle.relay_token", RelayTokenParams),
        _m("post_many", PostMany),
        _m("report", Report),
        _m("reports", NoParams),
        _m("invite.create", InviteCreate),
        _m("invites", NoParams),
        _m("invite.revoke", InviteRevoke),
        _m("requests", NoParams),
        _m("approve", Approve),
        _m("member.add", MemberAdd),
        _m("rotate", NoParams),
        _m("member.card", MemberOnly),
        _m("verify", MemberOnly),
        _m("ask_fund", AskFund),
        _m("pay_ask", PayAsk),
        _m("allocations", NoParams),
    ]
)
"""Every method the node serves but ``subscribe`` (the control server's own)."""

ACTIONS: dict[str, Method] = {name: m for name, m in METHODS.items() if m.kind is not None and m.generic}
"""The actions one generic handler signs: parse, resolve prefixes, precheck, author."""


def parse_method(name: str, params: Mapping[str, Any]) -> Any:
    """A request's parameters for method ``name``, checked (``circle`` is the node's to resolve)."""
    method = METHODS[name]
    return parse(method.params, params, also=frozenset({"circle"}) if method.circle else frozenset())


def param_of(method: str, name: str) -> Param:
    """Parameter ``name`` of control method ``method`` (`LookupError`: our bug, a caller and
    the schema disagree)."""
    for p in params_of(METHODS[method].params):
        if p.name == name:
            return p
    raise LookupError(f"{method} has no parameter {name!r}")


# --- docs/API.md --------------------------------------------------------------------------


def actions_table() -> str:
    """docs/API.md's table of actions, written from `METHODS` (a test keeps the doc equal)."""
    rows = ["| method | op kind | params |", "|---|---|---|"]
    for method in METHODS.values():
        if method.kind is None:
            continue
        shown = [describe(p) for p in params_of(method.params)]
        cell = ", ".join(["`circle`", *shown])
        if method.summary:
            cell += f"; {method.summary}"
        cell = cell.replace("|", "\\|")
        rows.append(f"| `{method.name}` | `{method.kind}` | {cell} |")
    return "\n".join(rows) + "\n"
