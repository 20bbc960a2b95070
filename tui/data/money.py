"""Provides money as people read and type it in the server's currency (integer minor units)."""

from __future__ import annotations

from decimal import Decimal

from protocol import catalogue_client

_SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥", "INR": "₹"}


def format_price(cents: int, currency: str = "EUR") -> str:
    """``1234`` in EUR → ``€12.34``; currencies without a symbol here → ``12.34 CHF``.

    Args:
        cents: the amount in the currency's minor units.
        currency: an ISO 4217 code, e.g. ``"EUR"``.
    """
    digits = catalogue_client.minor_digits(currency)
    units, minor = divmod(abs(cents), 10**digits)
    amount = f"{units:,}" + (f".{minor:0{digits}d}" if digits else "")
    sign = "-" if cents < 0 else ""
    symbol = _SYMBOLS.get(currency.upper())
    if symbol is not None:
        return f"{sign}{symbol}{amount}"
    return f"{sign}{amount} {currency.upper()}"


def format_amount(cents: int, currency: str = "EUR") -> str:
    """``1250`` → ``12.50``: the plain amount, as a person would type it back."""
    digits = catalogue_client.minor_digits(currency)
    return f"{Decimal(cents).scaleb(-digits):.{digits}f}"


def parse_price(text: str, currency: str = "EUR") -> int:
    """What a person typed (``12``, ``12.5``, ``12,50``, ``€1,200.00``) in minor units.

    Raises:
        ValueError: not an amount, negative, or finer than the minor unit.
    """
    cleaned = text.strip().upper().replace(currency.upper(), "")
    for symbol in _SYMBOLS.values():
        cleaned = cleaned.replace(symbol, "")
    cleaned = cleaned.replace(" ", "").replace("_", "")
    if "," in cleaned and "." not in cleaned and len(cleaned.rsplit(",", 1)[1]) != 3:
        cleaned = cleaned.replace(",", ".")  # a decimal comma: 12,50
    cleaned = cleaned.replace(",", "")  # thousands separators: 1,200.00
    if not cleaned:
        raise ValueError("Enter a price, e.g. 12.50")
    return catalogue_client.parse_price(cleaned, currency)


def format_count(count: int) -> str:
    """``1203`` → ``1,203``."""
    return f"{count:,}"


__all__ = ["format_amount", "format_count", "format_price", "parse_price"]
