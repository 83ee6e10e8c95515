"""The canonical representation of a circle state, and restoring a state from it.

The representation (docs/OPS.md, "Canonical state") is a CBOR map of positional rows:
every table becomes a list of ``[key..., record fields...]`` sorted by key, so equal
states give equal bytes whatever order their dicts were filled in. It is both what
`state_hash` hashes and what a snapshot stores; `restore_tables` reads it back (with
the strictness of any other untrusted input, although snapshots are authenticated) and
rebuilds the derived indexes that are not part of it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from kith.identity import codec
from kith.identity.errors import Malformed
from kith.sync import limits
from kith.sync.kinds.records import (
    ELECTION,
    OPEN,
    REVIEW,
    AidItem,
    AllocPeriod,
    AllocRules,
    Ask,
    Charter,
    Checkin,
    CircleInfo,
    Contribution,
    DecisionRule,
    Epoch,
    Event,
    Governance,
    Grant,
    Hidden,
    Invite,
    LedgerEntry,
    Member,
    Message,
    Profile,
    Proposal,
    Recurring,
    Rejection,
    Removal,
    ReviewDetails,
    SpendDetails,
    Struck,
    Vote,
)

if TYPE_CHECKING:
    from kith.sync.state import CircleState

CANONICAL_VERSION = 3

_Record = TypeVar("_Record")


def _rows(table: Mapping[bytes, tuple[Any, ...]]) -> list[list[Any]]:
    return [[key, *table[key]] for key in sorted(table)]


def _nested_rows(table: Mapping[bytes, Mapping[Any, Any]], flatten: bool) -> list[list[Any]]:
    rows = []
    for outer in sorted(table):
        inner = table[outer]
        for key in sorted(inner):
            value = inner[key]
            rows.append([outer, key, *value] if flatten else [outer, key, value])
    return rows


def charter_row(charter: Charter | None) -> list[Any] | None:
    """A charter's row: its six fields, then the allocation rules and the governance settings,
    trailing ones left out while None (an alloc of None is written as null only when the
    governance settings follow it), so states of circles without them keep the bytes they
    had before either existed."""
    if charter is None:
        return None
    row: list[Any] = list(charter[:6])
    if charter.governance is not None:
        row += [None if charter.alloc is None else list(charter.alloc), list(charter.governance)]
    elif charter.alloc is not None:
        row.append(list(charter.alloc))
    return row


def _proposal_row(proposal_id: bytes, proposal: Proposal) -> list[Any]:
    details = proposal.details
    # A charter proposal's details are a Charter (and only theirs): written as a charter row.
    row_details = charter_row(details) if isinstance(details, Charter) else details
    return [proposal_id, *proposal[:6], row_details, *proposal[7:]]


def _alloc_tables(state: CircleState) -> dict[str, Any]:
    """``asks`` and ``periods``, present only once the circle has any (docs/OPS.md §7)."""
    tables: dict[str, Any] = {}
    if state.asks:
        tables["asks"] = _rows(state.asks)
    if state.periods:
        tables["periods"] = [
            [number, period.closed_by, list(period.rules), *period[2:]]
            for number, period in sorted(state.periods.items())
        ]
    return tables


def canonical_state(state: CircleState) -> dict[str, Any]:
    last = state.last_key
    picture = {
        "v": CANONICAL_VERSION,
        "circle": state.circle_id,
        "count": state.applied_count,
        "last": None if last is None else list(last),
        "info": state.info.get("circle"),
        "charter": charter_row(state.info.get("charter")),
        "members": _rows(state.members),
        "profiles": _rows(state.profiles),
        "messages": _rows(state.messages),
        "reactions": _nested_rows(state.reactions, flatten=False),
        "checkins": _rows(state.checkins),
        "aid": _rows(state.aid),
        "proposals": [_proposal_row(key, state.proposals[key]) for key in sorted(state.proposals)],
        "votes": _nested_rows(state.votes, flatten=True),
        "contributions": _rows(state.contributions),
        "ledger": list(state.ledger),
        "balances": [[code, state.balances[code]] for code in sorted(state.balances)],
        "events": _rows(state.events),
        "rsvps": _nested_rows(state.rsvps, flatten=False),
        "rejected": [list(row) for _key, row in sorted(state.all_rejections().items())],
        "epoch": state.info.get("epoch"),
        "rotation_due": state.info.get("rotation_due", False),
        "cards": [[key, state.cards[key]] for key in sorted(state.cards)],
        "epochs": _rows(state.epochs),
        "holders": _nested_rows(state.holders, flatten=False),
        "offers": _nested_rows(state.offers, flatten=False),
        "admissions": [[nonce, state.admissions[nonce]] for nonce in sorted(state.admissions)],
        "invites": _rows(state.invites),
        "relays": [[address, state.relays[address]] for address in sorted(state.relays)],
        "removals": [[target, *record] for target in sorted(state.removals) for record in state.removals[target]],
        "seniority": [[member, state.seniority[member]] for member in sorted(state.seniority)],
        "struck": [
            [op_id, state.struck[op_id].striker_lamport, state.struck[op_id].striker] for op_id in sorted(state.struck)
        ],
        **_alloc_tables(state),
    }
    # Tables of later kinds appear only once they hold something: a circle that never used
    # them keeps the state hash it had before they existed.
    if state.hidden:
        picture["hidden"] = _rows(state.hidden)
    if state.recurring:
        picture["recurring"] = _rows(state.recurring)
    if state.installments:
        picture["installments"] = _nested_rows(state.installments, flatten=False)
    return picture


def encode_state(state: CircleState) -> bytes:
    return codec.encode(canonical_state(state))


# --- restoring ----------------------------------------------------------------------


def _tuple(value: Any) -> tuple[Any, ...]:
    if not isinstance(value, list | tuple):
        raise Malformed("state snapshot has a malformed list")
    return tuple(value)


def _rule(row: Any) -> DecisionRule:
    return DecisionRule(*_tuple(row))


def _alloc_rules(row: Any) -> AllocRules:
    period_s, reveal_s, currency, categories, cap, cooldown, priority, committee = _tuple(row)
    return AllocRules(
        period_s,
        reveal_s,
        currency,
        tuple(_tuple(pair) for pair in _tuple(categories)),
        cap,
        cooldown,
        priority,
        _tuple(committee),
    )


def _charter(row: Any) -> Charter:
    fields = _tuple(row)
    if len(fields) not in (6, 7, 8):
        raise Malformed("state snapshot has a malformed charter")
    text, invite, rules, adopted_by, history, confirm_joins = fields[:6]
    alloc = _alloc_rules(fields[6]) if len(fields) >= 7 and fields[6] is not None else None
    governance = Governance(*_tuple(fields[7])) if len(fields) == 8 else None
    if len(fields) == 8 and governance is None:
        raise Malformed("state snapshot has a malformed charter")
    return Charter(
        text,
        invite,
        tuple(_rule(rule) for rule in _tuple(rules)),
        adopted_by,
        history,
        confirm_joins,
        alloc,
        governance,
    )


def _ask(fields: list[Any]) -> Ask:
    ask = Ask(*fields)
    if type(ask.private) is not dict:
        raise Malformed("state snapshot has a malformed ask")
    return ask


def _period(fields: list[Any]) -> AllocPeriod:
    closed_by, rules, counted, drawn_by, seed, order = fields
    return AllocPeriod(closed_by, _alloc_rules(rules), _tuple(counted), drawn_by, seed, _tuple(order))


def _aid_item(fields: list[Any]) -> AidItem:
    kind, author, lamport, ts, category, content, amount, unit, expires, status, matched, closed_by, private = fields
    return AidItem(
        kind, author, lamport, ts, category, content, amount, unit, expires, status, _tuple(matched), closed_by, private
    )


def _member(fields: list[Any]) -> Member:
    roles, lamport, joined, added_by, vouch, acked, grants, path = fields
    return Member(
        _tuple(roles),
        lamport,
        joined,
        added_by,
        vouch,
        acked,
        tuple(Grant(*_tuple(grant)) for grant in _tuple(grants)),
        None if path is None else _tuple(path),
    )


def _proposal(fields: list[Any]) -> Proposal:
    proposal = Proposal(*fields)
    details = proposal.details
    if proposal.kind == "spend":
        details = SpendDetails(*_tuple(details))
    elif proposal.kind == "charter":
        details = _charter(details)
    elif proposal.kind == REVIEW:
        member, reasons = _tuple(details)
        details = ReviewDetails(member, dict(reasons))
    return proposal._replace(details=details, rule=_rule(proposal.rule), electorate=_tuple(proposal.electorate))


def _table(picture: dict[str, Any], name: str, build: Callable[[list[Any]], _Record]) -> dict[Any, _Record]:
    table: dict[Any, _Record] = {}
    for row in _tuple(picture[name]):
        row = _tuple(row)
        table[row[0]] = build(list(row[1:]))
    return table


def _nested(
    picture: dict[str, Any], name: str, build: Callable[[list[Any]], _Record]
) -> dict[bytes, dict[Any, _Record]]:
    table: dict[bytes, dict[Any, _Record]] = {}
    for row in _tuple(picture[name]):
        row = _tuple(row)
        table.setdefault(row[0], {})[row[1]] = build(list(row[2:]))
    return table


def restore_tables(state: CircleState, picture: Any) -> tuple[int, tuple[int, bytes] | None]:
    """Fill an empty state's tables from a canonical picture; return (count, last key)."""
    if type(picture) is not dict or picture.get("v") != CANONICAL_VERSION:
        raise Malformed("state snapshot has an unknown version")
    if picture.get("circle") != state.circle_id:
        raise Malformed("state snapshot belongs to another circle")
    try:
        if picture["info"] is not None:
            state.info["circle"] = CircleInfo(*_tuple(picture["info"]))
        if picture["charter"] is not None:
            state.info["charter"] = _charter(picture["charter"])
        state.members = _table(picture, "members", _member)
        state.profiles = _table(picture, "profiles", lambda f: Profile(f[0], f[1], _tuple(f[2])))
        state.messages = _table(picture, "messages", lambda f: Message(*f))
        state.reactions = _nested(picture, "reactions", lambda f: _tuple(f[0]))
        state.checkins = _table(picture, "checkins", lambda f: Checkin(*f))
        state.aid = _table(picture, "aid", _aid_item)
        state.proposals = _table(picture, "proposals", _proposal)
        state.votes = _nested(picture, "votes", lambda f: Vote(*f))
        state.contributions = _table(picture, "contributions", lambda f: Contribution(*f))
        state.ledger = [LedgerEntry(*_tuple(row)) for row in _tuple(picture["ledger"])]
        state.balances = {code: amount for code, amount in _tuple(picture["balances"])}
        state.events = _table(picture, "events", lambda f: Event(*f))
        state.rsvps = _nested(picture, "rsvps", lambda f: f[0])
        state.rejected = {row[0]: Rejection(*_tuple(row)) for row in _tuple(picture["rejected"])}
        if picture["epoch"] is not None:
            state.info["epoch"] = picture["epoch"]
        state.info["rotation_due"] = picture["rotation_due"]
        state.cards = {key: value for key, value in (_tuple(row) for row in _tuple(picture["cards"]))}
        state.epochs = _table(picture, "epochs", lambda f: Epoch(*f))
        state.holders = _nested(picture, "holders", lambda f: f[0])
        state.offers = _nested(picture, "offers", lambda f: f[0])
        state.admissions = {nonce: op for nonce, op in (_tuple(row) for row in _tuple(picture["admissions"]))}
        state.invites = _table(picture, "invites", lambda f: Invite(*f))
        state.relays = {address: op for address, op in (_tuple(row) for row in _tuple(picture["relays"]))}
        removals: dict[bytes, tuple[Removal, ...]] = {}
        for row in map(_tuple, _tuple(picture["removals"])):
            target, start_lamport, start_op, end_lamport, end_op, scope, anchors = row
            removal = Removal(start_lamport, start_op, end_lamport, end_op, scope, _tuple(anchors))
            removals[target] = (*removals.get(target, ()), removal)
        state.removals = removals
        state.asks = _table(picture, "asks", _ask) if "asks" in picture else {}
        state.periods = _table(picture, "periods", _period) if "periods" in picture else {}
        state.hidden = _table(picture, "hidden", lambda f: Hidden(*f)) if "hidden" in picture else {}
        state.recurring = _table(picture, "recurring", lambda f: Recurring(*f)) if "recurring" in picture else {}
        state.installments = _nested(picture, "installments", lambda f: f[0]) if "installments" in picture else {}
        state.seniority = {member: _tuple(path) for member, path in map(_tuple, _tuple(picture["seniority"]))}
        for op_id, striker_lamport, striker in map(_tuple, _tuple(picture["struck"])):
            rejection = state.rejected.pop(op_id)
            state.struck[op_id] = Struck(
                rejection.lamport, rejection.author, rejection.kind, rejection.reason, striker, striker_lamport
            )

        count = picture["count"]
        last = picture["last"]
    except (KeyError, TypeError, ValueError) as exc:
        raise Malformed("state snapshot is malformed") from exc
    if type(count) is not int or count < 0:
        raise Malformed("state snapshot has a malformed op count")
    last_key = None
    if last is not None:
        lamport, op_id = _tuple(last)
        if type(lamport) is not int or type(op_id) is not bytes or len(op_id) != limits.OP_ID_BYTES:
            raise Malformed("state snapshot has a malformed position")
        last_key = (lamport, op_id)
    rebuild_indexes(state)
    return count, last_key


def rebuild_indexes(state: CircleState) -> None:
    """Derive roots, replies and the open-proposal indexes from the tables."""
    items: list[tuple[int, bytes, bytes | None]] = [
        (message.lamport, message_id, message.reply_to) for message_id, message in state.messages.items()
    ]
    items.extend((checkin.lamport, checkin_id, None) for checkin_id, checkin in state.checkins.items())
    items.sort()
    state.roots = []
    state.replies = {}
    for _lamport, item_id, parent in items:
        if parent is None:
            state.roots.append(item_id)
        else:
            state.replies.setdefault(parent, []).append(item_id)
    state.newest_held = {}
    for epoch, holders in state.holders.items():
        record = state.epochs[epoch]
        if record.op in state.struck or record.op in state.rejected:
            continue  # a kept epoch counts for no one's newest key (`keys.note_held`)
        for member in holders:
            start = (record.lamport, record.op)
            if member not in state.newest_held or start > state.newest_held[member]:
                state.newest_held[member] = start
    state.open_asks = {}
    for ask_id, ask in sorted(state.asks.items(), key=lambda item: (item[1].lamport, item[0])):
        if ask.period not in state.periods and ask.outcome is None:
            state.open_asks[ask.period] = (*state.open_asks.get(ask.period, ()), ask_id)
    state.open_proposals = {}
    state.open_by_author = {}
    state.open_elections = {}
    for proposal_id, proposal in state.proposals.items():
        if proposal.status == OPEN:
            state.open_proposals[proposal_id] = (proposal.lamport, proposal_id)
            if proposal.kind == ELECTION:
                state.open_elections[proposal_id] = (proposal.lamport, proposal_id)
            state.open_by_author[proposal.author] = state.open_by_author.get(proposal.author, 0) + 1
