"""Provides :class:`CommerceService`: the commerce domain's services, built once per server."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from backend.catalogue.cursors import CursorSigner
from backend.commerce.cart import CartService
from backend.commerce.checkout import CheckoutService
from backend.commerce.orders import OrderBook
from backend.services import Services

#: The secret that signs order and sales cursors, in the data dir.
CURSOR_SECRET_FILE = "commerce-cursor.secret"


@dataclass(frozen=True)
class CommerceService:
    """Carts, checkout and the order book; published as ``services.extra["commerce"]``."""

    cart: CartService
    checkout: CheckoutService
    orders: OrderBook

    @classmethod
    def build(cls, services: Services, *, cursor_secret: Path | None = None) -> CommerceService:
        """The services of one server, with cursors signed by a secret kept in the data dir."""
        config = services.config
        signer = CursorSigner.from_file(cursor_secret or config.data_dir / CURSOR_SECRET_FILE)
        orders = OrderBook(
            services.db,
            signer,
            batch_default=config.limits.batch_default,
            batch_max=config.limits.batch_max,
        )
        return cls(
            cart=CartService(services.db),
            checkout=CheckoutService(
                services.db, currency=config.currency, metrics=services.metrics
            ),
            orders=orders,
        )
