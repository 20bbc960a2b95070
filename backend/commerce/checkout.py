"""Provides :class:`CheckoutService`: the cart becomes an order in one transaction, or nothing does.

Inside one serialised write transaction: find an order already placed with the checkout key (a
retry returns it), re-check every line, take the stock with guarded updates, write the order and
its lines at the prices paid, and empty the cart. Any failure raises before the commit, so the
rollback leaves stock, orders and cart exactly as they were.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Final

import aiosqlite
import msgspec

from backend.commerce.lines import ItemState, StoredLine, cart_total, load_lines
from backend.commerce.orders import read_order
from backend.metrics import ServerMetrics
from backend.storage.database import Database
from protocol.catalogue_client import format_price
from protocol.errors import BadRequest, Conflict, ErrorCode, OutOfStock, PixmartError
from protocol.messages.commerce import (
    CheckoutFailure,
    LineProblem,
    Order,
    describe_failure,
)

#: The most one order may cost; keeps every sum far inside SQLite's 64-bit integers.
MAX_ORDER_CENTS: Final = 10**17


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


class CheckoutService:
    """Turns a user's cart into an order.

    Args:
        db: The database.
        currency: The server's currency, recorded on every order.
        metrics: Where checkout outcomes are counted, if anywhere.
    """

    def __init__(
        self, db: Database, *, currency: str, metrics: ServerMetrics | None = None
    ) -> None:
        self._db = db
        self._currency = currency
        self._metrics = metrics

    async def checkout(
        self, user_id: int, checkout_key: str, expected_total_cents: int
    ) -> CheckoutResult:
        """Buy the whole cart at ``expected_total_cents``, or nothing.

        Raises:
            BadRequest: the cart is empty, or the order would cost more than any order may.
            OutOfStock: every failing line lacks stock (``details["lines"]`` says which).
            Conflict: some line was deleted or made private, or the total is not the one the
                person confirmed (``details["lines"]`` says which lines and why).
        """
        if self._metrics is None:
            return await self._checkout(user_id, checkout_key, expected_total_cents)
        try:
            result = await self._checkout(user_id, checkout_key, expected_total_cents)
        except PixmartError as exc:
            self._metrics.checkout(exc.code.value)
            raise
        except Exception:
            self._metrics.checkout(ErrorCode.INTERNAL.value)
            raise
        self._metrics.checkout("replayed" if result.replayed else "placed")
        return result

    async def _checkout(
        self, user_id: int, checkout_key: str, expected_total_cents: int
    ) -> CheckoutResult:
        changes: tuple[StockChange, ...] = ()
        async with self._db.transaction() as conn:
            order_id = await _existing_order(conn, user_id, checkout_key)
            replayed = order_id is not None
            if order_id is None:
                lines = await load_lines(conn, user_id)
                if not lines:
                    raise BadRequest("Your cart is empty")
                total = cart_total(lines)
                self._check(lines, total, expected_total_cents)
                changes = await _take_stock(conn, lines)
                order_id = await self._place(conn, user_id, checkout_key, lines, total)
            order = await read_order(conn, order_id)
        assert order is not None  # placed or found in this very transaction
        return CheckoutResult(order=order, replayed=replayed, stock_changes=changes)

    def _check(self, lines: list[StoredLine], total: int, expected: int) -> None:
        """Raise, naming every failing line, unless the whole cart can be bought at ``expected``."""
        failures = _failures(lines, price_counts=total != expected)
        if not failures and total == expected:
            if total > MAX_ORDER_CENTS:
                raise BadRequest("This order would cost more than one order may; split it")
            return
        words = [describe_failure(failure, self._money) for failure in failures]
        if total != expected:
            words.append(f"the total is {self._money(total)}, not {self._money(expected)}")
        stock_only = total == expected and all(
            failure.reason is LineProblem.OUT_OF_STOCK for failure in failures
        )
        error: type[PixmartError] = OutOfStock if stock_only else Conflict
        raise error(
            "Nothing was bought: " + "; ".join(words),
            details={
                "lines": msgspec.to_builtins(failures),
                "total_cents": total,
                "expected_total_cents": expected,
            },
        )

    async def _place(
        self,
        conn: aiosqlite.Connection,
        user_id: int,
        checkout_key: str,
        lines: list[StoredLine],
        total: int,
    ) -> int:
        cursor = await conn.execute(
            "INSERT INTO orders (user_id, checkout_key, total_cents, currency, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (user_id, checkout_key, total, self._currency, time.time()),
        )
        order_id = cursor.lastrowid
        assert order_id is not None
        await conn.executemany(
            "INSERT INTO order_lines"
            " (order_id, item_id, seller_id, title, quantity, unit_price_cents)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [
                (order_id, line.item_id, item.owner_id, item.title, line.quantity, item.price_cents)
                for line in lines
                if (item := line.item) is not None
            ],
        )
        await conn.execute("DELETE FROM cart_lines WHERE user_id = ?", (user_id,))
        return order_id

    def _money(self, cents: int) -> str:
        return format_price(cents, self._currency)


async def _existing_order(conn: aiosqlite.Connection, user_id: int, key: str) -> int | None:
    rows = list(
        await conn.execute_fetchall(
            "SELECT id FROM orders WHERE user_id = ? AND checkout_key = ?", (user_id, key)
        )
    )
    return int(rows[0][0]) if rows else None


async def _take_stock(
    conn: aiosqlite.Connection, lines: list[StoredLine]
) -> tuple[StockChange, ...]:
    """Take each line's units; the lines were checked, the guard makes overselling impossible."""
    now = time.time()
    changes: list[StockChange] = []
    for line in lines:
        item = line.item
        assert item is not None and item.public  # checked by _check
        # The guard repeats the check in the statement itself, so stock can never go below zero
        # even if a future storage ran these transactions concurrently; rowcount says if it held.
        cursor = await conn.execute(
            "UPDATE items SET stock = stock - ?, updated_at = ?"
            " WHERE id = ? AND stock >= ? AND public = 1 AND price_cents = ?",
            (line.quantity, now, line.item_id, line.quantity, item.price_cents),
        )
        if cursor.rowcount != 1:
            raise OutOfStock(
                f"Nothing was bought: '{item.title}' changed while buying it; try again",
                details={"lines": msgspec.to_builtins([_failure(line, LineProblem.OUT_OF_STOCK)])},
            )
        changes.append(StockChange(line.item_id, replace(item, stock=item.stock - line.quantity)))
    return tuple(changes)


def _failures(lines: list[StoredLine], *, price_counts: bool) -> list[CheckoutFailure]:
    """Every (line, reason) that stops the checkout; price changes only if ``price_counts``."""
    return [
        _failure(line, problem)
        for line in lines
        for problem in line.problems
        # The person confirmed the current total: a price changed since adding is accepted.
        if price_counts or problem is not LineProblem.PRICE_CHANGED
    ]


def _failure(line: StoredLine, reason: LineProblem) -> CheckoutFailure:
    view = line.view()
    return CheckoutFailure(
        item_id=view.item_id,
        title=view.title,
        reason=reason,
        quantity=view.quantity,
        stock=view.stock,
        price_cents=view.price_cents,
        added_price_cents=view.added_price_cents,
    )
