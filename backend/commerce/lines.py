"""Provides cart lines joined with their items' current state, and how they are judged.

The same judgement serves the cart view (flags shown to the person) and checkout (what blocks the
purchase), so the two can never disagree about a line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from protocol.messages.commerce import BLOCKING_PROBLEMS, Cart, CartLine, LineProblem


@dataclass(frozen=True, slots=True)
class ItemState:
    """An item as it is now."""

    owner_id: int
    title: str
    price_cents: int
    stock: int
    public: bool


@dataclass(frozen=True, slots=True)
class StoredLine:
    """A cart line as stored (title and price as seen when added) and its item now.

    Attributes:
        item: The item's current state, or ``None`` when it was deleted.
    """

    item_id: int
    quantity: int
    title: str
    price_cents: int
    added_at: float
    item: ItemState | None

    @property
    def for_sale(self) -> bool:
        """Whether the item still exists and is public."""
        return self.item is not None and self.item.public

    @property
    def problems(self) -> list[LineProblem]:
        """Why the line cannot be bought as it stands, in a stable order."""
        if self.item is None:
            return [LineProblem.DELETED]
        if not self.item.public:
            # Nothing more is said about a private item: its price and stock are not ours to see.
            return [LineProblem.PRIVATE]
        problems: list[LineProblem] = []
        if self.item.price_cents != self.price_cents:
            problems.append(LineProblem.PRICE_CHANGED)
        if self.item.stock < self.quantity:
            problems.append(LineProblem.OUT_OF_STOCK)
        return problems

    @property
    def unit_price_cents(self) -> int:
        """The price a checkout would charge per unit (the remembered one when not for sale)."""
        if self.item is not None and self.item.public:
            return self.item.price_cents
        return self.price_cents

    def view(self) -> CartLine:
        """The line as the protocol shows it."""
        visible = self.item if self.item is not None and self.item.public else None
        price = visible.price_cents if visible else self.price_cents
        return CartLine(
            item_id=self.item_id,
            title=visible.title if visible else self.title,
            quantity=self.quantity,
            price_cents=price,
            added_price_cents=self.price_cents,
            stock=visible.stock if visible else 0,
            line_total_cents=price * self.quantity,
            problems=self.problems,
            added_at=self.added_at,
        )


def cart_total(lines: Iterable[StoredLine]) -> int:
    """What a checkout would charge now: every line still for sale at its current price."""
    return sum(line.unit_price_cents * line.quantity for line in lines if line.for_sale)


def cart_of(lines: list[StoredLine]) -> Cart:
    """The cart as the protocol shows it."""
    views = [line.view() for line in lines]
    return Cart(
        lines=views,
        total_cents=cart_total(lines),
        units=sum(line.quantity for line in lines),
        ready=bool(lines) and not any(BLOCKING_PROBLEMS.intersection(v.problems) for v in views),
    )
