"""Shared helpers for the reconciliation tests: item sets and two sessions wired back to back."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

from kith.sync.reconcile import ItemIndex, ReconcileSession

Item = tuple[int, bytes]
SALT = bytes(range(16))


def make_id(seed: int, n: int) -> bytes:
    return hashlib.blake2b(n.to_bytes(8, "little"), digest_size=32, key=seed.to_bytes(8, "little")).digest()


def random_items(count: int, seed: int, *, ts_base: int = 1_700_000_000, ts_span: int = 10**6) -> list[Item]:
    rng = random.Random(seed)
    return [(ts_base + rng.randrange(ts_span), make_id(seed, i)) for i in range(count)]


@dataclass
class Exchange:
    initiator: ReconcileSession
    responder: ReconcileSession
    messages: list[bytes] = field(default_factory=list)
    pushed_by_initiator_at: dict[bytes, int] = field(default_factory=dict)
    pushed_by_responder_at: dict[bytes, int] = field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        return sum(len(m) for m in self.messages)

    @property
    def round_trips(self) -> int:
        """Half-round-trips until the last message or push lands, rounded up to round trips.

        Message k (1-based) arrives at half-RT k; a push offered right after a side sent
        message k arrives with it (at k), one offered after receiving the final message
        arrives one half-RT later.
        """
        last = len(self.messages)
        for at in (*self.pushed_by_initiator_at.values(), *self.pushed_by_responder_at.values()):
            last = max(last, at)
        return -(-last // 2)


def run_exchange(
    a_items: list[Item],
    b_items: list[Item],
    *,
    salt: bytes = SALT,
    max_messages: int = 64,
    **session_args: object,
) -> Exchange:
    """Reconcile two item sets back to back, recording messages and when pushes could start."""
    initiator = ReconcileSession(ItemIndex(a_items), initiator=True, salt=salt, **session_args)  # type: ignore[arg-type]
    responder = ReconcileSession(ItemIndex(b_items), initiator=False, **session_args)  # type: ignore[arg-type]
    ex = Exchange(initiator, responder)
    message: bytes | None = initiator.start()
    sender, receiver = initiator, responder
    while message is not None:
        ex.messages.append(message)
        _note_pushes(ex, sender, len(ex.messages))
        assert len(ex.messages) <= max_messages, "the exchange does not terminate"
        message = receiver.receive(message)
        sender, receiver = receiver, sender
    # The side that received the final message pushes what it learned from it a half-RT later.
    _note_pushes(ex, sender, len(ex.messages) + 1)
    _note_pushes(ex, receiver, len(ex.messages) + 1)
    return ex


def _note_pushes(ex: Exchange, side: ReconcileSession, at: int) -> None:
    book = ex.pushed_by_initiator_at if side is ex.initiator else ex.pushed_by_responder_at
    for item_id in side.take_sendable():
        book.setdefault(item_id, at)


def check_exact(ex: Exchange, a_items: list[Item], b_items: list[Item]) -> None:
    """Both sessions finished and know exactly what each side must send."""
    a_ids = {i for _, i in a_items}
    b_ids = {i for _, i in b_items}
    only_a, only_b = a_ids - b_ids, b_ids - a_ids
    i, r = ex.initiator, ex.responder
    assert i.done and r.done
    assert i.have_ids == only_a
    assert r.have_ids == only_b
    assert i.need_count == len(only_b)
    assert r.need_count == len(only_a)
    assert i.need_ids <= only_b and r.need_ids <= only_a
    b_ts = dict((item_id, ts) for ts, item_id in b_items)
    a_ts = dict((item_id, ts) for ts, item_id in a_items)
    assert all(i.expects(b_ts[x], x) for x in only_b)
    assert all(r.expects(a_ts[x], x) for x in only_a)
    # Everything that must move was offered for pushing, and nothing else.
    assert set(ex.pushed_by_initiator_at) >= only_a
    assert set(ex.pushed_by_responder_at) >= only_b
