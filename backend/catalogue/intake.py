"""Provides the step that turns a fully received upload into a listed item.

Order of work, so that a failure at any step leaves nothing behind: verify the hash of the
whole file, validate and decode it (threads), move the original and its clean copy into the
blob store, then commit the picture's rows, the item, its tags and the removal of the upload row
in one transaction (:meth:`CatalogueRepository.add_item`). Only then is the item announced.

A picture the store already holds for another seller is validated, decoded and embedded all the
same, though its stored files, derivatives and embedding would do: finishing it took 39 ms
against 590 ms for a new picture, which told anyone holding a picture whether some seller had
it, privately or not. Only the seller's own duplicate is answered at once (they know it).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from PIL import Image

from backend.catalogue.items import Clock
from backend.catalogue.live import publish_added
from backend.catalogue.pictures import PictureStore, new_picture
from backend.catalogue.processing import PictureProcessor, PreparedPicture
from backend.catalogue.repository import (
    CatalogueRepository,
    DuplicateItem,
    ItemDraft,
    NewPicture,
    PictureMissing,
    UploadRow,
)
from backend.catalogue.uploads import Incomplete, UploadManager
from backend.catalogue.validation import Listing, validate_metadata
from backend.events import EventHub
from backend.media.uploads import FinishedUpload
from protocol.errors import PixmartError, Unavailable
from protocol.messages.catalogue import ItemCard, ItemCreated

log = logging.getLogger(__name__)

#: Below this many pixels on the longer side a seller is warned that buyers may find it small.
SMALL_PICTURE: Final = 800


@dataclass(frozen=True, slots=True)
class NewItem:
    """An item just listed, as told to :data:`CreatedHook` listeners (e.g. the vision index).

    Attributes:
        model_image: The vision pipeline's picture, decoded from this upload, also when another
            seller's item already shows the same picture (same ``sha256``): listeners treat it
            as new, so the upload takes as long either way. ``None`` only when the picture was
            not decoded (another seller's item gained it while this one was being finished); it
            can be re-made with ``CatalogueService.model_image``.
    """

    item_id: int
    owner_id: int
    sha256: str
    public: bool
    model_image: Image.Image | None


#: Called after an item is listed; returns warnings for the seller (e.g. near-duplicates).
CreatedHook = Callable[[NewItem], Awaitable[Sequence[str]]]


@dataclass(frozen=True, slots=True)
class _Accepted:
    item_id: int
    duplicate: bool
    prepared: PreparedPicture | None


class Intake:
    """Finishes uploads: verification, storage, the item row, the announcement."""

    def __init__(
        self,
        items: CatalogueRepository,
        uploads: UploadManager,
        pictures: PictureStore,
        processor: PictureProcessor,
        events: EventHub,
        clock: Clock,
    ) -> None:
        self._items = items
        self._uploads = uploads
        self._pictures = pictures
        self._processor = processor
        self._events = events
        self._clock = clock
        #: Told about every new item; see :class:`NewItem`.
        self.created_hooks: list[CreatedHook] = []

    async def finish(self, owner_id: int, upload_id: str) -> ItemCreated:
        """Verify the owner's complete upload and list it (or name the existing item).

        Raises:
            NotFound: no such upload.
            Incomplete: bytes are missing; the upload is kept, to be resumed.
            BadRequest: invalid metadata (kept) or wrong hash (discarded).
            UnsupportedMedia, TooLarge: the picture is refused (discarded).
            Unavailable: the picture store is down; the upload is kept, to be finished again.
        """
        async with self._uploads.locks.hold(upload_id):
            # Read under the lock: a concurrent finish of the same upload may have won.
            upload = await self._uploads.get(owner_id, upload_id)
            listing = validate_metadata(upload.metadata)
            try:
                finished = await self._uploads.complete(upload)
                accepted = await self._accept(upload, finished, listing)
            except (Incomplete, Unavailable):
                raise  # kept, to be resumed or (the picture store was down) finished again
            except PixmartError:
                # Refused for good: nothing of it may stay behind.
                await self._uploads.discard(upload_id)
                raise
            if accepted.duplicate:
                await self._uploads.discard(upload_id)  # the owner's item had it: nothing added
            else:
                # Leftovers only: the row went with the item's transaction, and the file into
                # the store (or it is left here when the store had the picture already).
                await self._uploads.discard_bytes(upload_id)
        card = (await self._items.cards([accepted.item_id], viewer_id=None))[0]
        if accepted.duplicate:
            return ItemCreated(id=0, item=card, duplicate=True)
        publish_added(self._events, item_id=card.id, owner_id=owner_id, public=card.public)
        warnings = _warnings(card)
        warnings.extend(await self._run_hooks(card, upload, accepted.prepared))
        return ItemCreated(id=0, item=card, warnings=warnings)

    async def _accept(
        self, upload: UploadRow, finished: FinishedUpload, listing: Listing
    ) -> _Accepted:
        sha256 = finished.sha256
        # Decode before taking the picture's lock: it is the slow part and needs no lock. Also
        # when another seller's item shows the picture (see the module docstring).
        prepared = None
        if await self._items.item_showing(upload.owner_id, sha256) is None:
            prepared = await self._processor.prepare(finished.path)
        async with self._pictures.locks.hold(sha256):
            existing = await self._items.item_showing(upload.owner_id, sha256)
            if existing is not None:
                return _Accepted(existing, duplicate=True, prepared=None)
            try:
                if await self._pictures.exists(sha256):
                    try:
                        item_id = await self._add(upload, listing)
                        return _Accepted(item_id, duplicate=False, prepared=prepared)
                    except PictureMissing:
                        pass  # its last item went (on another server) since: store it again
                if prepared is None:  # the owner's item had it when we looked; it went since
                    prepared = await self._processor.prepare(finished.path)
                item_id = await self._store_and_add(upload, listing, finished.path, prepared)
            except DuplicateItem:
                # Listed by the owner on another server meanwhile.
                existing = await self._items.item_showing(upload.owner_id, sha256)
                if existing is None:
                    raise
                return _Accepted(existing, duplicate=True, prepared=None)
        return _Accepted(item_id, duplicate=False, prepared=prepared)

    async def _add(
        self, upload: UploadRow, listing: Listing, picture: NewPicture | None = None
    ) -> int:
        draft = ItemDraft(upload.owner_id, upload.sha256, listing, upload.id, picture)
        return await self._items.add_item(draft, self._clock())

    async def _store_and_add(
        self, upload: UploadRow, listing: Listing, source: Path, prepared: PreparedPicture
    ) -> int:
        """Store the picture's files, then add the item with the picture's rows.

        The files go again if the item is not added.
        """
        files = await self._pictures.store_files(source, upload.sha256, prepared.clean)
        try:
            return await self._add(upload, listing, new_picture(files, prepared))
        except BaseException:
            await self._pictures.remove_files([files])
            raise

    async def _run_hooks(
        self, card: ItemCard, upload: UploadRow, prepared: PreparedPicture | None
    ) -> list[str]:
        event = NewItem(
            item_id=card.id,
            owner_id=upload.owner_id,
            sha256=upload.sha256,
            public=card.public,
            model_image=prepared.derivatives.model_image if prepared else None,
        )
        warnings: list[str] = []
        for hook in self.created_hooks:
            try:
                warnings.extend(await hook(event))
            except Exception:
                # The item is listed; a failing listener (e.g. the vision index) must not undo
                # that or fail the upload.
                log.exception("item-created hook %r failed for item %d", hook, card.id)
        return warnings


def _warnings(card: ItemCard) -> list[str]:
    warnings: list[str] = []
    if max(card.width, card.height) < SMALL_PICTURE:
        warnings.append(
            f"The picture is only {card.width} x {card.height} pixels; buyers may find it small"
        )
    return warnings
