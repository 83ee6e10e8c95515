"""The money checks every front end runs before signing (sync/money.py): one line each."""

from __future__ import annotations

import pytest

from kith.sync.money import MoneyError, check_currency, check_minor, format_amount, parse_amount


@pytest.mark.parametrize(
    ("typed", "hint"),
    [("€", "use EUR"), ("EURO", "use EUR"), ("US D", "use USD"), ("$", "use USD"), ("£", "use GBP"),
     ("kr", "use SEK, NOK or DKK"), ("XYZ", "such as EUR, USD or GBP"), ("", "such as EUR")],
)  # fmt: skip
def test_currency_mistakes_name_the_code_meant(typed: str, hint: str) -> None:
    with pytest.raises(MoneyError, match=hint):
        check_currency(typed)


def test_currencies_are_iso_4217() -> None:
    assert check_currency("eur") == "EUR" and check_currency(" JPY ") == "JPY"


@pytest.mark.parametrize(
    ("text", "currency", "message"),
    [("-5", "EUR", "negative"), ("0", "EUR", "is zero"), ("0.00", "EUR", "is zero"), ("abc", "EUR", "not a number"),
     ("1.234", "EUR", "at most 2 decimals"), ("1.5", "JPY", "no decimals"),
     ("1000000000000", "EUR", "more than 10,000,000 EUR"), ("10000000.01", "EUR", "more than 10,000,000 EUR"),
     ("9" * 5000, "EUR", "more than 10,000,000 EUR")],
)  # fmt: skip
def test_each_bad_amount_gets_its_own_message(text: str, currency: str, message: str) -> None:
    with pytest.raises(MoneyError, match=message):
        parse_amount(text, currency)


def test_amounts_in_minor_units() -> None:
    assert parse_amount("12.5", "EUR") == 1250 and parse_amount("12,50", "EUR") == 1250
    assert parse_amount("10000000", "EUR") == 10**9 and parse_amount("500", "JPY") == 500
    assert parse_amount("1.5", "KWD") == 1500 and format_amount(1500, "KWD") == "1.500 KWD"
    assert check_minor(1, "EUR") == 1
    with pytest.raises(MoneyError, match="more than zero"):
        check_minor(-5, "EUR")
    with pytest.raises(MoneyError, match="more than 10,000,000 EUR"):
        check_minor(10**9 + 1, "EUR")
