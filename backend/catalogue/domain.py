"""Provides the catalogue domain: its service, its handlers and its periodic sweeps."""

from __future__ import annotations

from backend.atrest.derivatives import PLAIN, DerivativeCodec
from backend.atrest.envelope import Sealer
from backend.catalogue import handlers
from backend.catalogue.repositories import (
    catalogue_repository,
    picture_repository,
    upload_repository,
)
from backend.catalogue.service import CatalogueService
from backend.catalogue.sweeper import CatalogueSweeper
from backend.dispatch import Dispatcher
from backend.services import Services


class CatalogueDomain:
    """The catalogue as a :class:`~backend.domains.Domain`.

    The service exists as soon as the domain is built, so domains built after it are handed it
    and can hook into it.
    """

    def __init__(self, services: Services) -> None:
        db = services.db
        # Thumbnails and previews are sealed in the database like the files in the store.
        derivatives = DerivativeCodec(Sealer(services.keys)) if services.keys else PLAIN
        self.service = CatalogueService(
            services,
            items=catalogue_repository(db, derivatives),
            pictures=picture_repository(db),
            uploads=upload_repository(db),
            derivatives=derivatives,
        )
        self._events = services.events
        self.sweeper = CatalogueSweeper(
            self.service.pictures,
            self.service.uploads,
            upload_expiry=self.service.upload_expiry,
            exclusive_job=db.exclusive_job,
        )

    async def start(self) -> None:
        """Run the start-up work and start the periodic sweeps."""
        await self.service.start()
        self.sweeper.start()

    def register(self, dispatcher: Dispatcher) -> None:
        """Register the catalogue's request handlers."""
        handlers.register(dispatcher, self.service, self._events)

    async def stop(self) -> None:
        """Stop the periodic sweeps and background jobs."""
        await self.sweeper.stop()
        await self.service.stop()
