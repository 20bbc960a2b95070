"""Provides :class:`CommerceService`: the commerce domain's services, built once per server."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from backend.catalogue.cursors import CursorSigner
from backend.commerce.cart import CartService
from backend.commerce.checkout import CheckoutService
from backend.commerce.orders import OrderBook
from backend.commerce.repository import CommerceRepository
from backend.commerce.sales_report import SalesReport
from backend.services import Services

#: The secret that signs order and sales cursors, in the data dir.
CURSOR_SECRET_FILE = "commerce-cursor.secret"
#: Its name in the database when several instances share one.
CURSOR_SECRET_NAME = "commerce.cursors"


@dataclass(frozen=True)
class CommerceService:
    """Carts, checkout, the order book and sellers' summaries; the commerce domain's
    ``service`` once started."""

    cart: CartService
    checkout: CheckoutService
    orders: OrderBook
    report: SalesReport

    @classmethod
    def build(
        cls,
        services: Services,
        repository: CommerceRepository,
        *,
        cursor_secret: Path | None = None,
        signer: CursorSigner | None = None,
    ) -> CommerceService:
        """The services of one server over ``repository``, with cursors signed by ``signer``,
        else by a secret kept in the file ``cursor_secret`` (by default in the data dir).
        """
        config = services.config
        if signer is None:
            signer = CursorSigner.from_file(cursor_secret or config.data_dir / CURSOR_SECRET_FILE)
        orders = OrderBook(
            repository,
            signer,
            batch_default=config.limits.batch_default,
            batch_max=config.limits.batch_max,
        )
        return cls(
            cart=CartService(repository),
            checkout=CheckoutService(
                repository, currency=config.currency, metrics=services.metrics
            ),
            orders=orders,
            report=SalesReport(repository, currency=config.currency),
        )
