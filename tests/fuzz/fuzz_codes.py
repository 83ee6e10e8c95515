"""Copyable codes: `decode_code`, `RelayToken.decode` and `InviteCode.decode`.

Modes (first byte, mod 3):
  0. the rest is pasted text (UTF-8, invalid bytes replaced): all three decoders;
  1. the rest is a CBOR body the harness wraps in a valid relay-token code (right prefix
     and checksum), so the token's field checks see the fuzz bytes;
  2. the same for an invite code.

Oracle: only `RemoteProtocolError`; an accepted token or invite re-encodes and decodes
to an equal value.
"""

from __future__ import annotations

import base64

from kith.identity.crypto import blake2b
from kith.identity.errors import RemoteProtocolError
from kith.sync import codes
from kith.sync.invites import PREFIX as INVITE_PREFIX
from kith.sync.invites import InviteCode
from kith.sync.relaytoken import PREFIX as RELAY_PREFIX
from kith.sync.relaytoken import RelayToken


def wrap(prefix: str, body: bytes) -> str:
    """A code with a correct checksum around arbitrary body bytes."""
    checksum = blake2b(prefix.encode() + body, person=b"kith-code", size=codes.CHECKSUM_BYTES)
    return prefix + base64.b32encode(body + checksum).decode().rstrip("=")


def _round_trip(cls: type[RelayToken] | type[InviteCode], text: str) -> None:
    try:
        value = cls.decode(text)
    except RemoteProtocolError:
        return
    if cls.decode(value.encode()) != value:
        raise AssertionError(f"{cls.__name__} does not survive encode/decode")


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    mode, rest = data[0] % 3, data[1:]
    if mode == 0:
        text = rest.decode("utf-8", "replace")
        for prefix in (RELAY_PREFIX, INVITE_PREFIX):
            try:
                codes.decode_code(prefix, text, what="code")
            except RemoteProtocolError:
                pass
        _round_trip(RelayToken, text)
        _round_trip(InviteCode, text)
    elif mode == 1:
        _round_trip(RelayToken, wrap(RELAY_PREFIX, rest))
    else:
        _round_trip(InviteCode, wrap(INVITE_PREFIX, rest))
