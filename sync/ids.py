"""The one place that computes content ids.

An id is BLAKE2b-256 over the exact canonical bytes, personalised per kind of object so
an op id can never be mistaken for an envelope id. Anyone holding the bytes (a relay
without keys included) can recompute and check it.
"""

from __future__ import annotations

import hashlib

_ENVELOPE = b"kith-envelope"
_OP = b"kith-op"


def _content_id(data: bytes, person: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=32, person=person).digest()


def envelope_id(envelope_bytes: bytes) -> bytes:
    return _content_id(envelope_bytes, _ENVELOPE)


def op_id(signed_op_bytes: bytes) -> bytes:
    return _content_id(signed_op_bytes, _OP)
