"""Provides :class:`CheckoutService`: the cart becomes an order in one transaction, or nothing does.

The repository runs the whole checkout in one transaction: an order already placed with the
checkout key is returned (a retry), otherwise the service approves the cart lines as they are
now, naming every failing line; the stock is taken with guarded updates, the order and its
lines are written at the prices paid, and the cart is emptied. Any failure raises before the
commit, so the rollback leaves stock, orders and cart exactly as they were.
"""

from __future__ import annotations

import time
from typing import Final

import msgspec

from backend.commerce.lines import StoredLine, cart_total
from backend.commerce.repository import CartRepository, CheckoutResult, StockGuardError
from backend.metrics import ServerMetrics
from protocol.errors import BadRequest, Conflict, ErrorCode, OutOfStock, PixmartError
from protocol.messages.commerce import CheckoutFailure, LineProblem, describe_failure
from protocol.money import format_price

#: The most one order may cost; keeps every sum far inside SQLite's 64-bit integers.
MAX_ORDER_CENTS: Final = 10**17


class CheckoutService:
    """Turns a user's cart into an order.

    Args:
        repository: Where carts and orders are stored.
        currency: The server's currency, recorded on every order.
        metrics: Where checkout outcomes are counted, if anywhere.
    """

    def __init__(
        self,
        repository: CartRepository,
        *,
        currency: str,
        metrics: ServerMetrics | None = None,
    ) -> None:
        self._repository = repository
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
        def approve(lines: list[StoredLine]) -> int:
            if not lines:
                raise BadRequest("Your cart is empty")
            total = cart_total(lines)
            self._check(lines, total, expected_total_cents)
            return total

        try:
            return await self._repository.checkout(
                user_id, checkout_key, approve, currency=self._currency, now=time.time()
            )
        except StockGuardError as exc:
            raise _raced(exc.lines) from exc

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

    def _money(self, cents: int) -> str:
        return format_price(cents, self._currency)


def _raced(lines: tuple[StoredLine, ...]) -> OutOfStock:
    """The error of a checkout whose guarded stock update failed for ``lines``."""
    titles = ", ".join(f"'{line.view().title}'" for line in lines)
    failures = [_failure(line, LineProblem.OUT_OF_STOCK) for line in lines]
    return OutOfStock(
        f"Nothing was bought: {titles} changed while buying; try again",
        details={"lines": msgspec.to_builtins(failures)},
    )


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
