"""Allocation kinds: asks to the fund decided by the charter's rules, with private recipients.

Theory of operation (docs/OPS.md, "Allocation" is normative)
-------------------------------------------------------------
A charter may carry allocation rules (`AllocRules`): a period length, categories with a
budget per period (in one currency), a per-person cap per period, a cool-down in periods
after receiving, and whether those helped longest ago rank first. Without them nothing
here applies and the fund works as before (spend proposals).

A person asks privately: their node seals the ask to the **committee** (the charter's
named committee, else the treasurers) and a committee member posts ``alloc.ask`` on their
behalf. The circle sees the period, category, amount, a **pseudonym** (the same for every
ask of one person, so caps and cool-downs are checked by every node) and a commitment to a
secret only the asker's node knows; who asked is sealed to the committee (``private``).

Periods end causally, like proposals: ``alloc.close`` by any member, claiming a time at or
after the period's end, fixes the asks in its causal past (later ones are refused, concurrent
ones are ``late``). Then the askers' secrets are revealed (``alloc.reveal``, any member, the
commitment authenticates it) and ``alloc.draw``, claiming a time at or after the end plus the
reveal window, fixes the reveals in its causal past and ranks the counted asks:

    seed      = BLAKE2b-256(id_1 || secret_1 || ... , person "kith-alloc-seed"), revealed asks by id
    ticket(a) = BLAKE2b-256(seed || a,               person "kith-alloc-rank")
    rank key  = (unrevealed, last period helped (if priority; never = -1), ticket, id)

and walks them in rank order: cool-down, then cap, then the category's budget decide each
ask's outcome. Nobody can steer the seed: the asks (and so their ids) are fixed before any
secret is public, and one honest secret makes the seed uniform; withholding one's secret
only moves one's own ask to the back. A treasurer pays an allocated ask once
(``alloc.pay``), from the confirmed balance of its currency; the ledger names the ask, not
the person.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kith.identity.crypto import blake2b
from kith.identity.errors import UsageError
from kith.sync.kinds import schema
from kith.sync.kinds.common import Handler, OpRejected, has_role, require_role
from kith.sync.kinds.records import TREASURER, AllocPeriod, AllocRules, Ask, LedgerEntry
from kith.sync.opkind import OpKind

if TYPE_CHECKING:
    from kith.sync.ops import Op, SignedOp
    from kith.sync.state import CircleState

MIN_PERIOD_S = 60
MAX_PERIOD_S = 366 * 24 * 3600
MIN_REVEAL_S = 60
MAX_REVEAL_S = 30 * 24 * 3600
MAX_CATEGORIES = 16
MAX_CATEGORY_CHARS = 32
MAX_COOLDOWN = 52
MAX_COMMITTEE = 16
MAX_ASKS_PER_PERIOD = 256
"""Bounds the draw's work and what a committee member can make every node store per period."""
PSEUDONYM_BYTES = 16
SECRET_BYTES = 32

ALLOCATED, OVER_BUDGET, OVER_CAP, COOLDOWN, NO_CATEGORY, LATE = (
    "allocated",
    "over-budget",
    "over-cap",
    "cooldown",
    "no-category",
    "late",
)

_RULES_KEYS = frozenset({"period_s", "reveal_s", "currency", "categories", "cap", "cooldown", "priority"})
_COMMITTEE = "committee"
"""Optional in the rules: present only when the charter names a committee."""
_ASK_KEYS = frozenset({"period", "category", "amount", "pseudonym", "commit", "private"})
_PRIVATE_KEYS = frozenset({"ref", "boxes"})
_PERIOD_KEYS = frozenset({"period"})
_REVEAL_KEYS = frozenset({"ask", "secret"})
_PAY_KEYS = frozenset({"ask", "note"})
MAX_BOX = 4096

NO_RULES = "the charter has no allocation rules"
NOT_COMMITTEE = "only the allocation committee (or a treasurer, if none is named) may post an ask"
BOXES_NOT_COMMITTEE = "an ask may be sealed only to the allocation committee"
WRONG_PERIOD = "an ask names the period its own time falls in"
NO_SUCH_CATEGORY = "the charter has no such category"
OVER_THE_CAP = "the amount is more than the per-person cap"
PERIOD_CLOSED = "the period is already closed"
LATER_CLOSED = "a later period is already closed"
ALREADY_ASKED = "this pseudonym already asked in this category this period"
TOO_MANY_ASKS = f"the period already has {MAX_ASKS_PER_PERIOD} asks"
CLOSE_TOO_EARLY = "the close claims a time before the period's end"
NOT_AN_ASK = "ask is not an ask of this circle"
NOT_CLOSED = "the period is not closed yet"
REVEAL_UNSEEN_CLOSE = "the reveal had not seen the period's close"
NOT_COUNTED = "the ask was not counted in its period's draw"
ALREADY_DRAWN = "the period is already drawn"
ALREADY_REVEALED = "the ask's secret is already revealed"
BAD_SECRET = "the secret does not match the ask's commitment"  # noqa: S105 - a rejection reason, not a secret
DRAW_TOO_EARLY = "the draw claims a time before the period's end plus the reveal window"
EARLIER_UNDRAWN = "an earlier closed period is not drawn yet"
DRAW_UNSEEN_CLOSE = "the draw had not seen the period's close"
NOT_ALLOCATED = "the ask was not allocated money"
ALREADY_PAID = "the ask was already paid"
NOT_PAYER = "only a treasurer on the allocation committee may pay an ask"
OVER_BALANCE = "the amount exceeds the confirmed balance"


# --- the rules in the charter ---------------------------------------------------------


def parse_rules(raw: Any, where: str) -> AllocRules:
    """The ``alloc`` map of a charter (docs/OPS.md, "Allocation rules")."""
    named = type(raw) is dict and _COMMITTEE in raw
    body = schema.exact_keys(raw, _RULES_KEYS | {_COMMITTEE} if named else _RULES_KEYS, where)
    period_s = schema.integer(body["period_s"], f"{where}.period_s", MIN_PERIOD_S, MAX_PERIOD_S)
    reveal_s = schema.integer(body["reveal_s"], f"{where}.reveal_s", MIN_REVEAL_S, MAX_REVEAL_S)
    currency = schema.currency(body["currency"], f"{where}.currency")
    categories = body["categories"]
    if type(categories) is not dict:
        raise schema.InvalidBody(f"{where}.categories", "wrong type")
    if not 1 <= len(categories) <= MAX_CATEGORIES:
        raise schema.InvalidBody(f"{where}.categories", "too many items")
    parsed = tuple(
        sorted(
            (
                schema.short_text(name, f"{where}.categories key", MAX_CATEGORY_CHARS),
                schema.amount(budget, f"{where}.categories value"),
            )
            for name, budget in categories.items()
        )
    )
    cap = schema.amount(body["cap"], f"{where}.cap")
    cooldown = schema.integer(body["cooldown"], f"{where}.cooldown", 0, MAX_COOLDOWN)
    priority = schema.boolean(body["priority"], f"{where}.priority")
    committee: tuple[bytes, ...] = ()
    if named:
        members = body[_COMMITTEE]
        if type(members) is not list:
            raise schema.InvalidBody(f"{where}.committee", "wrong type")
        if not 1 <= len(members) <= MAX_COMMITTEE:
            raise schema.InvalidBody(f"{where}.committee", "too many items")
        committee = tuple(schema.member_ref(m, f"{where}.committee item") for m in members)
        if len(set(committee)) != len(committee):
            raise schema.InvalidBody(f"{where}.committee", "repeated item")
        if list(committee) != sorted(committee):
            raise schema.InvalidBody(f"{where}.committee", "not sorted")
    return AllocRules(period_s, reveal_s, currency, parsed, cap, cooldown, priority, committee)


def rules_body(rules: AllocRules) -> dict[str, Any]:
    """The wire form of allocation rules (``committee`` only when one is named)."""
    body: dict[str, Any] = {
        "period_s": rules.period_s,
        "reveal_s": rules.reveal_s,
        "currency": rules.currency,
        "categories": dict(rules.categories),
        "cap": rules.cap,
        "cooldown": rules.cooldown,
        "priority": rules.priority,
    }
    if rules.committee:
        body[_COMMITTEE] = list(rules.committee)
    return body


def rules_from_options(changes: Any, current: AllocRules | None) -> AllocRules | None:
    """Allocation rules from a person's options (``kith propose ... charter``): ``current``
    with ``changes`` made (new rules need every setting but ``reveal_s``, ``cooldown`` and
    ``priority``, which default to a day, none and on); ``None`` removes the rules. Raises
    `UsageError`."""
    if changes is None:
        return None
    if type(changes) is not dict:
        raise UsageError("the charter's alloc is a map of allocation settings (or null to remove them)")
    base = rules_body(current) if current is not None else {"cooldown": 0, "priority": True, "reveal_s": 86400}
    merged = {**base, **changes}
    if _COMMITTEE in merged and not merged[_COMMITTEE]:
        del merged[_COMMITTEE]
    if _COMMITTEE in merged and type(merged[_COMMITTEE]) is list:
        try:  # member ids as typed (hex) or as bytes
            members = {bytes.fromhex(m) if type(m) is str else m for m in merged[_COMMITTEE]}
        except ValueError:
            raise UsageError("the allocation committee lists member ids (hex)") from None
        if not all(type(m) is bytes for m in members):
            raise UsageError("the allocation committee lists member ids (hex)")
        merged[_COMMITTEE] = sorted(members)
    missing = sorted(_RULES_KEYS - set(merged))
    if missing:
        raise UsageError(f"the allocation rules need {', '.join(missing)}")
    try:
        return parse_rules(merged, "alloc")
    except schema.InvalidBody as exc:
        raise UsageError(f"the allocation rules are not valid: {exc}") from None


# --- pure helpers (the node and the views use them too) ----------------------------


def commitment(secret: bytes) -> bytes:
    """What an ask carries for its secret."""
    return blake2b(secret, person=b"kith-alloc-cmt", size=32)


def pseudonym(member_dh_secret: bytes, circle: bytes) -> bytes:
    """An honest member's pseudonym in a circle: stable, and unlinkable without their key."""
    return blake2b(circle, key=member_dh_secret, person=b"kith-alloc-pseud", size=PSEUDONYM_BYTES)


def period_of(rules: AllocRules, ts: int) -> int:
    return ts // rules.period_s


def period_end(rules: AllocRules, period: int) -> int:
    return (period + 1) * rules.period_s


def committee(state: CircleState, rules: AllocRules) -> set[bytes]:
    """Who sees who asked: the named committee's current members, else the treasurers."""
    if rules.committee:
        return {m for m in rules.committee if m in state.members}
    return {m for m, member in state.members.items() if TREASURER in member.roles}


def _in_committee(state: CircleState, rules: AllocRules, author: bytes) -> bool:
    if rules.committee:
        return author in rules.committee
    return has_role(state, author, TREASURER)


def seed_of(revealed: list[tuple[bytes, bytes]]) -> bytes:
    """The draw's seed from (ask id, secret) pairs (sorted here by ask id)."""
    return blake2b(b"".join(a + s for a, s in sorted(revealed)), person=b"kith-alloc-seed", size=32)


def ticket(seed: bytes, ask_id: bytes) -> bytes:
    return blake2b(seed + ask_id, person=b"kith-alloc-rank", size=32)


def last_helped(asks: dict[bytes, Ask], before: int) -> dict[bytes, int]:
    """pseudonym -> the latest period before ``before`` in which they were allocated money."""
    helped: dict[bytes, int] = {}
    for ask in asks.values():
        if ask.outcome == ALLOCATED and ask.period < before and ask.period > helped.get(ask.pseudonym, -1):
            helped[ask.pseudonym] = ask.period
    return helped


def draw(
    rules: AllocRules,
    period: int,
    asks: dict[bytes, Ask],
    counted: tuple[bytes, ...],
    revealed: set[bytes],
    helped: dict[bytes, int],
) -> tuple[bytes, list[tuple[bytes, str]]]:
    """(seed, [(ask id, outcome)] in rank order): the period's draw, a pure function.

    ``revealed``: the counted asks whose reveal the draw had seen; ``helped``: `last_helped`.
    """
    seed = seed_of([(a, asks[a].secret) for a in counted if a in revealed])  # type: ignore[misc]

    def key(ask_id: bytes) -> tuple[int, int, bytes, bytes]:
        last = helped.get(asks[ask_id].pseudonym, -1) if rules.priority else -1
        return (0 if ask_id in revealed else 1, last, ticket(seed, ask_id), ask_id)

    spent: dict[str, int] = {}
    got: dict[bytes, int] = {}
    result = []
    for ask_id in sorted(counted, key=key):
        ask = asks[ask_id]
        last = helped.get(ask.pseudonym)
        budget = rules.budget(ask.category)
        if rules.cooldown and last is not None and period - last <= rules.cooldown:
            outcome = COOLDOWN
        elif budget is None or ask.currency != rules.currency:
            outcome = NO_CATEGORY
        elif got.get(ask.pseudonym, 0) + ask.amount > rules.cap:
            outcome = OVER_CAP
        elif spent.get(ask.category, 0) + ask.amount > budget:
            outcome = OVER_BUDGET
        else:
            outcome = ALLOCATED
            spent[ask.category] = spent.get(ask.category, 0) + ask.amount
            got[ask.pseudonym] = got.get(ask.pseudonym, 0) + ask.amount
        result.append((ask_id, outcome))
    return seed, result


# --- handlers ---------------------------------------------------------------------------


def _rules(state: CircleState) -> AllocRules:
    rules = state.info["charter"].alloc
    if rules is None:
        raise OpRejected(NO_RULES)
    return rules


def _later_closed(state: CircleState, period: int) -> bool:
    return any(p > period for p in state.periods)


def _private(value: Any) -> dict[str, Any]:
    private = schema.exact_keys(value, _PRIVATE_KEYS, "private")
    schema.fixed_bytes(private["ref"], "private.ref", 32)
    boxes = private["boxes"]
    if type(boxes) is not dict or not 1 <= len(boxes) <= MAX_COMMITTEE:
        raise schema.InvalidBody("private.boxes", "wrong size")
    for member, box in boxes.items():
        schema.member_ref(member, "private.boxes key")
        if type(box) is not bytes or not 48 < len(box) <= MAX_BOX:
            raise schema.InvalidBody("private.boxes value", "wrong size")
    return private


def alloc_ask(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    body = schema.exact_keys(body, _ASK_KEYS, "body")
    period = schema.integer(body["period"], "period", 0, 2**40)
    category = schema.short_text(body["category"], "category", MAX_CATEGORY_CHARS)
    amount = schema.amount(body["amount"])
    pseud = schema.fixed_bytes(body["pseudonym"], "pseudonym", PSEUDONYM_BYTES)
    commit = schema.fixed_bytes(body["commit"], "commit", 32)
    private = _private(body["private"])
    rules = _rules(state)
    if not _in_committee(state, rules, op.author):
        raise OpRejected(NOT_COMMITTEE)
    if not set(private["boxes"]) <= committee(state, rules):
        raise OpRejected(BOXES_NOT_COMMITTEE)
    if period != period_of(rules, op.ts):
        raise OpRejected(WRONG_PERIOD)
    if rules.budget(category) is None:
        raise OpRejected(NO_SUCH_CATEGORY)
    if amount > rules.cap:
        raise OpRejected(OVER_THE_CAP)
    if period in state.periods:
        raise OpRejected(PERIOD_CLOSED)
    if _later_closed(state, period):
        raise OpRejected(LATER_CLOSED)
    pending = state.open_asks.get(period, ())
    if len(pending) >= MAX_ASKS_PER_PERIOD:
        raise OpRejected(TOO_MANY_ASKS)
    for other in pending:
        ask = state.asks[other]
        if ask.pseudonym == pseud and ask.category == category:
            raise OpRejected(ALREADY_ASKED)
    ask = Ask(op.author, op.lamport, op.ts, period, category, amount, rules.currency, pseud, commit, private,
              None, None, None, None, None)  # fmt: skip
    state.put(state.asks, signed.id, ask)
    state.put(state.open_asks, period, (*pending, signed.id))


def alloc_close(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    body = schema.exact_keys(body, _PERIOD_KEYS, "body")
    period = schema.integer(body["period"], "period", 0, 2**40)
    rules = _rules(state)
    if period in state.periods:
        raise OpRejected(PERIOD_CLOSED)
    if _later_closed(state, period):
        raise OpRejected(LATER_CLOSED)
    if op.ts < period_end(rules, period):
        raise OpRejected(CLOSE_TOO_EARLY)
    pending = state.open_asks.get(period, ())
    counted = tuple(sorted(state.causal.seen_among(pending, signed.id)))
    # Asks it did not count, and those of earlier periods nobody closed, will never be drawn.
    for number in sorted(p for p in state.open_asks if p <= period):
        for ask_id in state.open_asks[number]:
            if ask_id not in counted:
                state.put(state.asks, ask_id, state.asks[ask_id]._replace(outcome=LATE))
        state.drop(state.open_asks, number)
    state.put(state.periods, period, AllocPeriod(signed.id, rules, counted, None, None, ()))


def alloc_reveal(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    body = schema.exact_keys(body, _REVEAL_KEYS, "body")
    ask_id = schema.op_ref(body["ask"], "ask")
    secret = schema.fixed_bytes(body["secret"], "secret", SECRET_BYTES)
    ask = state.asks.get(ask_id)
    if ask is None:
        raise OpRejected(NOT_AN_ASK)
    period = state.periods.get(ask.period)
    if period is None:
        raise OpRejected(NOT_CLOSED)
    if period.drawn_by is not None:
        raise OpRejected(ALREADY_DRAWN)
    if ask_id not in period.counted:
        raise OpRejected(NOT_COUNTED)
    if ask.secret is not None:
        raise OpRejected(ALREADY_REVEALED)
    if commitment(secret) != ask.commit:
        raise OpRejected(BAD_SECRET)
    if not state.causal.seen_among((period.closed_by,), signed.id):
        raise OpRejected(REVEAL_UNSEEN_CLOSE)
    state.put(state.asks, ask_id, ask._replace(secret=secret, reveal=signed.id))


def alloc_draw(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    body = schema.exact_keys(body, _PERIOD_KEYS, "body")
    number = schema.integer(body["period"], "period", 0, 2**40)
    period = state.periods.get(number)
    if period is None:
        raise OpRejected(NOT_CLOSED)
    if period.drawn_by is not None:
        raise OpRejected(ALREADY_DRAWN)
    rules = period.rules
    if op.ts < period_end(rules, number) + rules.reveal_s:
        raise OpRejected(DRAW_TOO_EARLY)
    if any(p < number and earlier.drawn_by is None for p, earlier in state.periods.items()):
        raise OpRejected(EARLIER_UNDRAWN)
    if not state.causal.seen_among((period.closed_by,), signed.id):
        raise OpRejected(DRAW_UNSEEN_CLOSE)
    reveals = {reveal: a for a in period.counted if (reveal := state.asks[a].reveal) is not None}
    revealed = {reveals[r] for r in state.causal.seen_among(list(reveals), signed.id)}
    seed, ranked = draw(rules, number, state.asks, period.counted, revealed, last_helped(state.asks, number))
    for place, (ask_id, outcome) in enumerate(ranked, 1):
        ask = state.asks[ask_id]
        state.put(state.asks, ask_id, ask._replace(rank=place, outcome=outcome))
    order = tuple(ask_id for ask_id, _outcome in ranked)
    state.put(state.periods, number, period._replace(drawn_by=signed.id, seed=seed, order=order))


def alloc_pay(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    body = schema.exact_keys(body, _PAY_KEYS, "body")
    ask_id = schema.op_ref(body["ask"], "ask")
    note = schema.optional_long(body["note"], "note", schema.MAX_NOTE_CHARS)
    require_role(state, op.author, TREASURER)
    ask = state.asks.get(ask_id)
    if ask is None:
        raise OpRejected(NOT_AN_ASK)
    rules = state.periods[ask.period].rules if ask.period in state.periods else None
    if rules is not None and rules.committee and op.author not in rules.committee:
        raise OpRejected(NOT_PAYER)
    if ask.outcome != ALLOCATED:
        raise OpRejected(NOT_ALLOCATED)
    if ask.paid_by is not None:
        raise OpRejected(ALREADY_PAID)
    balance = state.balances.get(ask.currency, 0)
    if ask.amount > balance:
        raise OpRejected(OVER_BALANCE)
    state.put(state.asks, ask_id, ask._replace(paid_by=signed.id))
    state.put(state.balances, ask.currency, balance - ask.amount)
    state.push(
        state.ledger,
        LedgerEntry(signed.id, op.lamport, op.ts, "allocation", op.author, ask.amount, ask.currency, ask_id, note),
    )


HANDLERS: dict[str, Handler] = {
    OpKind.ALLOC_ASK: alloc_ask,
    OpKind.ALLOC_CLOSE: alloc_close,
    OpKind.ALLOC_REVEAL: alloc_reveal,
    OpKind.ALLOC_DRAW: alloc_draw,
    OpKind.ALLOC_PAY: alloc_pay,
}
