"""The control API's parameters, each method's declared once, as a frozen dataclass.

Theory of operation: a method's parameters are the fields of one dataclass. A field's
annotation is its type on the wire (`str`, `bool`, `int`, `float`, `list[str]`, `Id`,
`MemberRef`, `Any`; ``X | None`` when null is a value), its default makes it optional, and
its `Spec` (through `param`) carries what the type cannot say: a range, a list's length, a
choice, a text limit, help text, whether it is sealed content (docs/PROTOCOL.md, sealed
content) or steers the node instead of entering the op body. From that one declaration:

- `parse` checks a request's untrusted parameters (wrong type, out of range, missing, unknown
  key: one `RpcError` with code -32602 and one sentence) and returns the typed instance;
- `op_body` turns an action's instance into the op body the node signs;
- the command line reads a parameter's help and choices (tui/commands), the client's forms
  its limits (tui/screens/form.py), and `actions_table` writes docs/API.md's table of actions.

Text limits and choices are the fold's own (kith.sync.kinds); the node enforces them where it
always has, in `kith.sync.precheck` (error 1, ``Refused``, one sentence naming the field), so
the answer to a too-long text is the same whether it came from here or from the fold.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NewType

from kith.p2pnet.control import INVALID_PARAMS, RpcError
from kith.sync.kinds import schema
from kith.sync.kinds.aid import CATEGORIES
from kith.sync.kinds.decisions import VOTE_CHOICES
from kith.sync.kinds.events import RSVP_ANSWERS
from kith.sync.kinds.keys import MAX_ADDRESS_CHARS
from kith.sync.kinds.moderation import MAX_REASON_CHARS
from kith.sync.kinds.records import MAX_CLOSES_S, MIN_CLOSES_S, ROLES
from kith.sync.kinds.support import CHECKIN_STATUSES

Id = NewType("Id", bytes)
"""An op's id: 64 hex digits on the wire (or a unique prefix of at least 6, resolved first)."""
MemberRef = NewType("MemberRef", bytes)
"""A member's id: 64 hex digits, a unique prefix of at least 6, or their display name."""

MAX_INVITE_S = 366 * 86400
"""The longest an invite can stay valid (`kith invite --expires never` has no expiry)."""

REQUIRED: Any = dataclasses.MISSING


@dataclass(frozen=True, slots=True)
class Spec:
    """What a parameter's type cannot say."""

    help: str = ""
    sealed: bool = False
    """Sealed content: the op body carries it under ``content``, encrypted to the circle."""
    wire: bool = True
    """False: steers the node (``private``), never enters the op body."""
    omit_null: bool = False
    """Left out of the body when null (docs/OPS.md §4, optional keys)."""
    choices: tuple[str, ...] = ()
    max_chars: int | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    items: tuple[int, int] | None = None
    """A list's least and most items."""
    range_error: str = ""
    """The sentence for a value out of range (today's wording, which tests and scripts read)."""
    note: str = ""
    """docs/API.md's words for it, when more than its choices or range."""


def param(
    help: str = "",  # noqa: A002 - the word argparse uses
    *,
    default: Any = REQUIRED,
    default_factory: Any = REQUIRED,
    **spec: Any,
) -> Any:
    """A dataclass field with its `Spec`; without a default the parameter is required."""
    metadata = {"kith": Spec(help, **spec)}
    if default_factory is not REQUIRED:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter as the schema declares it, resolved from a dataclass field."""

    name: str
    base: Any
    """str, bool, int, float, Id, MemberRef, list (of str) or Any."""
    nullable: bool
    required: bool
    default: Any
    spec: Spec

    @property
    def is_id(self) -> bool:
        return self.base is Id or self.base is MemberRef

    def default_value(self) -> Any:
        return self.default() if callable(self.default) else self.default


@dataclass(frozen=True, slots=True)
class Method:
    """A control API method's name, parameter class, and (for actions) the op kind it signs."""

    name: str
    params: type
    kind: str | None = None
    summary: str = ""
    """docs/API.md's words after the parameters (actions whose rules are more than types)."""
    generic: bool = True
    """Signed by the node's one generic action handler (False: the method builds the body)."""
    circle: bool = True
    """Takes a ``circle`` (a circle id, prefix or name; checked by the node, not here)."""


def params_of(cls: type) -> tuple[Param, ...]:
    cached = _PARAMS.get(cls)
    if cached is not None:
        return cached
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        base, nullable = _unwrap(hints[f.name])
        if f.default is not dataclasses.MISSING:
            required, default = False, f.default
        elif f.default_factory is not dataclasses.MISSING:
            required, default = False, f.default_factory
        else:
            required, default = True, None
        out.append(Param(f.name, base, nullable, required, default, f.metadata.get("kith", Spec())))
    _PARAMS[cls] = tuple(out)
    return _PARAMS[cls]


_PARAMS: dict[type, tuple[Param, ...]] = {}


def _unwrap(hint: Any) -> tuple[Any, bool]:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"one type or one type | None, not {hint}")
        return _unwrap(args[0])[0], True
    if typing.get_origin(hint) is list:
        if typing.get_args(hint) != (str,):
            raise TypeError(f"only lists of text, not {hint}")
        return list, False
    if hint not in (str, bool, int, float, Id, MemberRef, Any):
        raise TypeError(f"no parameter type {hint}")
    return hint, False


# --- checking a request -----------------------------------------------------------------


def bad(message: str) -> RpcError:
    return RpcError(INVALID_PARAMS, message)


def parse(cls: type, params: Mapping[str, Any], *, also: frozenset[str] = frozenset()) -> Any:
    """``params`` (untrusted JSON) as an instance of ``cls``, or `RpcError` -32602.

    ``also``: keys the caller handles itself (``circle``), accepted and not parsed."""
    declared = params_of(cls)
    known = {p.name for p in declared} | also
    unknown = sorted(k for k in params if k not in known)
    if unknown:
        takes = ", ".join(sorted(known)) or "no parameters"
        raise bad(f"unknown parameter {unknown[0]!r} (this method takes {takes})")
    values = {}
    for p in declared:
        value = params.get(p.name)
        if value is None:
            if p.required:
                raise bad(f"missing parameter {p.name!r}")
            values[p.name] = None if p.nullable and p.name in params else p.default_value()
            continue
        values[p.name] = check_value(p, value)
    return cls(**values)


def check_value(p: Param, value: Any) -> Any:
    """One present, non-null parameter: its type and range, as the node accepts it."""
    name, base = p.name, p.base
    if base is str:
        if not isinstance(value, str):
            raise bad(f"{name} must be text")
    elif base is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad(f"{name} must be a list of text")
        if p.spec.items is not None and not p.spec.items[0] <= len(value) <= p.spec.items[1]:
            raise bad(p.spec.range_error or f"{name} must hold {p.spec.items[0]} to {p.spec.items[1]} items")
    elif base is bool:
        if not isinstance(value, bool):
            raise bad(f"{name} must be true or false")
    elif base is int or base is float:
        _check_number(p, value)
    elif base is Id or base is MemberRef:
        value = _check_id(name, value)
    return value


def _check_number(p: Param, value: Any) -> None:
    spec = p.spec
    whole = p.base is int
    if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
        raise bad(spec.range_error or f"{p.name} must be a whole number")
    low_ok = (
        spec.minimum is None or (value > spec.minimum if spec.exclusive_minimum else value >= spec.minimum)
    ) and not (isinstance(value, float) and math.isnan(value))
    if not low_ok or (spec.maximum is not None and not value <= spec.maximum):
        raise bad(spec.range_error or f"{p.name} is out of range")


def _check_id(name: str, value: Any) -> bytes:
    if not isinstance(value, str):
        raise bad(f"{name} must be a hex id")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise bad(f"{name} is not valid hex") from None
    if len(raw) != 32:
        raise bad(f"{name} must be 32 bytes (64 hex digits)")
    return raw


def param_of(method: str, name: str) -> Param:
    """Parameter ``name`` of control method ``method`` (`LookupError`: our bug, a caller and
    the schema disagree)."""
    for p in params_of(METHODS[method].params):
        if p.name == name:
            return p
    raise LookupError(f"{method} has no parameter {name!r}")


def id_params(cls: type) -> dict[str, Any]:
    """The parameters that name an op (`Id`) or a member (`MemberRef`): they take prefixes."""
    return {p.name: p.base for p in params_of(cls) if p.is_id}


def op_body(args: Any) -> dict[str, Any]:
    """An action's parsed parameters as the op body it signs: sealed fields under
    ``content``, node-only fields out, optional keys left out when null."""
    body: dict[str, Any] = {}
    content: dict[str, Any] = {}
    for p in params_of(type(args)):
        if not p.spec.wire:
            continue
        value = getattr(args, p.name)
        if value is None and p.spec.omit_null:
            continue
        (content if p.spec.sealed else body)[p.name] = value
    if content:
        body["content"] = content
    return body


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


# --- docs/API.md --------------------------------------------------------------------------


def describe(p: Param) -> str:
    """A parameter as docs/API.md's tables show it: ``name``, ``?`` when optional, then in
    parentheses its choices, range or note."""
    text = f"`{p.name}`" + ("" if p.required else "?")
    words = p.spec.note
    if not words and p.spec.choices:
        words = ", ".join(p.spec.choices)
    if not words and p.base is list:
        words = "list"
    if not p.required and p.default not in (None, False) and not callable(p.default):
        words = f"{words}; {_json(p.default)} when left out" if words else _json(p.default)
    return f"{text} ({words})" if words else text


def _json(value: Any) -> str:
    return "true" if value is True else str(value)


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
