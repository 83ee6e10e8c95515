"""Body schemas: exact keys, exact types, bounded lengths (docs/OPS.md, "Body schemas").

Checks are plain functions rather than a schema interpreter because the fold runs them
for every op at a budget of a few microseconds. Types are checked with ``type(x) is T``:
``bool`` is an ``int`` in Python, and only the exact types a CBOR decoder produces
(str, bytes, int, bool, None, list, dict) are accepted, so an op folds the same on the
node that wrote it and on every node that decoded it.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from identity.errors import Malformed
from sync import limits

MAX_NAME_CHARS = 64
MAX_TITLE_CHARS = 120
MAX_SHORT_CHARS = 200
MAX_NOTE_CHARS = 500
MAX_DESCRIPTION_CHARS = 2_000
MAX_POST_CHARS = 4_000
MAX_CHARTER_CHARS = 20_000
MAX_SKILLS = 16
MAX_EMOJI_CHARS = 16
MAX_UNIT_CHARS = 16
MAX_AMOUNT = 10**12
SALT_BYTES = 16

# Short display text: no C0/C1 controls, zero-width or bidi-control characters at all.
_SHORT_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
# Long text may break lines and use tabs; everything else of the above is refused.
_LONG_FORBIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
_CURRENCY = re.compile(r"[A-Z]{3}")


class InvalidBody(Malformed):
    """An op body does not match its kind's schema; the op is kept and rejected."""


def exact_keys(body: Any, keys: frozenset[str], kind: str) -> dict[str, Any]:
    if type(body) is not dict or body.keys() != keys:
        raise InvalidBody(f"{kind} body must have exactly the fields {', '.join(sorted(keys))}")
    return body


def short_text(value: Any, what: str, max_chars: int = MAX_NAME_CHARS) -> str:
    """Names, titles, labels: non-blank, bounded, no control or invisible characters."""
    if type(value) is not str:
        raise InvalidBody(f"{what} must be text")
    if len(value) > max_chars:
        raise InvalidBody(f"{what} is longer than {max_chars} characters")
    if not value.strip():
        raise InvalidBody(f"{what} must not be blank")
    if _SHORT_FORBIDDEN.search(value):
        raise InvalidBody(f"{what} contains control or invisible characters")
    return value


def long_text(value: Any, what: str, max_chars: int, *, allow_blank: bool = False) -> str:
    """Posts, descriptions, charters: newlines and tabs allowed, bidi and other controls not."""
    if type(value) is not str:
        raise InvalidBody(f"{what} must be text")
    if len(value) > max_chars:
        raise InvalidBody(f"{what} is longer than {max_chars} characters")
    if not allow_blank and not value.strip():
        raise InvalidBody(f"{what} must not be blank")
    if _LONG_FORBIDDEN.search(value):
        raise InvalidBody(f"{what} contains control or invisible characters")
    return value


def optional_short(value: Any, what: str, max_chars: int = MAX_NAME_CHARS) -> str | None:
    return None if value is None else short_text(value, what, max_chars)


def optional_long(value: Any, what: str, max_chars: int) -> str | None:
    return None if value is None else long_text(value, what, max_chars)


def op_ref(value: Any, what: str) -> bytes:
    if type(value) is not bytes or len(value) != limits.OP_ID_BYTES:
        raise InvalidBody(f"{what} must be an op id (32 bytes)")
    return value


def optional_op_ref(value: Any, what: str) -> bytes | None:
    return None if value is None else op_ref(value, what)


def member_ref(value: Any, what: str) -> bytes:
    if type(value) is not bytes or len(value) != limits.MEMBER_ID_BYTES:
        raise InvalidBody(f"{what} must be a member id (32 bytes)")
    return value


def one_of(value: Any, allowed: Collection[str], what: str) -> str:
    if type(value) is not str or value not in allowed:
        raise InvalidBody(f"{what} must be one of {', '.join(sorted(allowed))}")
    return value


def boolean(value: Any, what: str) -> bool:
    if type(value) is not bool:
        raise InvalidBody(f"{what} must be true or false")
    return value


def amount(value: Any, what: str = "amount") -> int:
    if type(value) is not int or not 1 <= value <= MAX_AMOUNT:
        raise InvalidBody(f"{what} must be an integer from 1 to {MAX_AMOUNT} (minor units)")
    return value


def optional_amount(value: Any, what: str = "amount") -> int | None:
    return None if value is None else amount(value, what)


def currency(value: Any) -> str:
    if type(value) is not str or not _CURRENCY.fullmatch(value):
        raise InvalidBody("currency must be three capital letters (ISO 4217 style)")
    return value


def percent(value: Any, what: str, low: int) -> int:
    if type(value) is not int or not low <= value <= 100:
        raise InvalidBody(f"{what} must be an integer from {low} to 100")
    return value


def timestamp(value: Any, what: str) -> int:
    if type(value) is not int or not 0 <= value <= limits.MAX_TS:
        raise InvalidBody(f"{what} must be seconds since 1970 (0 to 2^40 - 1)")
    return value


def optional_timestamp(value: Any, what: str) -> int | None:
    return None if value is None else timestamp(value, what)


def short_text_list(value: Any, what: str, max_items: int, max_chars: int) -> tuple[str, ...]:
    if type(value) is not list or len(value) > max_items:
        raise InvalidBody(f"{what} must be a list of at most {max_items} items")
    items = tuple(short_text(item, what, max_chars) for item in value)
    if len(set(items)) != len(items):
        raise InvalidBody(f"{what} must not repeat an item")
    return items
