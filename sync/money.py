"""Money as people type it ("12.50", "EUR") and as ops carry it (1250 minor units).

The checks every front end shares before an op is signed (the command line, the control
API, the client's forms): a currency must be an ISO 4217 code of a circulating currency
(the usual slips, such as ``€``, ``EURO`` or ``US D``, get a hint naming the code meant),
and an amount must be positive, have no more decimals than its currency has, and be at
most `MAX_MAJOR_UNITS` of it. The fold itself is more lenient (any three capital letters,
up to 10^12 minor units, docs/OPS.md): these checks keep typos from becoming signed,
permanent records; they do not change what the circle accepts from others.
"""

from __future__ import annotations

import re

from kith.identity.errors import UsageError

MAX_MAJOR_UNITS = 10_000_000
"""The largest amount one contribution or spend may name: ten million of its currency
(10,000,000.00 EUR; 10,000,000 JPY). Far above what a circle's fund handles, and far below
the fold's own bound, so a slip of the keyboard is caught."""


def _codes(text: str) -> frozenset[str]:
    return frozenset(text.split())


CURRENCIES = _codes(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN
    BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR
    FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD
    JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT
    MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG
    QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB
    TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VED VES VND VUV WST XAF XCD XCG XOF
    XPF YER ZAR ZMW ZWG ZWL
    """
)
"""ISO 4217 codes of circulating currencies (not funds, metals or test codes)."""

ZERO_DECIMALS = _codes("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF")
THREE_DECIMALS = _codes("BHD IQD JOD KWD LYD OMR TND")

COMMON_MISTAKES = {
    "€": "EUR", "EURO": "EUR", "EUROS": "EUR", "EU": "EUR",
    "$": "USD", "US$": "USD", "USD$": "USD", "DOLLAR": "USD", "DOLLARS": "USD", "US": "USD",
    "£": "GBP", "POUND": "GBP", "POUNDS": "GBP", "UKP": "GBP", "STG": "GBP", "GB£": "GBP",
    "¥": "JPY", "YEN": "JPY", "RMB": "CNY", "YUAN": "CNY", "元": "CNY",
    "₹": "INR", "RS": "INR", "RUPEE": "INR", "RUPEES": "INR",
    "₺": "TRY", "TL": "TRY", "₽": "RUB", "RUR": "RUB", "₪": "ILS", "NIS": "ILS",
    "₩": "KRW", "WON": "KRW", "₱": "PHP", "₦": "NGN", "₴": "UAH", "₫": "VND",
    "C$": "CAD", "CA$": "CAD", "A$": "AUD", "AU$": "AUD", "NZ$": "NZD", "R$": "BRL", "MX$": "MXN",
    "HK$": "HKD", "S$": "SGD", "FR": "CHF", "SFR": "CHF", "ZŁ": "PLN", "ZL": "PLN",
    "KR": "SEK, NOK or DKK", "KČ": "CZK", "FT": "HUF", "LEI": "RON",
}  # fmt: skip
"""What people type for a currency, and the code they meant."""

_AMOUNT = re.compile(r"([+-]?)(\d+)(?:[.,](\d+))?")


class MoneyError(UsageError):
    """An amount or currency that cannot be right; the message says which and why."""


def decimals(currency: str) -> int:
    """Minor units per major unit, as a power of ten (ISO 4217's exponent; 2 when unknown)."""
    code = currency.upper()
    return 0 if code in ZERO_DECIMALS else 3 if code in THREE_DECIMALS else 2


def check_currency(text: str) -> str:
    """The ISO 4217 code ``text`` names (``eur`` -> ``EUR``), else `MoneyError` with a hint."""
    code = text.strip().upper()
    if code in CURRENCIES and code == text.strip().upper() and " " not in text.strip():
        return code
    compact = "".join(text.split()).upper()
    meant = COMMON_MISTAKES.get(compact) or (compact if compact in CURRENCIES else None)
    hint = f"use {meant}" if meant else "use a three-letter ISO 4217 code such as EUR, USD or GBP"
    raise MoneyError(f"{text!r} is not a currency code: {hint}")


def largest(currency: str) -> int:
    """The largest amount, in minor units, a contribution or spend in ``currency`` may name."""
    minor_per_major: int = 10 ** decimals(currency)  # int ** int is Any to mypy (a negative power is a float)
    return MAX_MAJOR_UNITS * minor_per_major


def _too_large(what: str, currency: str) -> str:
    return f"{what} is more than {MAX_MAJOR_UNITS:,} {currency}, the most one entry may name"


def check_minor(amount: int, currency: str) -> int:
    """An amount in minor units (as the control API takes it): positive and at most `largest`."""
    if type(amount) is not int:
        raise MoneyError("amount must be a whole number of minor units (1250 for 12.50 EUR)")
    if amount <= 0:
        raise MoneyError(f"amount must be more than zero (got {amount})")
    if amount > largest(currency):
        raise MoneyError(_too_large("amount", currency))
    return amount


def parse_amount(text: str, currency: str) -> int:
    """'12.50' in EUR -> 1250 minor units, with one specific message for each way it is wrong."""
    places = decimals(currency)
    example = "12" if places == 0 else "12." + "5".ljust(places, "0")
    match = _AMOUNT.fullmatch(text.strip())
    if not match:
        raise MoneyError(f"amount {text!r} is not a number; write it like {example}")
    sign, whole, fraction = match.group(1), match.group(2), match.group(3) or ""
    if sign == "-":
        raise MoneyError(f"amount {text!r} is negative; amounts are more than zero")
    if len(fraction) > places:
        allowed = "no decimals" if places == 0 else f"at most {places} decimals"
        raise MoneyError(f"amount {text!r} has too many decimals: {currency} takes {allowed}, like {example}")
    if len(whole) > 15:  # bounded before int(): no 4,300-digit conversions
        raise MoneyError(_too_large(f"amount {text!r}", currency))
    minor_per_major: int = 10**places
    minor = int(whole) * minor_per_major + (int(fraction.ljust(places, "0")) if places else 0)
    if minor == 0:
        raise MoneyError(f"amount {text!r} is zero; amounts are more than zero")
    if minor > largest(currency):
        raise MoneyError(_too_large(f"amount {text!r}", currency))
    return minor


def format_amount(minor: int, currency: str) -> str:
    places = decimals(currency)
    if places == 0:
        return f"{minor} {currency}"
    sign = "-" if minor < 0 else ""
    minor = abs(minor)
    return f"{sign}{minor // 10**places}.{minor % 10**places:0{places}d} {currency}"
