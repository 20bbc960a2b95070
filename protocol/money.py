"""Provides money as people read and type it: integer minor units of an ISO 4217 currency.

One format everywhere: the TUI, the scripting CLI and the server's error messages all show
``€12.50`` (``12.50 CHF`` for a currency without a symbol here), and all read what a person
typed with :func:`parse_price`, exactly, through :class:`~decimal.Decimal` and never float.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Final

#: The currency a server that has not said otherwise sells in.
DEFAULT_CURRENCY: Final = "EUR"

# ISO 4217 minor units of the currencies that do not use two decimals.
_MINOR_DIGITS: Final[dict[str, int]] = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG"), 0),
    **dict.fromkeys(("RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}

_SYMBOLS: Final[dict[str, str]] = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥", "INR": "₹"}


def minor_digits(currency: str) -> int:
    """Decimals of ``currency``'s minor unit (2 for EUR, 0 for JPY)."""
    return _MINOR_DIGITS.get(currency.upper(), 2)


def format_price(cents: int, currency: str = DEFAULT_CURRENCY) -> str:
    """``1234`` in EUR → ``€12.34``; currencies without a symbol here → ``12.34 CHF``.

    Args:
        cents: the amount in the currency's minor units.
        currency: an ISO 4217 code, e.g. ``"EUR"``.
    """
    digits = minor_digits(currency)
    units, minor = divmod(abs(cents), 10**digits)
    amount = f"{units:,}" + (f".{minor:0{digits}d}" if digits else "")
    sign = "-" if cents < 0 else ""
    symbol = _SYMBOLS.get(currency.upper())
    if symbol is not None:
        return f"{sign}{symbol}{amount}"
    return f"{sign}{amount} {currency.upper()}"


def format_amount(cents: int, currency: str = DEFAULT_CURRENCY) -> str:
    """``1250`` → ``12.50``: the plain amount, as a person would type it back."""
    digits = minor_digits(currency)
    return f"{Decimal(cents).scaleb(-digits):.{digits}f}"


def parse_price(text: str, currency: str = DEFAULT_CURRENCY) -> int:
    """What a person typed (``12``, ``12.5``, ``12,50``, ``€1,200.00``) in minor units.

    A comma followed by other than three digits is a decimal comma; otherwise commas separate
    thousands. The currency's code or symbol may stand around the number.

    Raises:
        ValueError: not an amount, negative, or finer than the minor unit; the message says so.
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
    try:
        amount = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError(f"{text.strip()!r} is not a price; write it like 12.50") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"{text.strip()!r} is not a price; it must be zero or more")
    digits = minor_digits(currency)
    minor = amount.scaleb(digits)
    if minor != minor.to_integral_value():
        raise ValueError(f"{text.strip()!r} has more than {digits} decimals for {currency}")
    return int(minor)


__all__ = [
    "DEFAULT_CURRENCY",
    "format_amount",
    "format_price",
    "minor_digits",
    "parse_price",
]
