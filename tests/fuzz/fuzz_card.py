"""Identity cards: `IdentityCard.from_bytes` on raw bytes.

Oracle: only `RemoteProtocolError`; an accepted card re-encodes to the same bytes, and
keys can be sealed to it (members seal epoch keys to every card they accept).
"""

from __future__ import annotations

from kith.identity.crypto import seal_to
from kith.identity.errors import RemoteProtocolError
from kith.identity.keys import IdentityCard


def TestOneInput(data: bytes) -> None:
    try:
        card = IdentityCard.from_bytes(data)
    except RemoteProtocolError:
        return
    if card.to_bytes() != data:
        raise AssertionError("an accepted card does not re-encode to its bytes")
    card.fingerprint  # noqa: B018 - must not raise for an accepted card
    seal_to(card.dh_public, b"epoch key")
