"""Asking the fund under the charter's allocation rules: what honest nodes sign, and what
each role can read and check (docs/OPS.md, "Allocation").

The fold (`kith.sync.kinds.alloc`) decides; this module holds the pieces around it that are not
ops: an asker's secret and commitment, the boxes that tell the committee who asked, and
the public report every member can recompute (totals per period and category, caps and
cool-downs per pseudonym, each ask's standing and why).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kith.identity import codec
from kith.identity.crypto import RandomBytes, blake2b, open_sealed, random_bytes, seal_to
from kith.identity.errors import Malformed, Undecryptable
from kith.sync.kinds import alloc
from kith.sync.kinds.records import Ask
from kith.sync.opkind import OpKind

if TYPE_CHECKING:
    from kith.identity.keys import MemberIdentity
    from kith.sync.state import CircleState

_BOX_KEYS = frozenset({"member", "note"})


def new_secret(rand: RandomBytes = random_bytes) -> tuple[bytes, bytes]:
    """(secret, commitment) for one ask: the asker's node keeps the secret until the close."""
    secret = rand(alloc.SECRET_BYTES)
    return secret, alloc.commitment(secret)


def seal_ask_box(recipient_dh_public: bytes, *, member: bytes, note: str = "") -> bytes:
    """What a committee member can read of an ask: who asked, and their note."""
    return seal_to(recipient_dh_public, codec.encode({"member": member, "note": note}))


def open_ask_box(box: bytes, me: MemberIdentity) -> dict[str, Any]:
    raw = codec.decode(open_sealed(me.dh_public, me.dh_secret, box), max_size=8192, what="ask box")
    if type(raw) is not dict or set(raw) != _BOX_KEYS:
        raise Malformed("ask box has the wrong fields")
    if type(raw["member"]) is not bytes or len(raw["member"]) != 32 or type(raw["note"]) is not str:
        raise Malformed("ask box is malformed")
    return raw


def ask_body(
    state: CircleState,
    *,
    member: bytes,
    pseudonym: bytes,
    commit: bytes,
    category: str,
    amount: int,
    ts: int,
    ref: bytes,
    note: str = "",
) -> dict[str, Any]:
    """The ``alloc.ask`` a committee member posts for ``member``, boxes sealed to the committee."""
    rules = state.info["charter"].alloc
    if rules is None:
        raise Malformed(alloc.NO_RULES)
    boxes = {m: seal_ask_box(state.cards[m], member=member, note=note)
             for m in sorted(alloc.committee(state, rules)) if m in state.cards}  # fmt: skip
    return {
        "period": alloc.period_of(rules, ts),
        "category": category,
        "amount": amount,
        "pseudonym": pseudonym,
        "commit": commit,
        "private": {"ref": ref, "boxes": boxes},
    }


# --- what every member can see and check --------------------------------------------


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def standing(state: CircleState, ask_id: bytes) -> str:
    """Where an ask stands under the rules, and why, in one line."""
    ask = state.asks[ask_id]
    period = state.periods.get(ask.period)
    rules = period.rules if period is not None else state.info["charter"].alloc
    if ask.outcome == alloc.LATE and period is None:
        return f"late: a later period closed before period {ask.period} did (ask again)"
    if ask.outcome == alloc.LATE:
        return f"late: period {ask.period} closed without seeing it (ask again)"
    if period is None:
        pending = state.open_asks.get(ask.period, ())
        asked = sum(state.asks[a].amount for a in pending if state.asks[a].category == ask.category)
        budget = rules.budget(ask.category) if rules is not None else None
        if budget is not None and asked > budget:
            return f"waiting for period {ask.period} to close: {ask.category} is oversubscribed, a draw will decide"
        return f"waiting for period {ask.period} to close: within budget so far"
    if period.drawn_by is None:
        revealed = "secret revealed" if ask.secret is not None else "secret not revealed yet"
        return f"counted in period {ask.period}, waiting for the draw ({revealed})"
    if ask.rank is None:
        return f"not counted in period {ask.period}'s draw"
    place = f"drawn {_ordinal(ask.rank)} of {len(period.order)}"
    if ask.secret is None:
        place += " (secret never revealed: ranked last)"
    if ask.outcome == alloc.ALLOCATED:
        return f"{place}: allocated" + (", paid" if ask.paid_by is not None else ", waiting for a treasurer to pay")
    if ask.outcome == alloc.COOLDOWN:
        last = alloc.last_helped(state.asks, ask.period).get(ask.pseudonym, ask.period)
        return f"{place}: cool-down until period {last + period.rules.cooldown + 1}"
    if ask.outcome == alloc.OVER_CAP:
        return f"{place}: over the per-person cap for this period"
    if ask.outcome == alloc.OVER_BUDGET:
        return f"{place}: the {ask.category} budget was spent by asks ranked before it"
    return f"{place}: the period's rules have no category {ask.category}"


def report(state: CircleState) -> dict[str, Any]:
    """The public allocation report: per period and category, budget, asked, allocated and
    paid; per pseudonym and period, what they were allocated; and every rule re-checked
    from the records (``problems`` lists any break: empty on an honest fold)."""
    periods: list[dict[str, Any]] = []
    problems: list[str] = []
    numbers = sorted(set(state.periods) | {ask.period for ask in state.asks.values()})
    for number in numbers:
        period = state.periods.get(number)
        rules = period.rules if period is not None else state.info["charter"].alloc
        asks = {a: ask for a, ask in state.asks.items() if ask.period == number}
        categories = []
        for name, budget in rules.categories if rules is not None else ():
            mine = [ask for ask in asks.values() if ask.category == name]
            allocated = sum(ask.amount for ask in mine if ask.outcome == alloc.ALLOCATED)
            paid = sum(ask.amount for ask in mine if ask.paid_by is not None)
            if allocated > budget:
                problems.append(f"period {number}: {name} allocated {allocated} over its budget {budget}")
            categories.append({"category": name, "budget": budget, "asked": sum(a.amount for a in mine),
                               "allocated": allocated, "paid": paid})  # fmt: skip
        by_pseudonym: dict[bytes, int] = {}
        for ask in asks.values():
            if ask.outcome == alloc.ALLOCATED:
                by_pseudonym[ask.pseudonym] = by_pseudonym.get(ask.pseudonym, 0) + ask.amount
        helped = alloc.last_helped(state.asks, number) if by_pseudonym else {}
        for pseud, total in sorted(by_pseudonym.items()):
            if rules is not None and total > rules.cap:
                problems.append(f"period {number}: pseudonym {pseud.hex()} allocated {total} over the cap")
            last = helped.get(pseud)
            if rules is not None and rules.cooldown and last is not None and number - last <= rules.cooldown:
                problems.append(f"period {number}: pseudonym {pseud.hex()} allocated during a cool-down")
        periods.append({
            "period": number,
            "currency": rules.currency if rules is not None else None,
            "closed": period is not None,
            "drawn": period is not None and period.drawn_by is not None,
            "seed": period.seed if period is not None else None,
            "categories": categories,
            "pseudonyms": [[p, total] for p, total in sorted(by_pseudonym.items())],
        })  # fmt: skip
    return {"periods": periods, "problems": problems}


def asks_view(state: CircleState, me: MemberIdentity | None = None) -> list[dict[str, Any]]:
    """Every ask as a member sees it; a committee member (or the asker, by ``mine``) also
    sees who asked. ``me``: whose boxes to open."""
    rows = []
    for ask_id, ask in sorted(state.asks.items(), key=lambda item: (item[1].period, item[1].lamport, item[0])):
        row: dict[str, Any] = {
            "id": ask_id,
            "period": ask.period,
            "category": ask.category,
            "amount": ask.amount,
            "currency": ask.currency,
            "pseudonym": ask.pseudonym,
            "rank": ask.rank,
            "outcome": ask.outcome,
            "paid": ask.paid_by is not None,
            "revealed": ask.secret is not None,
            "standing": standing(state, ask_id),
            "member": None,
        }
        if me is not None:
            row["member"] = _recipient(ask, me)
        rows.append(row)
    return rows


def _recipient(ask: Ask, me: MemberIdentity) -> bytes | None:
    boxes = ask.private.get("boxes")
    box = boxes.get(me.member_id) if type(boxes) is dict else None
    if type(box) is not bytes:
        return None
    try:
        member: bytes = open_ask_box(box, me)["member"]  # (checked there: 32 bytes)
        return member
    except (Malformed, Undecryptable):
        return None


# --- what a member's node does by itself ------------------------------------------------

MAX_DUTY_RANK = 4
"""A member's node closes or draws a period at most this many turns after it is due."""


def duties(state: CircleState, me: bytes, now: float, turn_delay: float) -> list[tuple[str, dict[str, Any]]]:
    """The closes and draws that are due and whose turn is ours, in the order to sign them.

    A period with asks is closed once ``now`` passes its end, and drawn once ``now`` passes
    its end plus the reveal window (the earliest first: a later close would shut out an
    earlier period's asks, and draws go in order). Members take turns, ranked by a hash of
    the period and their id, as for proposal closes; a duplicate is only a rejected op.
    """
    rules = state.info["charter"].alloc if "charter" in state.info else None
    if me not in state.members:
        return []
    due: list[tuple[str, dict[str, Any]]] = []

    def my_turn(number: int, since: float) -> bool:
        tag = number.to_bytes(8, "big")
        order = sorted(state.members, key=lambda m: blake2b(tag + m, person=b"kith-alloc-turn", size=8))
        return now - since >= min(order.index(me), MAX_DUTY_RANK) * turn_delay

    latest_closed = max(state.periods, default=-1)
    if rules is not None:
        for number in sorted(state.open_asks):
            end = alloc.period_end(rules, number)
            if number > latest_closed and now >= end and my_turn(number, end):
                due.append((OpKind.ALLOC_CLOSE, {"period": number}))
                latest_closed = number
    for number, period in sorted(state.periods.items()):
        if period.drawn_by is not None:
            continue
        ready = alloc.period_end(period.rules, number) + period.rules.reveal_s
        if now >= ready and my_turn(number, ready):
            due.append((OpKind.ALLOC_DRAW, {"period": number}))
        break  # draws go in order: the earliest undrawn period first
    return due


def reveals_due(state: CircleState, secrets: dict[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    """(ask id, secret) of our asks (``secrets``: commitment -> secret) counted in a closed,
    undrawn period whose secret is not public yet: time to reveal them."""
    out = []
    for ask_id, ask in sorted(state.asks.items()):
        secret = secrets.get(ask.commit)
        if secret is None or ask.secret is not None:
            continue
        period = state.periods.get(ask.period)
        if period is not None and period.drawn_by is None and ask_id in period.counted:
            out.append((ask_id, secret))
    return out
