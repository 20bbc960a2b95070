"""Provides the changes owners (and admins) make to listed items: edit and bulk delete."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from backend.accounts.service import Principal
from backend.catalogue.items import Clock, can_change, can_see, item_for, not_found
from backend.catalogue.live import publish_added, publish_changed, publish_removed
from backend.catalogue.pictures import PictureStore
from backend.catalogue.repository import CatalogueRepository, ItemEdit, ItemRow
from backend.catalogue.tags import normalise_tags
from backend.catalogue.validation import clean_description, clean_title
from backend.events import EventHub
from protocol.errors import ErrorCode
from protocol.messages.catalogue import DeleteResult, EditItem, ItemCard

log = logging.getLogger(__name__)

#: Called with the ids of items just deleted (e.g. to drop them from the vision index).
DeletedHook = Callable[[Sequence[int]], Awaitable[None]]
#: Called with (item id, public) when an edit changed an item's visibility.
VisibilityHook = Callable[[int, bool], Awaitable[None]]
#: Called with the item as it was before an edit and its card after it (to compare prices, stock).
ChangedHook = Callable[[ItemRow, ItemCard], Awaitable[None]]


class ItemChanges:
    """Edits and deletions, with their announcements."""

    def __init__(
        self, items: CatalogueRepository, pictures: PictureStore, events: EventHub, clock: Clock
    ) -> None:
        self._items = items
        self._pictures = pictures
        self._events = events
        self._clock = clock
        #: Told about every deletion, after it committed.
        self.deleted_hooks: list[DeletedHook] = []
        #: Told when an edit made an item public or private, after it committed.
        self.visibility_hooks: list[VisibilityHook] = []
        #: Told about every edit that changed an item, with the item before it, after it
        #: committed, on the instance that made it (so once per edit in a cluster).
        self.changed_hooks: list[ChangedHook] = []

    async def edit(self, principal: Principal, request: EditItem) -> ItemCard:
        """Apply an edit; every field but the picture may change.

        Raises:
            NotFound: no such item, or one the principal may not see.
            Forbidden: the principal is not the owner nor an admin.
            BadRequest: a field is invalid.
        """
        item = await item_for(self._items, principal, request.item_id, change=True)
        edit = ItemEdit(
            title=clean_title(request.title) if request.title is not None else None,
            description=(
                clean_description(request.description) if request.description is not None else None
            ),
            price_cents=request.price_cents,
            stock=request.stock,
            public=request.public,
            tags=normalise_tags(request.tags) if request.tags is not None else None,
        )
        changed = await self._items.edit_item(item.id, edit, self._clock())
        cards = await self._items.cards([item.id], viewer_id=None) if changed else []
        if not cards:
            raise not_found(item.id)  # deleted meanwhile
        card = cards[0]
        publish_changed(
            self._events,
            item_id=card.id,
            owner_id=card.owner_id,
            title=card.title,
            price_cents=card.price_cents,
            stock=card.stock,
            public=card.public,
            was_public=item.public,
        )
        if card.public and not item.public:
            # Galleries that never had it must learn it exists now.
            publish_added(self._events, item_id=card.id, owner_id=card.owner_id, public=True)
        if card.public != item.public:
            for hook in self.visibility_hooks:
                await hook(card.id, card.public)
        for changed_hook in self.changed_hooks:
            try:
                await changed_hook(item, card)
            except Exception:  # the edit committed; a listener must not fail it
                log.exception("item-changed hook %r failed for item %d", changed_hook, card.id)
        return card

    async def delete(self, principal: Principal, item_ids: Sequence[int]) -> list[DeleteResult]:
        """Delete the items the principal may delete; return one result per requested id.

        Pictures no remaining item shows are removed, rows and files.
        """
        items = await self._items.items(list(dict.fromkeys(item_ids)))
        results: list[DeleteResult] = []
        doomed: dict[int, ItemRow] = {}
        for item_id in item_ids:
            item = items.get(item_id)
            if item is None or not can_see(principal, item):
                error = not_found(item_id)
                results.append(
                    DeleteResult(item_id=item_id, error=error.code, message=error.message)
                )
            elif not can_change(principal, item):
                results.append(
                    DeleteResult(
                        item_id=item_id,
                        error=ErrorCode.FORBIDDEN,
                        message="Only the seller can delete this item",
                    )
                )
            else:
                doomed[item_id] = item
                results.append(DeleteResult(item_id=item_id))
        if not doomed:
            return results
        shas = {item.sha256 for item in doomed.values()}
        async with self._pictures.locks.hold(*shas):
            orphans = await self._items.delete_items(list(doomed))
            await self._pictures.remove_files(orphans)
        for item in doomed.values():
            publish_removed(
                self._events, item_id=item.id, owner_id=item.owner_id, public=item.public
            )
        for hook in self.deleted_hooks:
            try:
                await hook(list(doomed))
            except Exception:
                log.exception("item-deleted hook %r failed", hook)
        return results
