"""Amounts as people type and read them ("12.50 EUR"): the shared checks of `sync.money`."""

from __future__ import annotations

from kith.sync.money import check_currency, decimals, format_amount, parse_amount

__all__ = ["check_currency", "decimals", "format_amount", "parse_amount"]
