"""Copyable codes (relay tokens, invites): a prefix, then base32 of CBOR plus a checksum.

Codes are meant to be pasted, read aloud or scanned: uppercase base32 (RFC 4648, no
padding) fits a QR code's compact alphanumeric mode, and a 4-byte BLAKE2b checksum turns
a typo into a clear "damaged code" error instead of a confusing failure later. Whitespace
and line breaks inside a pasted code are ignored; letters may be any case.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from kith.identity import codec
from kith.identity.crypto import blake2b
from kith.identity.errors import Malformed, Oversized

MAX_CODE_CHARS = 8192
CHECKSUM_BYTES = 4
_BASE32 = re.compile(r"[A-Z2-7]+")


def encode_code(prefix: str, payload: dict[str, Any]) -> str:
    body = codec.encode(payload)
    checksum = blake2b(prefix.encode() + body, person=b"kith-code", size=CHECKSUM_BYTES)
    return prefix + base64.b32encode(body + checksum).decode().rstrip("=")


def decode_code(prefix: str, text: str, *, what: str) -> Any:
    """The payload of a pasted code; `Malformed` with a human message for anything wrong."""
    if type(text) is not str:
        raise Malformed(f"{what} must be text")
    if len(text) > MAX_CODE_CHARS:
        raise Oversized(f"{what} is too long to be a kith code")
    compact = "".join(text.split())
    if not compact.upper().startswith(prefix.upper()):
        article = "an" if what[:1] in "aeiou" else "a"
        raise Malformed(f"this is not {article} {what} (it should start with {prefix})")
    encoded = compact[len(prefix) :].upper()
    if not encoded or not _BASE32.fullmatch(encoded):
        raise Malformed(f"{what} contains characters that cannot be in a kith code")
    try:
        raw = base64.b32decode(encoded + "=" * (-len(encoded) % 8))
    except ValueError:
        raise Malformed(f"{what} is damaged (was it cut off when copying?)") from None
    body, checksum = raw[:-CHECKSUM_BYTES], raw[-CHECKSUM_BYTES:]
    if (
        len(raw) <= CHECKSUM_BYTES
        or blake2b(prefix.encode() + body, person=b"kith-code", size=CHECKSUM_BYTES) != checksum
    ):
        raise Malformed(f"{what} is damaged (check for a typo or a missing piece)")
    return codec.decode(body, max_size=MAX_CODE_CHARS, what=what)
