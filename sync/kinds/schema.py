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

from kith.identity.errors import Malformed
from kith.sync import limits
from kith.sync.kinds.records import MAX_CLOSES_S, MIN_CLOSES_S

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
    """An op body does not match its kind's schema; the op is kept and rejected.

    The message is ``"<field path>: <rule>"`` with a rule from a fixed vocabulary
    (docs/OPS.md, "Body schemas"), because rejection reasons are part of the state hash.
    """

    def __init__(self, field: str, rule: str, limit: int | None = None) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule
        self.limit = limit
        """The bound a "too long" or "too many items" broke (for messages to the author)."""


def exact_keys(body: Any, keys: frozenset[str], where: str) -> dict[str, Any]:
    if type(body) is not dict or body.keys() != keys:
        raise InvalidBody(where, "wrong fields")
    return body


def exact_keys_optional(body: Any, keys: frozenset[str], optional: frozenset[str], where: str) -> dict[str, Any]:
    """Like `exact_keys`, with ``optional`` keys that may also be present (absent is the
    older form of the op, so bodies written before they existed keep their bytes)."""
    if type(body) is not dict or not keys <= body.keys() <= keys | optional:
        raise InvalidBody(where, "wrong fields")
    return body


def _text(value: Any, field: str, max_chars: int, forbidden: re.Pattern[str], allow_blank: bool) -> str:
    if type(value) is not str:
        raise InvalidBody(field, "wrong type")
    if len(value) > max_chars:
        raise InvalidBody(field, "too long", max_chars)
    if not allow_blank and not value.strip():
        raise InvalidBody(field, "blank")
    if forbidden.search(value):
        raise InvalidBody(field, "forbidden characters")
    return value


def short_text(value: Any, field: str, max_chars: int = MAX_NAME_CHARS) -> str:
    """Names, titles, labels: non-blank, bounded, no control or invisible characters."""
    return _text(value, field, max_chars, _SHORT_FORBIDDEN, False)


def long_text(value: Any, field: str, max_chars: int, *, allow_blank: bool = False) -> str:
    """Posts, descriptions, charters: newlines and tabs allowed, bidi and other controls not."""
    return _text(value, field, max_chars, _LONG_FORBIDDEN, allow_blank)


def optional_short(value: Any, field: str, max_chars: int = MAX_NAME_CHARS) -> str | None:
    return None if value is None else short_text(value, field, max_chars)


def optional_long(value: Any, field: str, max_chars: int) -> str | None:
    return None if value is None else long_text(value, field, max_chars)


def fixed_bytes(value: Any, field: str, size: int) -> bytes:
    if type(value) is not bytes:
        raise InvalidBody(field, "wrong type")
    if len(value) != size:
        raise InvalidBody(field, "wrong size")
    return value


def op_ref(value: Any, field: str) -> bytes:
    return fixed_bytes(value, field, limits.OP_ID_BYTES)


def optional_op_ref(value: Any, field: str) -> bytes | None:
    return None if value is None else op_ref(value, field)


def content_blob(value: Any, field: str, epochs: Collection[bytes]) -> bytes:
    """Sealed content (`sync.content`): opaque to the fold, but of a sane size and sealed
    under an epoch the circle has at this position."""
    from kith.sync.content import MAX_BLOB, MIN_BLOB, blob_epoch

    if type(value) is not bytes:
        raise InvalidBody(field, "wrong type")
    if not MIN_BLOB <= len(value) <= MAX_BLOB:
        raise InvalidBody(field, "bad size")
    if blob_epoch(value) not in epochs:
        raise InvalidBody(field, "unknown epoch")
    return value


def member_ref(value: Any, field: str) -> bytes:
    return fixed_bytes(value, field, limits.MEMBER_ID_BYTES)


def one_of(value: Any, allowed: Collection[str], field: str) -> str:
    if type(value) is not str:
        raise InvalidBody(field, "wrong type")
    if value not in allowed:
        raise InvalidBody(field, "unknown value")
    return value


def boolean(value: Any, field: str) -> bool:
    if type(value) is not bool:
        raise InvalidBody(field, "wrong type")
    return value


def integer(value: Any, field: str, low: int, high: int) -> int:
    if type(value) is not int:
        raise InvalidBody(field, "wrong type")
    if not low <= value <= high:
        raise InvalidBody(field, "out of range")
    return value


def amount(value: Any, field: str = "amount") -> int:
    """Money and quantities: integers in minor units, 1 to 10^12. Never floats."""
    return integer(value, field, 1, MAX_AMOUNT)


def optional_amount(value: Any, field: str = "amount") -> int | None:
    return None if value is None else amount(value, field)


def currency(value: Any, field: str = "currency") -> str:
    if type(value) is not str:
        raise InvalidBody(field, "wrong type")
    if not _CURRENCY.fullmatch(value):
        raise InvalidBody(field, "bad format")
    return value


_MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")


def month(value: Any, field: str) -> str:
    """A calendar month, ``"YYYY-MM"`` (years 2000..9999): such strings sort as months do."""
    if type(value) is not str:
        raise InvalidBody(field, "wrong type")
    match = _MONTH.fullmatch(value)
    if match is None or int(match.group(1)) < 2000:
        raise InvalidBody(field, "bad format")
    return value


def percent(value: Any, field: str, low: int) -> int:
    return integer(value, field, low, 100)


def closing_window(value: Any, field: str) -> int:
    """Seconds a proposal stays open: `MIN_CLOSES_S` .. `MAX_CLOSES_S`."""
    return integer(value, field, MIN_CLOSES_S, MAX_CLOSES_S)


def timestamp(value: Any, field: str) -> int:
    return integer(value, field, 0, limits.MAX_TS)


def optional_timestamp(value: Any, field: str) -> int | None:
    return None if value is None else timestamp(value, field)


def short_text_list(value: Any, field: str, max_items: int, max_chars: int) -> tuple[str, ...]:
    if type(value) is not list:
        raise InvalidBody(field, "wrong type")
    if len(value) > max_items:
        raise InvalidBody(field, "too many items", max_items)
    items = tuple(short_text(item, field, max_chars) for item in value)
    if len(set(items)) != len(items):
        raise InvalidBody(field, "repeated item")
    return items
