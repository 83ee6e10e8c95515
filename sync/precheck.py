"""Checks before signing: refuse, with one specific line, what the circle would reject.

An op, once signed and shared, is a permanent record: if the fold rejects it, every
member's ``kith rejected`` lists it for good. So every front end (the control API, and
through it the command line and the client's forms) runs `check_action` on the body it
is about to sign: the kind's schema (lengths, characters, values), money (ISO 4217
currencies, sign and size of amounts, `sync.money`), and what the author's own copy of
the circle already says about authority (editing someone else's message, a receipt by a
non-treasurer, a grant by a non-organizer). Only what cannot be known locally (ops not
received yet, concurrent changes) is left for the fold to reject.

Pure: the circle state and the author are passed in; nothing here signs or sends. The
messages are for the person at the keyboard, so they name the command that helps where
there is one; the fold's own reasons (docs/OPS.md) are unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kith.identity.errors import UsageError
from kith.sync import money
from kith.sync.kinds import aid, events, keys, moderation, schema, support
from kith.sync.kinds.decisions import VOTE_CHOICES
from kith.sync.kinds.records import APPROVED, MATCHED, MAX_CLOSES_S, MIN_CLOSES_S, OPEN, ORGANIZER, ROLES, TREASURER
from kith.sync.opkind import OpKind

if TYPE_CHECKING:
    from kith.sync.state import CircleState


class Refused(UsageError):
    """The action cannot succeed as asked; nothing was signed."""


NOT_YET = " (or it has not reached your node yet: try again after 'kith sync')"
"""Said of an item the node does not hold: it may be on its way."""


_LABELS = {
    "display_name": "display name",
    "content_warning": "content warning",
    "place_hint": "place",
    "details.purpose": "purpose",
    "details.recipient": "recipient",
    "name": "circle name",
}
_RULES = {
    "blank": "is empty",
    "wrong type": "has the wrong type",
    "out of range": "is out of range",
    "unknown value": "is not one of the allowed values",
    "repeated item": "lists the same item twice",
    "forbidden characters": "contains control or invisible characters (escape sequences, bidi overrides)",
}


def explain(exc: schema.InvalidBody) -> str:
    """A schema failure as a sentence: "the display name is too long: at most 64 characters"."""
    label = _LABELS.get(exc.field, exc.field.removeprefix("details.").replace("_", " "))
    if exc.rule == "too long":
        return f"the {label} is too long: at most {exc.limit} characters"
    if exc.rule == "too many items":
        return f"too many {label}: at most {exc.limit}"
    return f"the {label} {_RULES.get(exc.rule, exc.rule)}"


def check_text(value: Any, field: str, max_chars: int, *, short: bool = True) -> None:
    """One text field people typed (a circle's name, a description), as the schemas check it."""
    try:
        (schema.short_text if short else schema.long_text)(value, field, max_chars)
    except schema.InvalidBody as exc:
        raise Refused(explain(exc)) from None


def check_action(
    state: CircleState, author: bytes, kind: str, body: dict[str, Any], *, now: float | None = None
) -> None:
    """Raise `Refused` if ``author`` signing ``kind`` with ``body`` would be refused.

    ``body`` is the body before its content is sealed: content fields in plain text under
    ``"content"`` (as the control API builds it). ``now``: the time the op will claim
    (a vote at or after a proposal's closing time is refused, and so is an event that
    starts before it: a typo in the year would go out to the whole circle)."""
    if state.info.get("circle") is not None and author not in state.members:
        raise Refused("you are not a member of this circle (any more)")
    check = _SCHEMAS.get(kind)
    if check is not None:
        try:
            check(body)
        except schema.InvalidBody as exc:
            raise Refused(explain(exc)) from None
    rule = _AUTHORITY.get(kind)
    if rule is not None and state.info.get("circle") is not None:
        rule(state, author, body)
    if kind == OpKind.EVENT_CREATE and now is not None and body["starts"] < now:
        raise Refused("that start has already passed: give a start in the future (check the year)")
    if kind == OpKind.PROPOSAL_VOTE and now is not None:
        proposal = state.proposals[body["proposal"]]
        if now >= proposal.closes_at:
            raise Refused("voting on that proposal has closed (its closing time has passed); it is being counted")


# --- schemas of plain bodies ---------------------------------------------------------


def _content(body: dict[str, Any]) -> dict[str, Any]:
    content = body.get("content")
    return content if isinstance(content, dict) else {}


def _post(body: dict[str, Any]) -> None:
    support.post_content({"text": None, "content_warning": None, **_content(body)})


def _checkin(body: dict[str, Any]) -> None:
    schema.one_of(body.get("status"), support.CHECKIN_STATUSES, "status")
    support.checkin_content({"note": None, **_content(body)})


def _react(body: dict[str, Any]) -> None:
    schema.short_text(body.get("emoji"), "emoji", schema.MAX_EMOJI_CHARS)


def _profile(body: dict[str, Any]) -> None:
    schema.short_text(body.get("display_name"), "display_name")
    schema.optional_short(body.get("pronouns"), "pronouns", 32)
    schema.short_text_list(body.get("skills", []), "skills", schema.MAX_SKILLS, schema.MAX_NAME_CHARS)


def _aid_item(body: dict[str, Any]) -> None:
    schema.one_of(body.get("category"), aid.CATEGORIES, "category")
    aid.item_content({"description": None, **_content(body)})
    amount, unit = body.get("amount"), body.get("unit")
    if amount is not None:
        if type(amount) is int and amount <= 0:
            raise Refused(f"amount must be more than zero (got {amount})")
        schema.amount(amount)
    schema.optional_short(unit, "unit", schema.MAX_UNIT_CHARS)
    if (amount is None) != (unit is None):
        raise Refused("give an amount and its unit together (--amount 3 --unit nights), or neither")
    schema.optional_timestamp(body.get("expires"), "expires")


def _money(amount: Any, currency: Any) -> None:
    if not isinstance(currency, str):
        raise Refused("currency must be a three-letter code such as EUR")
    code = money.check_currency(currency)
    if code != currency:
        raise Refused(f"{currency!r} is not a currency code: use {code}")
    money.check_minor(amount, code)


def _contribute(body: dict[str, Any]) -> None:
    _money(body.get("amount"), body.get("currency"))
    schema.optional_long(body.get("note"), "note", schema.MAX_NOTE_CHARS)


def _note(body: dict[str, Any]) -> None:
    schema.optional_long(body.get("note"), "note", schema.MAX_NOTE_CHARS)


def _reason(body: dict[str, Any]) -> None:
    schema.optional_long(body.get("reason"), "reason", schema.MAX_NOTE_CHARS)


def _vote(body: dict[str, Any]) -> None:
    schema.one_of(body.get("choice"), VOTE_CHOICES, "choice")
    _reason(body)


def _event(body: dict[str, Any]) -> None:
    events.event_content({"title": None, "place_hint": None, "text": None, **_content(body)})
    schema.timestamp(body.get("starts"), "starts")


def _role(body: dict[str, Any]) -> None:
    schema.one_of(body.get("role"), ROLES, "role")


def _proposal(body: dict[str, Any]) -> None:
    schema.short_text(body.get("title"), "title", schema.MAX_TITLE_CHARS)
    schema.long_text(body.get("text", ""), "text", schema.MAX_POST_CHARS, allow_blank=True)
    details = body.get("details")
    if body.get("kind") == "spend" and isinstance(details, dict):
        _money(details.get("amount"), details.get("currency"))
        recipient = details.get("recipient")
        if not isinstance(recipient, bytes):
            schema.short_text(recipient, "details.recipient")
        schema.long_text(details.get("purpose"), "details.purpose", schema.MAX_NOTE_CHARS)
    if "closes" in body:
        try:
            schema.closing_window(body["closes"], "closes")
        except schema.InvalidBody:
            raise Refused(
                f"a proposal stays open from {MIN_CLOSES_S // 60} minute to {MAX_CLOSES_S // 86400} days"
            ) from None


_SCHEMAS: dict[str, Callable[[dict[str, Any]], None]] = {
    OpKind.MSG_POST: _post,
    OpKind.MSG_EDIT: _post,
    OpKind.MSG_REACT: _react,
    OpKind.CHECKIN: _checkin,
    OpKind.PROFILE_SET: _profile,
    OpKind.AID_PLEDGE: _aid_item,
    OpKind.AID_REQUEST: _aid_item,
    OpKind.PROPOSAL_CREATE: _proposal,
    OpKind.PROPOSAL_VOTE: _vote,
    OpKind.FUND_CONTRIBUTE: _contribute,
    OpKind.FUND_DISBURSE: _note,
    OpKind.EVENT_CREATE: _event,
    OpKind.MEMBER_REMOVE: _reason,
    OpKind.ROLE_GRANT: _role,
    OpKind.ROLE_REVOKE: _role,
}


# --- what the author's copy of the circle already says -------------------------------


def _ref(body: dict[str, Any], name: str) -> bytes:
    """``body[name]`` when it is an id (bytes), else ``b""``, which names nothing: a body
    here comes from a client, and the fold's schema judges it again when it is signed."""
    value = body.get(name)
    return value if type(value) is bytes else b""


def _name(state: CircleState, member: bytes) -> str:
    profile = state.profiles.get(member)
    return profile.display_name if profile is not None else f"member {member[:4].hex()}"


def _holds(state: CircleState, member: bytes, role: str) -> bool:
    """Holds ``role`` (acknowledged or not: the op about to be signed cites the grant)."""
    record = state.members.get(member)
    return record is not None and record.grant(role) is not None


def _grant_hint(role: str) -> str:
    return f"an organizer can make you one with 'kith member grant CIRCLE YOUR-NAME {role}'"


def _own_message(state: CircleState, author: bytes, body: dict[str, Any], verb: str) -> None:
    message = state.messages.get(_ref(body, "target"))
    if message is None:
        raise Refused("that is not a message of this circle" + NOT_YET)
    if message.author != author:
        raise Refused(f"you can only {verb} your own messages; that one is {_name(state, message.author)}'s")
    if message.deleted:
        raise Refused("that message is deleted")


def _edit(state: CircleState, author: bytes, body: dict[str, Any]) -> None:
    _own_message(state, author, body, "edit")


def _delete(state: CircleState, author: bytes, body: dict[str, Any]) -> None:
    _own_message(state, author, body, "delete")


def _receipt(state: CircleState, author: bytes, body: dict[str, Any]) -> None:
    if not _holds(state, author, TREASURER):
        raise Refused(f"only a treasurer confirms contributions, and you are not one: {_grant_hint(TREASURER)}")
    contribution = state.contributions.get(_ref(body, "contribution"))
    if contribution is None:
        raise Refused("that is not a contribution of this circle" + NOT_YET)
    if contribution.receipt is not None:
        raise Refused("that contribution is already confirmed")


def _disburse(state: CircleState, author: bytes, body: dict[str, Any]) -> None:
    if not _holds(state, author, TREASURER):
        raise Refused(f"only a treasurer pays out, and you are not one: {_grant_hint(TREASURER)}")
    proposal = state.proposals.get(_ref(body, "proposal"))
    if proposal is None or proposal.kind != "spend":
        raise Refused("that is not a spend proposal of this circle" + NOT_YET)
    if proposal.status != APPROVED:
        raise Refused(f"that spend proposal is {proposal.status}, not approved")
    if proposal.disbursed_by is not None:
        raise Refused("that spend proposal was already paid out")
    spend = proposal.spend
    balance = state.balances.get(spend.currency, 0)
    if spend.amount > balance:
        shown = money.format_amount(balance, spend.currency)
        raise Refused(f"the fund's confirmed balance ({shown}) does not cover this spend")


def _organizer(state: CircleState, author: bytes, what: str) -> None:
    if not _holds(state, author, ORGANIZER):
        raise Refused(f"only an organizer may {what}, and you are not one")


def _role_change(state: CircleState, author: bytes, body: dict[str, Any], grant: bool) -> None:
    target, role = _ref(body, "member"), body.get("role")
    record = state.members.get(target)
    giving_up = not grant and target == author
    if not giving_up:
        _organizer(state, author, "grant or revoke roles")
    if record is None:
        raise Refused("that person is not a member of this circle")
    role = role if type(role) is str else ""
    if grant and record.grant(role) is not None:
        raise Refused(f"{_name(state, target)} is already a {role}")
    if not grant and record.grant(role) is None:
        raise Refused(f"{_name(state, target)} is not a {role}")


def _grant(state: CircleState, author: bytes, body: dict[str, Any]) -> None:
    _role_change(state, author, body, True)


def _revoke(state: CircleState, author: bytes, body: dict[str, Any]) -> None:
    _role_change(state, author, body, False)


def _remove(state: CircleState, author: bytes, body: dict[str, Any]) -> None:
    target = body.get("member")
    if target not in state.members:
        raise Refused("that person is not a member of this circle")
    if target != author:
        _organizer(state, author, "remove someone (a member can propose it: 'kith propose CIRCLE remove')")


def _handover(state: CircleState, author: bytes, body: dict[str, Any]) -> None:
    target = _ref(body, "member")
    if target == author:
        raise Refused("hand the organizer role to someone else (to give it up: 'kith member revoke')")
    _organizer(state, author, "hand over the organizer role")
    record = state.members.get(target)
    if record is None:
        raise Refused("that person is not a member of this circle")
    if record.grant(ORGANIZER) is not None:
        raise Refused(f"{_name(state, target)} is already an organizer")


def _governance_proposal(state: CircleState, author: bytes, body: dict[str, Any]) -> None:
    """Reviews and elections (docs/OPS.md §6a); other kinds are checked by the fold alone."""
    kind, details = body.get("kind"), body.get("details")
    if kind not in ("review", "organizer") or not isinstance(details, dict):
        return
    target = _ref(details, "member")
    record = state.members.get(target)
    if record is None:
        raise Refused("that person is not a member of this circle")
    if kind == "review" and target == author:
        raise Refused("you cannot review yourself (you may leave: 'kith member remove CIRCLE YOUR-NAME')")
    if kind == "organizer":
        if _holds(state, author, ORGANIZER):
            raise Refused("you are an organizer: grant the role yourself ('kith member grant CIRCLE NAME organizer')")
        if record.grant(ORGANIZER) is not None:
            raise Refused(f"{_name(state, target)} is already an organizer")
        if "closes" in body:
            raise Refused("an election stays open for the charter's idle period (it takes no --closes)")


def _vote_open(state: CircleState, author: bytes, body: dict[str, Any]) -> None:
    proposal = state.proposals.get(_ref(body, "proposal"))
    if proposal is None:
        raise Refused("that is not a proposal of this circle" + NOT_YET)
    if proposal.status != OPEN:
        raise Refused(f"that proposal is {proposal.status}; votes are closed")
    if proposal.kind == "organizer" and _holds(state, author, ORGANIZER):
        raise Refused("you are an organizer: organizers do not vote on an election, and anything you do ends it")
    if author not in proposal.electorate:
        raise Refused("you are not in this proposal's electorate: you joined after it was made")
    if author in state.votes.get(body["proposal"], {}):
        raise Refused("you already voted on that proposal (a vote is final)")


def _aid(state: CircleState, ref: Any, *types: str) -> Any:
    """The pledge or request ``ref`` names, of one of ``types``, or a one-line refusal."""
    item = state.aid.get(ref)
    if item is None or item.type not in types:
        raise Refused(f"that is not a {' or '.join(types)} of this circle" + NOT_YET)
    return item


def _fulfil(state: CircleState, author: bytes, body: dict[str, Any]) -> None:
    if _aid(state, body.get("request"), "request").author != author:
        raise Refused("only the person who asked confirms their request was fulfilled")


def _withdraw(state: CircleState, author: bytes, body: dict[str, Any]) -> None:
    item = _aid(state, body.get("item"), "pledge", "request")
    if item.author != author:
        raise Refused("you can only withdraw your own pledges and requests")
    if item.status not in (OPEN, MATCHED):
        raise Refused(f"that {item.type} is already {item.status}: there is nothing to withdraw")


def _match(state: CircleState, author: bytes, body: dict[str, Any]) -> None:
    if _aid(state, body.get("pledge"), "pledge").author != author:
        raise Refused("you can only match your own pledges")
    _aid(state, body.get("request"), "request")


def _invite(state: CircleState, author: bytes, body: dict[str, Any]) -> None:
    if not state.info["charter"].members_can_invite and not _holds(state, author, ORGANIZER):
        raise Refused(
            "only an organizer may invite (the charter does not let members invite):"
            " ask an organizer for a code, or propose a charter change with --members-can-invite on"
        )


def _relay(state: CircleState, author: bytes, body: dict[str, Any], add: bool) -> None:
    address = body.get("address")
    problem = keys.relay_address_problem(address) if isinstance(address, str) else "bad format"
    if problem is not None:
        raise Refused(
            f"that is not a relay address members can dial ({problem}): expected"
            " /ip4/HOST/tcp/PORT/p2p/PEERID or /dns4/NAME/tcp/PORT/p2p/PEERID, as the relay prints"
        )
    _organizer(state, author, "change the circle's relays")
    if add and address in state.relays:
        raise Refused("the circle already lists that relay")
    if add and len(state.relays) >= keys.MAX_RELAYS:
        raise Refused(keys.RELAYS_FULL)
    if not add and address not in state.relays:
        raise Refused("the circle does not list that relay ('kith relay list CIRCLE' shows those it does)")


_AUTHORITY: dict[str, Callable[[CircleState, bytes, dict[str, Any]], None]] = {
    OpKind.INVITE_CREATE: _invite,
    OpKind.RELAY_ADD: lambda state, author, body: _relay(state, author, body, True),
    OpKind.RELAY_REMOVE: lambda state, author, body: _relay(state, author, body, False),
    OpKind.MSG_EDIT: _edit,
    OpKind.MSG_DELETE: _delete,
    OpKind.FUND_RECEIPT: _receipt,
    OpKind.FUND_DISBURSE: _disburse,
    OpKind.ROLE_GRANT: _grant,
    OpKind.ROLE_REVOKE: _revoke,
    OpKind.ROLE_HANDOVER: _handover,
    OpKind.PROPOSAL_CREATE: _governance_proposal,
    OpKind.MEMBER_REMOVE: _remove,
    OpKind.PROPOSAL_VOTE: _vote_open,
    OpKind.AID_FULFIL: _fulfil,
    OpKind.AID_WITHDRAW: _withdraw,
    OpKind.AID_MATCH: _match,
}


# --- moderation and recurring money (issue 17: msg.hide, monthly, fund.stop) ------------


def _month_key(body: dict[str, Any], key: str) -> None:
    if key in body:
        try:
            schema.month(body[key], key)
        except schema.InvalidBody:
            raise Refused(f"{key} must be a month written like 2026-12, got {body[key]!r}") from None


def _hide_body(body: dict[str, Any]) -> None:
    schema.long_text(body.get("reason"), "reason", moderation.MAX_REASON_CHARS)


def _hide(state: CircleState, author: bytes, body: dict[str, Any]) -> None:
    _organizer(state, author, "hide a post")
    target = body.get("target")
    if target not in state.messages:
        raise Refused("that is not a post of this circle (only posts can be hidden)" + NOT_YET)
    if target in state.hidden:
        raise Refused("that post is already hidden")


def _installment(state: CircleState, author: bytes, body: dict[str, Any]) -> None:
    contribution_id = body.get("contribution")
    if contribution_id not in state.recurring or contribution_id not in state.contributions:
        if "month" in body:
            raise Refused("that contribution is a one-off: confirm it without --month")
        return
    month = body.get("month")
    schedule = state.recurring[contribution_id]
    if month is None:
        raise Refused("that contribution is monthly: name the month you confirm (--month 2026-12)")
    if month < schedule.first:
        raise Refused(f"that contribution starts in {schedule.first}; {month} is before it")
    if schedule.last is not None and month > schedule.last:
        raise Refused(f"that contribution was stopped after {schedule.last}; {month} is later")
    if month in state.installments.get(contribution_id, {}):
        raise Refused(f"the {month} installment of that contribution is already confirmed")


def _receipt_with_month(state: CircleState, author: bytes, body: dict[str, Any]) -> None:
    _receipt(state, author, body)
    _installment(state, author, body)


def _stop(state: CircleState, author: bytes, body: dict[str, Any]) -> None:
    contribution_id = _ref(body, "contribution")
    contribution = state.contributions.get(contribution_id)
    if contribution is None:
        raise Refused("that is not a contribution of this circle" + NOT_YET)
    schedule = state.recurring.get(contribution_id)
    if schedule is None:
        raise Refused("that contribution is a one-off: there is nothing to stop")
    if contribution.author != author:
        whose = _name(state, contribution.author)
        raise Refused(f"only its author stops a monthly contribution; that one is {whose}'s")
    if schedule.stopped_by is not None:
        raise Refused(f"that contribution is already stopped (its last month is {schedule.last})")
    last = body.get("last")
    confirmed = max(state.installments.get(contribution_id, {}), default=None)
    if isinstance(last, str) and confirmed is not None and last < confirmed:
        raise Refused(f"{confirmed} is already confirmed: the last month cannot be earlier")


def _monthly_contribution(body: dict[str, Any]) -> None:
    _contribute(body)
    _month_key(body, "monthly")


def _monthly_pledge(body: dict[str, Any]) -> None:
    _aid_item(body)
    _month_key(body, "monthly")


_SCHEMAS.update(
    {
        OpKind.MSG_HIDE: _hide_body,
        OpKind.FUND_CONTRIBUTE: _monthly_contribution,
        OpKind.AID_PLEDGE: _monthly_pledge,
        OpKind.FUND_RECEIPT: lambda body: _month_key(body, "month"),
        OpKind.FUND_STOP: lambda body: _month_key({"last": body.get("last")}, "last"),
    }
)


def _edit_unhidden(state: CircleState, author: bytes, body: dict[str, Any]) -> None:
    _edit(state, author, body)
    if body.get("target") in state.hidden:
        raise Refused("an organizer hid that message; it cannot be edited back (post again instead)")


_AUTHORITY.update(
    {
        OpKind.MSG_HIDE: _hide,
        OpKind.MSG_EDIT: _edit_unhidden,
        OpKind.FUND_RECEIPT: _receipt_with_month,
        OpKind.FUND_STOP: _stop,
    }
)
