"""Provides what the commerce services ask of storage: carts, checkout and the order book.

Three repositories: :class:`CartRepository` (a user's cart lines, and checkout, which turns them
into an order), :class:`OrderRepository` (orders and sales, read back in keyset batches) and
:class:`SalesReportRepository` (a seller's sales summed per period and item, and stock levels).

Every change to a cart reads the state it depends on, lets the service decide (a plain
function, called inside the transaction, that raises a :class:`~protocol.errors.PixmartError`
to refuse) and writes the decision, all in one transaction: a refusal rolls back, and nothing
another transaction or server process does can slip in between the decision and the write.
The rules stay with the services; the repositories only keep them atomic.

The implementations (``sqlite_repository``, ``postgres_repository``) give the same answers; the
contract suite ``tests/contract/test_commerce_repository.py`` holds them to that.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from backend.commerce.lines import ItemState, StoredLine
from protocol.messages.commerce import Order, OrderSummary, Sale
from protocol.messages.sales import StockItem

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CartSlot:
    """What adding an item to a cart depends on, read in the adding transaction.

    Attributes:
        item: The item as it is now, or ``None`` when there is no such item.
        in_cart: Units of the item already in the cart (0 when it has no line).
        line_count: Distinct items in the cart.
    """

    item: ItemState | None
    in_cart: int
    line_count: int


@dataclass(frozen=True, slots=True)
class LineWrite:
    """The cart line an add stores: units wanted, and the title and price to remember."""

    quantity: int
    title: str
    price_cents: int


#: Decides an add from the slot: the line to store, or raises to refuse.
AddDecision = Callable[[CartSlot], LineWrite]
#: Decides a quantity change from the line (``None`` when not in the cart): the new quantity,
#: or raises to refuse.
QuantityDecision = Callable[[StoredLine | None], int]
#: Approves a checkout of these cart lines: the order's total in cents, or raises to refuse.
Approval = Callable[[list[StoredLine]], int]


@dataclass(frozen=True, slots=True)
class StockChange:
    """An item whose stock a checkout took, as it is after the commit (for live events)."""

    item_id: int
    item: ItemState


@dataclass(frozen=True, slots=True)
class CheckoutResult:
    """The order of a checkout.

    Attributes:
        replayed: The checkout key had placed this order before; nothing changed now.
        stock_changes: The items whose stock this checkout took (empty when replayed).
    """

    order: Order
    replayed: bool
    stock_changes: tuple[StockChange, ...]


class StockGuardError(Exception):
    """The guarded stock update of some lines found fewer units than approved.

    The checkout was rolled back. Approval sees the items locked (or the writer serialised), so
    this is the last line of defence against overselling, not a path a checkout should take.
    """

    def __init__(self, lines: tuple[StoredLine, ...]) -> None:
        super().__init__(f"stock changed while buying items {[line.item_id for line in lines]}")
        self.lines = lines


@dataclass(frozen=True, slots=True)
class Keyed(Generic[T]):
    """A row of a newest-first listing and its position: the next batch continues below it."""

    position: int
    row: T


@dataclass(frozen=True, slots=True)
class BuyerOrder:
    """An order with the id of the user who placed it (for the access check)."""

    buyer_id: int
    order: Order


class CartRepository(Protocol):
    """Users' carts, and checkout: a cart becoming an order, all or nothing."""

    async def lines(self, user_id: int) -> list[StoredLine]:
        """The user's cart lines, oldest first, each with its item's current state.

        One snapshot: lines and items are read as committed at the same moment.
        """

    async def add(
        self, user_id: int, item_id: int, decide: AddDecision, *, now: float
    ) -> list[StoredLine]:
        """Store the line ``decide`` makes of the item's :class:`CartSlot` (added or updated
        at ``now``, keeping its first ``added_at``); return the cart as committed.
        """

    async def set_quantity(
        self, user_id: int, item_id: int, decide: QuantityDecision, *, now: float
    ) -> list[StoredLine]:
        """Set the line's quantity to what ``decide`` makes of it; return the cart as committed.

        The remembered title and price stay as they were.
        """

    async def remove(self, user_id: int, item_id: int) -> list[StoredLine] | None:
        """Delete the item's line; the cart as committed, or ``None`` if it had no such line."""

    async def clear(self, user_id: int) -> None:
        """Delete every line of the user's cart."""

    async def checkout(
        self,
        user_id: int,
        checkout_key: str,
        approve: Approval,
        *,
        currency: str,
        now: float,
    ) -> CheckoutResult:
        """Place the order of the user's whole cart in one transaction, or change nothing.

        If the user placed an order with ``checkout_key`` before, that order is returned as
        replayed, whatever the cart holds now. Otherwise ``approve`` judges the cart lines as
        they are (the items cannot change until the transaction ends) and names the total;
        then every line's stock is taken with a guarded update, the order is written with its
        lines at the prices paid (in cart order) and the cart is emptied. Concurrent checkouts,
        in this process or others, never sell more units than the stock.

        Raises:
            StockGuardError: a guarded stock update failed (nothing was changed).
            Exception: whatever ``approve`` raised (nothing was changed).
        """


class OrderRepository(Protocol):
    """Placed orders and their lines, which never change after checkout.

    Listings are newest first by id, in batches below a position (``None``: from the newest).
    """

    async def orders(
        self, user_id: int, *, below: int | None, limit: int
    ) -> list[Keyed[OrderSummary]]:
        """Up to ``limit`` of the user's orders, each summarised by its first line."""

    async def sales(self, seller_id: int, *, below: int | None, limit: int) -> list[Keyed[Sale]]:
        """Up to ``limit`` order lines of the seller's items, with their buyers' names."""

    async def order(self, order_id: int) -> BuyerOrder | None:
        """The order with its lines in the order they were bought, or ``None``."""


@dataclass(frozen=True, slots=True)
class Periods:
    """How sales times fall into periods: period ``floor((created_at + shift) / width)``.

    Both in seconds; times are seconds since the epoch, so periods are UTC days or weeks.
    """

    width: int
    shift: int = 0


@dataclass(frozen=True, slots=True)
class PeriodSales:
    """What one seller sold in one currency and one period."""

    currency: str
    period: int
    revenue_cents: int
    units: int
    orders: int


@dataclass(frozen=True, slots=True)
class ItemSales:
    """One item's sales in one currency, with its places among the seller's items.

    Attributes:
        title: The title of its latest sale.
        stock: Units left now; ``None`` when the item was deleted.
        by_revenue: Its place (1 = best) by revenue among the items sold in this currency.
        by_units: Its place by units.
    """

    currency: str
    item_id: int
    title: str
    revenue_cents: int
    units: int
    stock: int | None
    by_revenue: int
    by_units: int


@dataclass(frozen=True, slots=True)
class StockLevels:
    """The seller's items with little or no stock: the first few of each kind, and counts."""

    low: list[StockItem]
    low_count: int
    sold_out: list[StockItem]
    sold_out_count: int


class SalesReportRepository(Protocol):
    """Aggregates of one seller's sales and stock, computed by the database (GROUP BY).

    Every figure counts the order lines of the seller's own items only, in orders placed at
    ``since <= created_at < until``, kept apart by the currency the order was paid in.
    """

    async def sales_by_period(
        self, seller_id: int, periods: Periods, *, since: float, until: float
    ) -> list[PeriodSales]:
        """Revenue, units and orders per currency and period (periods without sales absent)."""

    async def top_items(
        self, seller_id: int, *, since: float, until: float, limit: int
    ) -> list[ItemSales]:
        """Per currency, the items among the ``limit`` best by revenue or by units.

        Places break ties by the other measure, then by item id.
        """

    async def stock_levels(self, seller_id: int, *, threshold: int, limit: int) -> StockLevels:
        """The seller's items with 1 to ``threshold`` units (fewest first) and with none (by
        id), at most ``limit`` of each, with how many there are of each; one snapshot.
        """


class CommerceRepository(CartRepository, OrderRepository, SalesReportRepository, Protocol):
    """Everything commerce stores, as one engine's implementation provides it."""
