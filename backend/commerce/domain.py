"""Provides :class:`CommerceDomain`: the commerce plug-in of the server (see backend.domains)."""

from __future__ import annotations

from backend.commerce import handlers
from backend.commerce.repositories import commerce_repository
from backend.commerce.service import CommerceService
from backend.dispatch import Dispatcher
from backend.services import Services


class CommerceDomain:
    """Builds the commerce services at start-up and registers their handlers."""

    def __init__(self, services: Services) -> None:
        self._services = services
        #: The commerce services, built by :meth:`start`; ``None`` before.
        self.service: CommerceService | None = None

    async def start(self) -> None:
        """Build the services (migrations have run)."""
        repository = commerce_repository(self._services.db)
        self.service = CommerceService.build(self._services, repository)

    def register(self, dispatcher: Dispatcher) -> None:
        """Register the cart, checkout, order and sales handlers."""
        if self.service is None:
            raise RuntimeError("start the commerce domain before registering it")
        handlers.register(dispatcher, self.service, self._services.events)

    async def stop(self) -> None:
        """Nothing to release: all state is in the database."""
