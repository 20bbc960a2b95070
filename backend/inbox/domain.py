"""Provides :class:`InboxDomain`: the inbox plug-in of the server (see backend.domains)."""

from __future__ import annotations

from backend.catalogue.repositories import cursor_secret
from backend.dispatch import Dispatcher
from backend.inbox import handlers
from backend.inbox.live import InboxRefresher
from backend.inbox.repositories import inbox_repository
from backend.inbox.service import InboxService
from backend.services import Services

#: The secret that signs inbox cursors, in the data dir.
CURSOR_SECRET_FILE = "inbox-cursor.secret"
#: Its name in the database when several instances share one.
CURSOR_SECRET_NAME = "inbox.cursors"


class InboxDomain:
    """The inbox as a :class:`~backend.domains.Domain`.

    The service exists as soon as the domain is built, so the domains that deliver notices
    (favourites, saved searches) are handed it through their constructors.
    """

    def __init__(self, services: Services) -> None:
        self._services = services
        db = services.db
        limits = services.config.limits

        async def secret() -> bytes:
            # In the database when instances share one: a cursor opens on every instance.
            return await cursor_secret(
                db, CURSOR_SECRET_NAME, services.config.data_dir / CURSOR_SECRET_FILE
            )

        repository = inbox_repository(db)
        self.service = InboxService(
            repository,
            services.events,
            secret,
            batch_default=limits.batch_default,
            batch_max=limits.batch_max,
        )
        self._refresher = InboxRefresher(services.events, repository.notice, repository.unread)

    async def start(self) -> None:
        """Hear of inbox changes made on the other instances (migrations have run)."""
        self._refresher.listen(self._services.bus)

    def register(self, dispatcher: Dispatcher) -> None:
        """Register the inbox handlers."""
        handlers.register(dispatcher, self.service, self._services.events)

    async def stop(self) -> None:
        """Cancel the loads for other instances' facts; all state is in the database."""
        await self._refresher.close()
