"""Provides the cart, orders and sales as the TUI shows them: line flags, words, dates.

Everything here is plain data and text (no widgets, no network of its own), so the screens stay
small and the wording is the same on every screen and in every notification.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from protocol.messages.commerce import (
    BLOCKING_PROBLEMS,
    Cart,
    CartLine,
    CheckoutFailure,
    LineProblem,
    Order,
    OrderSummary,
    describe_failure,
)
from protocol.money import format_price


@dataclass(frozen=True)
class LineNote:
    """One flag of a cart line, e.g. ``only 2 left``.

    Attributes:
        text: the flag in a few words.
        blocking: whether it stops a checkout (a changed price only warns).
    """

    text: str
    blocking: bool


def for_sale(line: CartLine) -> bool:
    """Whether the line's item can still be bought at all (not deleted, not made private)."""
    return LineProblem.DELETED not in line.problems and LineProblem.PRIVATE not in line.problems


def line_notes(line: CartLine, currency: str) -> list[LineNote]:
    """The flags of a line, most serious first: ``deleted``, ``now private``, ``only 2 left``,
    ``sold out``, ``price was €4.00``."""
    notes: list[LineNote] = []
    problems = set(line.problems)
    if LineProblem.DELETED in problems:
        notes.append(LineNote("deleted", blocking=True))
    elif LineProblem.PRIVATE in problems:
        notes.append(LineNote("now private", blocking=True))
    elif LineProblem.OUT_OF_STOCK in problems:
        words = "sold out" if line.stock <= 0 else f"only {line.stock:,} left"
        notes.append(LineNote(words, blocking=True))
    if LineProblem.PRICE_CHANGED in problems and for_sale(line):
        was = format_price(line.added_price_cents, currency)
        notes.append(LineNote(f"price was {was}", blocking=False))
    return notes


def blocking_failures(cart: Cart) -> list[CheckoutFailure]:
    """The lines that stop a checkout now, as the server would name them when refusing it."""
    failures: list[CheckoutFailure] = []
    for line in cart.lines:
        for problem in line.problems:
            if problem in BLOCKING_PROBLEMS:
                failures.append(
                    CheckoutFailure(
                        item_id=line.item_id,
                        title=line.title,
                        reason=problem,
                        quantity=line.quantity,
                        stock=line.stock,
                        price_cents=line.price_cents,
                        added_price_cents=line.added_price_cents,
                    )
                )
                break  # one reason per line is enough to act on
    return failures


def failure_words(failures: list[CheckoutFailure], currency: str) -> list[str]:
    """One sentence per failing line, e.g. ``only 1 of 'Sunset' left (you want 2)``."""

    def money(cents: int) -> str:
        return format_price(cents, currency)

    return [describe_failure(failure, money) for failure in failures]


def shown_total(cart: Cart, quantity: Callable[[CartLine], int]) -> int:
    """The cart's total with the quantities on screen (some may still be on their way)."""
    return sum(line.price_cents * quantity(line) for line in cart.lines if for_sale(line))


def units(count: int) -> str:
    """``1 unit``, ``3 units``."""
    return f"{count:,} unit{'' if count == 1 else 's'}"


def items(count: int) -> str:
    """``1 item``, ``3 items``."""
    return f"{count:,} item{'' if count == 1 else 's'}"


def format_when(timestamp: float) -> str:
    """A server timestamp as a local date and time: ``2026-11-25 10:17``."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


def order_contents(summary: OrderSummary) -> str:
    """``Sunset no. 1`` or ``Sunset no. 1 and 2 more``."""
    if summary.line_count > 1:
        return f"{summary.first_title} and {summary.line_count - 1} more"
    return summary.first_title


def summary_of(order: Order) -> OrderSummary:
    """The listing entry of a full order (for an order placed here, before any reload)."""
    return OrderSummary(
        id=order.id,
        created_at=order.created_at,
        total_cents=order.total_cents,
        currency=order.currency,
        first_title=order.lines[0].title if order.lines else "",
        line_count=len(order.lines),
        units=sum(line.quantity for line in order.lines),
    )


__all__ = [
    "LineNote",
    "blocking_failures",
    "failure_words",
    "for_sale",
    "format_when",
    "items",
    "line_notes",
    "order_contents",
    "shown_total",
    "summary_of",
    "units",
]
