"""Amounts as people type and read them ("12.50 EUR"), and as kith stores them (1250)."""

from __future__ import annotations

import re

from identity.errors import UsageError

ZERO_DECIMAL = {"JPY", "KRW", "VND", "CLP", "ISK", "UGX", "XAF", "XOF"}
_AMOUNT = re.compile(r"(\d{1,12})(?:[.,](\d{1,2}))?")


def decimals(currency: str) -> int:
    return 0 if currency.upper() in ZERO_DECIMAL else 2


def parse_amount(text: str, currency: str) -> int:
    """'12.50' in EUR -> 1250 minor units; refuses negative, zero and over-precise input."""
    match = _AMOUNT.fullmatch(text.strip())
    places = decimals(currency)
    if not match or (match.group(2) and len(match.group(2)) > places):
        unit = "a whole number" if places == 0 else f"a number with at most {places} decimals"
        raise UsageError(f"amount {text!r} must be {unit}, like {'12' if places == 0 else '12.50'}")
    whole, fraction = match.group(1), (match.group(2) or "").ljust(places, "0")
    minor = int(whole) * 10**places + (int(fraction) if fraction else 0)
    if minor <= 0:
        raise UsageError("amount must be more than zero")
    return minor


def format_amount(minor: int, currency: str) -> str:
    places = decimals(currency)
    if places == 0:
        return f"{minor} {currency}"
    sign = "-" if minor < 0 else ""
    minor = abs(minor)
    return f"{sign}{minor // 10**places}.{minor % 10**places:0{places}d} {currency}"
