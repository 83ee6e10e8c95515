"""Reconciliation messages: `decode_message` and `ReconcileSession.receive` at every point of
real conversations.

Two conversations are recorded at import: a small one (id lists) and a large one
(estimates, sketches, splits). The first input byte picks a receiving session at some
point of them (a copy, so inputs stay independent); the rest is the message it receives.

Oracle: only `RemoteProtocolError`; a message that decodes re-encodes to the same bytes.
"""

from __future__ import annotations

import copy
import hashlib
import random

from kith.identity.errors import RemoteProtocolError
from kith.sync.reconcile import ItemIndex, ReconcileSession
from kith.sync.reconcile_wire import decode_message, encode_message

SALT = bytes(range(16))


def _items(count: int, seed: int) -> list[tuple[int, bytes]]:
    rng = random.Random(seed)
    return [
        (1_700_000_000 + rng.randrange(10**5), hashlib.blake2b(f"{seed}/{i}".encode(), digest_size=32).digest())
        for i in range(count)
    ]


def _conversation(shared: int, only_a: int, only_b: int) -> list[tuple[ReconcileSession, bytes]]:
    """(receiver before it receives, message) for every message of one exchange."""
    common = _items(shared, 1)
    a = ReconcileSession(ItemIndex(common + _items(only_a, 2)), initiator=True, salt=SALT)
    b = ReconcileSession(ItemIndex(common + _items(only_b, 3)), initiator=False)
    points = []
    message: bytes | None = a.start()
    receiver, sender = b, a
    while message is not None and len(points) < 32:
        points.append((copy.deepcopy(receiver), message))
        message = receiver.receive(message)
        receiver, sender = sender, receiver
    return points


POINTS = _conversation(40, 10, 12) + _conversation(600, 40, 35) + _conversation(0, 0, 30)
"""Receivers the fuzz messages go to (their first entries are fresh responders)."""


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    session, _real = POINTS[data[0] % len(POINTS)]
    message = data[1:]
    first = session._multiplier is None
    try:
        decoded = decode_message(message, first=first)
    except RemoteProtocolError:
        pass
    else:
        if encode_message(decoded) != message:
            raise AssertionError("a decoded message does not re-encode to its bytes")
    try:
        copy.deepcopy(session).receive(message)
    except RemoteProtocolError:
        pass
