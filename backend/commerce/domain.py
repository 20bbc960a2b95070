"""Provides :class:`CommerceDomain`: the commerce plug-in of the server (see backend.domains)."""

from __future__ import annotations

from backend.commerce import handlers
from backend.commerce.service import CommerceService
from backend.dispatch import Dispatcher
from backend.services import Services


class CommerceDomain:
    """Builds the commerce services at start-up and registers their handlers."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._commerce: CommerceService | None = None

    async def start(self) -> None:
        """Build the services (migrations have run) and publish them for other domains."""
        self._commerce = CommerceService.build(self._services)
        self._services.extra["commerce"] = self._commerce

    def register(self, dispatcher: Dispatcher) -> None:
        """Register the cart, checkout, order and sales handlers."""
        if self._commerce is None:
            raise RuntimeError("start the commerce domain before registering it")
        handlers.register(dispatcher, self._commerce, self._services.events)

    async def stop(self) -> None:
        """Nothing to release: all state is in the database."""
