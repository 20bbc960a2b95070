"""Provides :class:`FavouritesDomain`: the favourites plug-in of the server (backend.domains)."""

from __future__ import annotations

from backend.catalogue.repositories import cursor_secret
from backend.catalogue.service import CatalogueService
from backend.dispatch import Dispatcher
from backend.favourites import handlers
from backend.favourites.notifier import FavouriteNotifier
from backend.favourites.repositories import favourites_repository
from backend.favourites.service import FavouritesService
from backend.inbox.service import InboxService
from backend.services import Services

#: The secret that signs favourites cursors, in the data dir.
CURSOR_SECRET_FILE = "favourites-cursor.secret"
#: Its name in the database when several instances share one.
CURSOR_SECRET_NAME = "favourites.cursors"


class FavouritesDomain:
    """Favourites as a :class:`~backend.domains.Domain`: built on the catalogue's cards and
    hooked into its edits, delivering notices through the inbox."""

    def __init__(
        self, services: Services, *, catalogue: CatalogueService, inbox: InboxService
    ) -> None:
        db = services.db
        config = services.config
        repository = favourites_repository(db)

        async def secret() -> bytes:
            # In the database when instances share one: a cursor opens on every instance.
            return await cursor_secret(db, CURSOR_SECRET_NAME, config.data_dir / CURSOR_SECRET_FILE)

        self.service = FavouritesService(
            repository,
            catalogue,
            secret,
            batch_default=config.limits.batch_default,
            batch_max=config.limits.batch_max,
        )
        self.notifier = FavouriteNotifier(repository, inbox, config.currency)
        catalogue.on_item_changed(self.notifier.item_changed)

    async def start(self) -> None:
        """Nothing to start: all state is in the database."""

    def register(self, dispatcher: Dispatcher) -> None:
        """Register the favourites handlers."""
        handlers.register(dispatcher, self.service)

    async def stop(self) -> None:
        """Nothing to stop."""
