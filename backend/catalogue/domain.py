"""Provides the catalogue domain: its service, its handlers and the sweep of stale uploads."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from backend.catalogue import handlers
from backend.catalogue.repositories import (
    catalogue_repository,
    picture_repository,
    upload_repository,
)
from backend.catalogue.service import CatalogueService
from backend.dispatch import Dispatcher
from backend.services import Services

log = logging.getLogger(__name__)


def sweep_interval(upload_expiry: float) -> float:
    """Seconds between sweeps: a quarter of the expiry, between 0.1 s and 10 minutes.

    An abandoned upload is thus gone at most 25 % after its expiry, without waking the server
    more often than a short expiry (in tests) needs.
    """
    return min(600.0, max(0.1, upload_expiry / 4))


class CatalogueDomain:
    """The catalogue as a :class:`~backend.domains.Domain`.

    The service exists as soon as the domain is built, so domains built after it are handed it
    and can hook into it.
    """

    def __init__(self, services: Services) -> None:
        db = services.db
        self.service = CatalogueService(
            services,
            items=catalogue_repository(db),
            pictures=picture_repository(db),
            uploads=upload_repository(db),
        )
        self._events = services.events
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Run the start-up sweeps and start the periodic expiry of abandoned uploads."""
        await self.service.start()
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="catalogue-sweeper")

    def register(self, dispatcher: Dispatcher) -> None:
        """Register the catalogue's request handlers."""
        handlers.register(dispatcher, self.service, self._events)

    async def stop(self) -> None:
        """Stop the periodic sweep."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

    async def _sweep_forever(self) -> None:
        interval = sweep_interval(self.service.upload_expiry)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.service.expire_uploads()
            except Exception:
                # A failed sweep (disk trouble) is retried next time; it must not stop sweeping.
                log.exception("sweeping abandoned uploads failed")
