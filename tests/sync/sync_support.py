"""Helpers for the circle-state tests: sealing content as a node would, reading it back."""

from __future__ import annotations

import hashlib
from typing import Any

from kith.identity import codec
from kith.sync.content import ContentReader, seal_content
from kith.sync.kinds import CONTENT_KINDS

FIRST_EPOCH = bytes([0x42]) * 16
CONTENT_KEY = bytes([0x11]) * 32
"""The test circles' content key for FIRST_EPOCH."""


def sealed_body(
    kind: str, body: dict[str, Any], author: bytes, circle: bytes, epoch: bytes = FIRST_EPOCH
) -> dict[str, Any]:
    """Tests write bodies with plaintext content fields; seal them as a node would.

    Bodies that already have ``content``, or lack the plaintext fields, pass unchanged (so
    schema tests can send malformed shapes)."""
    if kind == "aid.request" and "private" not in body:
        body = {**body, "private": None}  # an ordinary, public request
    spec = CONTENT_KINDS.get(kind)
    if spec is None or "content" in body or not all(f in body for f in spec[0]):
        return body
    content = {f: body[f] for f in spec[0]}
    rest = {k: v for k, v in body.items() if k not in spec[0]}
    # A nonce derived from the content keeps test runs reproducible (hypothesis replays
    # them); a node uses random nonces.
    seed = hashlib.blake2b(
        codec.encode(content) + author + kind.encode() + repr(rest).encode(), digest_size=24
    ).digest()
    blob = seal_content(
        content, circle=circle, author=author, kind=kind, epoch=epoch, key=CONTENT_KEY, rand=lambda n: seed[:n]
    )
    return {**rest, "content": blob}


def reader_for(circle_id: bytes) -> ContentReader:
    return ContentReader(circle_id, {FIRST_EPOCH: CONTENT_KEY})
