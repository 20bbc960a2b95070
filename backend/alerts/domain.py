"""Provides :class:`AlertsDomain`: saved searches that alert (see backend.domains).

It hooks into the catalogue (items listed and edited are matched in the background, from a
backlog the database fills in the item's own transaction), uses the vision service for picture
searches and their matching, and delivers through the inbox.
"""

from __future__ import annotations

from backend.alerts import handlers
from backend.alerts.live import PictureSearchesChanged
from backend.alerts.matching import AlertMatcher
from backend.alerts.repositories import alert_repository
from backend.alerts.service import SavedSearchService
from backend.catalogue.intake import NewItem
from backend.catalogue.repository import ItemRow
from backend.catalogue.service import CatalogueService
from backend.dispatch import Dispatcher
from backend.inbox.service import InboxService
from backend.services import Services
from backend.vision.domain import VisionDomain
from backend.vision.service import VisionService
from protocol.messages.catalogue import ItemCard


class AlertsDomain:
    """Builds the saved-search services and hooks them into the catalogue.

    Args:
        services: The server's shared services.
        catalogue: Whose new and edited items are matched.
        vision: Whose service (looked up when needed: it starts later, or never) embeds example
            pictures and gives items' embeddings.
        inbox: Where alerts are delivered.
    """

    def __init__(
        self,
        services: Services,
        *,
        catalogue: CatalogueService,
        vision: VisionDomain,
        inbox: InboxService,
    ) -> None:
        self._services = services
        self._catalogue = catalogue
        self._vision = vision
        repository = alert_repository(services.db)
        #: Matches items against saved searches (in the background).
        self.matcher = AlertMatcher(
            repository,
            inbox,
            self._vision_service,
            currency=services.config.currency,
            shared=services.db.shared,
        )
        #: Saves, lists and removes users' saved searches.
        self.service = SavedSearchService(
            repository, self.matcher, services.events, self._vision_service
        )

    def _vision_service(self) -> VisionService | None:
        return self._vision.service

    async def start(self) -> None:
        """Hook into the catalogue and start matching (after vision: its hook embeds first)."""
        self._catalogue.on_item_created(self._item_created)
        self._catalogue.on_item_changed(self._item_changed)
        self._services.bus.on(PictureSearchesChanged, self._changed_elsewhere)
        await self.matcher.start()

    def register(self, dispatcher: Dispatcher) -> None:
        """Register the saved-search handlers."""
        handlers.register(dispatcher, self.service)

    async def stop(self) -> None:
        """Stop matching (a moment's grace for the due items; the rest stay queued)."""
        await self.matcher.stop()

    # The item is in the backlog already (queued by the transaction that wrote it): the hooks
    # only say that it need not wait for the next look.

    async def _item_created(self, _item: NewItem) -> list[str]:
        # Runs after the vision hook (registered first), so the picture is embedded by now.
        self.matcher.wake()
        return []

    async def _item_changed(self, _before: ItemRow, _card: ItemCard) -> None:
        self.matcher.wake()

    def _changed_elsewhere(self, fact: PictureSearchesChanged) -> None:
        self.matcher.changed_elsewhere(fact.search_id)
