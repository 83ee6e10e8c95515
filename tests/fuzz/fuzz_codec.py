"""Canonical CBOR: `codec.decode` and `decode_unverified` on raw bytes.

Oracle: only `RemoteProtocolError`; whatever `decode` accepts re-encodes to the same bytes.
"""

from __future__ import annotations

from kith.identity import codec
from kith.identity.errors import RemoteProtocolError

MAX = 1 << 16


def TestOneInput(data: bytes) -> None:
    try:
        value = codec.decode(data, max_size=MAX)
    except RemoteProtocolError:
        pass
    else:
        if codec.encode(value) != data:
            raise AssertionError("decode accepted bytes that are not the canonical encoding")
    try:
        codec.decode_unverified(data, max_size=MAX)
    except RemoteProtocolError:
        pass
