"""Money is read and shown one way everywhere: exact integer minor units, never through float."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.money import format_amount, format_price, minor_digits, parse_price


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
        ("12,50", "EUR", 1250),  # a decimal comma
        ("€1,200.00", "EUR", 120_000),  # a symbol and a thousands separator
        ("12.50 EUR", "EUR", 1250),  # the code
        ("1,200", "EUR", 120_000),  # three digits after the comma: thousands
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
        ("€", "EUR"),
    ],
)
def test_bad_prices_are_refused_in_words(text: str, currency: str) -> None:
    with pytest.raises(ValueError, match=r"price|decimals"):
        parse_price(text, currency)


@pytest.mark.parametrize(
    ("cents", "currency", "shown"),
    [
        (1250, "EUR", "€12.50"),
        (7, "EUR", "€0.07"),
        (1500, "JPY", "¥1,500"),
        (0, "EUR", "€0.00"),
        (1250, "CHF", "12.50 CHF"),
        (1250, "KWD", "1.250 KWD"),
        (-1250, "USD", "-$12.50"),
    ],
)
def test_prices_format_with_the_currency_digits(cents: int, currency: str, shown: str) -> None:
    assert format_price(cents, currency) == shown


@given(
    cents=st.integers(min_value=0, max_value=10**15),
    currency=st.sampled_from(["EUR", "USD", "JPY", "KWD", "CHF", "GBP"]),
)
def test_what_is_shown_reads_back_as_the_same_amount(cents: int, currency: str) -> None:
    assert parse_price(format_price(cents, currency), currency) == cents
    assert parse_price(format_amount(cents, currency), currency) == cents


def test_minor_digits_follow_iso_4217() -> None:
    assert (minor_digits("eur"), minor_digits("JPY"), minor_digits("KWD")) == (2, 0, 3)
