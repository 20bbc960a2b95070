"""Prices typed by people become exact integer minor units, never through float."""

from __future__ import annotations

import pytest

from protocol.catalogue_client import format_price, parse_price


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("12.50", "EUR", 1250),
        ("0.1", "EUR", 10),
        (" 3 ", "EUR", 300),
        ("19.99", "USD", 1999),
        ("0.07", "EUR", 7),  # 0.07 * 100 is 7.000000000000001 in float
        ("1e2", "EUR", 10_000),
        ("1500", "JPY", 1500),
        ("1.250", "KWD", 1250),
        ("9999999999.99", "EUR", 999_999_999_999),
    ],
)
def test_prices_parse_exactly(text: str, currency: str, minor: int) -> None:
    assert parse_price(text, currency) == minor


@pytest.mark.parametrize(
    ("text", "currency"),
    [
        ("12.505", "EUR"),
        ("1.5", "JPY"),
        ("-1", "EUR"),
        ("abc", "EUR"),
        ("NaN", "EUR"),
        ("inf", "EUR"),
        ("", "EUR"),
        ("12,50", "EUR"),
    ],
)
def test_bad_prices_are_refused(text: str, currency: str) -> None:
    with pytest.raises(ValueError):
        parse_price(text, currency)


def test_prices_format_with_the_currency_digits() -> None:
    assert format_price(1250, "EUR") == "12.50 EUR"
    assert format_price(7, "EUR") == "0.07 EUR"
    assert format_price(1500, "JPY") == "1500 JPY"
    assert format_price(0, "EUR") == "0.00 EUR"
