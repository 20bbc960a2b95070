"""Provides :class:`OrderBook`: a buyer's orders, one order with its lines, a seller's sales.

Orders and order lines are never changed after checkout, and their ids grow as checkouts write
them, so "newest first" is by id, descending, and a batch continues strictly below the position
of the last row sent: keyset batches that nothing placed meanwhile can shift.
"""

from __future__ import annotations

from typing import Final, TypeVar

from backend.accounts.service import Principal
from backend.catalogue.cursors import CursorSigner, cursor_binding
from backend.commerce.repository import Keyed, OrderRepository
from backend.id_pages import FetchBelow, batch_size, keyset_batch
from protocol.errors import NotFound
from protocol.messages.commerce import Order, OrderSummary, Sale

#: Cursor scopes (see :func:`~backend.catalogue.cursors.cursor_binding`).
ORDERS_SCOPE: Final = "commerce.orders"
SALES_SCOPE: Final = "commerce.sales"

T = TypeVar("T")


class OrderBook:
    """Reads orders and sales, in batches with signed keyset cursors.

    Args:
        repository: Where orders are stored.
        signer: Seals and opens listing cursors.
        batch_default: Rows per batch when the client does not say.
        batch_max: The most rows a client may ask for in one batch.
    """

    def __init__(
        self,
        repository: OrderRepository,
        signer: CursorSigner,
        *,
        batch_default: int,
        batch_max: int,
    ) -> None:
        self._repository = repository
        self._signer = signer
        self._batch_default = batch_default
        self._batch_max = batch_max

    async def orders(
        self, user_id: int, *, limit: int | None = None, cursor: str | None = None
    ) -> tuple[list[OrderSummary], str | None]:
        """A batch of the user's orders, newest first, and the cursor of the next batch.

        Raises:
            BadRequest: ``limit`` is above the maximum, or the cursor is not one of this
                listing's for this user.
        """
        return await self._batch(
            lambda below, size: self._repository.orders(user_id, below=below, limit=size),
            cursor_binding(ORDERS_SCOPE, user_id),
            limit,
            cursor,
        )

    async def sales(
        self, seller_id: int, *, limit: int | None = None, cursor: str | None = None
    ) -> tuple[list[Sale], str | None]:
        """A batch of sales of the seller's items, newest first, and the next batch's cursor.

        Raises:
            BadRequest: as for :meth:`orders`.
        """
        return await self._batch(
            lambda below, size: self._repository.sales(seller_id, below=below, limit=size),
            cursor_binding(SALES_SCOPE, seller_id),
            limit,
            cursor,
        )

    async def order(self, principal: Principal, order_id: int) -> Order:
        """One order with its lines; only its buyer (or an admin) may read it.

        Raises:
            NotFound: no such order, or someone else's (the same answer for both).
        """
        found = await self._repository.order(order_id)
        if found is None or (found.buyer_id != principal.user_id and not principal.is_admin):
            raise NotFound(f"You have no order {order_id}")
        return found.order

    async def _batch(
        self,
        fetch: FetchBelow[Keyed[T]],
        binding: bytes,
        limit: int | None,
        cursor: str | None,
    ) -> tuple[list[T], str | None]:
        size = batch_size(limit, default=self._batch_default, maximum=self._batch_max)
        rows, next_cursor = await keyset_batch(
            self._signer, binding, fetch, _position, size=size, cursor=cursor
        )
        return [keyed.row for keyed in rows], next_cursor


def _position(keyed: Keyed[T]) -> int:
    return keyed.position
