"""Provides :class:`CommerceDomain`: the commerce plug-in of the server (see backend.domains)."""

from __future__ import annotations

from backend.catalogue.cursors import CursorSigner
from backend.catalogue.repositories import cursor_secret
from backend.commerce import handlers
from backend.commerce.live import CartRefresher
from backend.commerce.repositories import commerce_repository
from backend.commerce.service import CURSOR_SECRET_FILE, CURSOR_SECRET_NAME, CommerceService
from backend.dispatch import Dispatcher
from backend.services import Services


class CommerceDomain:
    """Builds the commerce services at start-up and registers their handlers."""

    def __init__(self, services: Services) -> None:
        self._services = services
        #: The commerce services, built by :meth:`start`; ``None`` before.
        self.service: CommerceService | None = None
        self._refresher: CartRefresher | None = None

    async def start(self) -> None:
        """Build the services (migrations have run)."""
        db = self._services.db
        repository = commerce_repository(db)
        # In the database when instances share one: an order cursor opens on every instance.
        secret = await cursor_secret(
            db, CURSOR_SECRET_NAME, self._services.config.data_dir / CURSOR_SECRET_FILE
        )
        self.service = CommerceService.build(
            self._services, repository, signer=CursorSigner(secret)
        )
        self._refresher = CartRefresher(self._services.events, self.service.cart.view)
        self._refresher.listen(self._services.bus)

    def register(self, dispatcher: Dispatcher) -> None:
        """Register the cart, checkout, order and sales handlers."""
        if self.service is None:
            raise RuntimeError("start the commerce domain before registering it")
        handlers.register(dispatcher, self.service, self._services.events)

    async def stop(self) -> None:
        """Cancel the cart loads for other instances' facts; all state is in the database."""
        if self._refresher is not None:
            await self._refresher.close()
            self._refresher = None
