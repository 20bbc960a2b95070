"""Provides :class:`CatalogueService`, the catalogue as handlers and other domains use it.

The instance is the catalogue domain's ``service``, handed to the domains built after it (see
:func:`backend.domains.build_domains`). Besides what the catalogue's own requests need, it offers
other domains (vision, commerce):

* :meth:`CatalogueService.render_cards`: item ids to :class:`ItemCard` for a viewer, in the
  given order, invisible ids dropped, optional scores, thumbnails as the request's
  :class:`PictureMode` asks (see :mod:`backend.catalogue.card_pictures`);
* :meth:`CatalogueService.visible_item_ids`: ids of the items matching listing filters that a
  viewer may see, to pre-filter a vector search;
* :attr:`CatalogueService.cursors` and :func:`~backend.catalogue.cursors.cursor_binding`: the
  signed keyset cursors, for their own batched listings;
* :meth:`CatalogueService.on_item_created` / :meth:`CatalogueService.on_items_deleted` /
  :meth:`CatalogueService.on_item_changed`: hooks;
* :meth:`CatalogueService.model_image`: re-decode a stored picture for the embedder.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Final

from PIL import Image
from pixmart_data import data_file

from backend.accounts.service import Principal
from backend.atrest.derivatives import PLAIN, DerivativeCodec
from backend.atrest.keyring import KeyringMismatch, load_keyring, open_store_keys
from backend.atrest.rotation import seal_plaintext
from backend.atrest.sealed_blobs import SealedBlobs
from backend.catalogue.card_pictures import CardPictures
from backend.catalogue.changes import (
    ChangedHook,
    DeletedHook,
    ItemChanges,
    VisibilityHook,
)
from backend.catalogue.cursors import CursorSigner
from backend.catalogue.intake import CreatedHook, Intake
from backend.catalogue.items import Clock, can_see, item_for
from backend.catalogue.listing import Listings
from backend.catalogue.live import CATALOGUE_TOPIC
from backend.catalogue.page_cache import ListingPageCache
from backend.catalogue.pictures import PictureStore
from backend.catalogue.processing import PictureProcessor
from backend.catalogue.repositories import cursor_secret
from backend.catalogue.repository import CatalogueRepository, PictureRepository, UploadRepository
from backend.catalogue.tags import normalise_prefix, read_starter_tags
from backend.catalogue.uploads import Incomplete, UploadManager
from backend.catalogue.validation import validate_metadata
from backend.media.blobs import StoreUnavailable, open_blob_storage
from backend.media.partials import open_partial_storage
from backend.media.validate import MediaLimits
from backend.sent_pictures import SentPictures
from backend.services import Services
from backend.startup import StartupError
from protocol.errors import BadRequest, ErrorCode, NotFound, PixmartError
from protocol.messages.catalogue import (
    BeginUpload,
    DeleteResult,
    EditItem,
    ItemBatch,
    ItemCard,
    ItemCreated,
    ItemDetail,
    ListingFilters,
    OriginalData,
    PictureKind,
    PictureMode,
    Pictures,
    SortOrder,
    TagCount,
    UploadChunk,
    UploadState,
)

log = logging.getLogger(__name__)

#: Largest slice of an original sent in one reply; well under the 8 MiB message limit.
ORIGINAL_CHUNK_BYTES: Final = 4 * 1024 * 1024
STARTER_TAGS: Final = "starter_tags.txt"
#: Where a single server keeps the secret that signs listing cursors, in its data dir.
CURSOR_SECRET_FILE: Final = "cursor.key"
#: The background job sealing a store written before encryption (one instance at a time).
SEAL_IN_PLACE_JOB: Final = "catalogue.seal-in-place"
#: Its name in the database when several instances share one.
CURSOR_SECRET_NAME: Final = "catalogue.cursors"


class CatalogueService:
    """Items, uploads, tags, listings and the files behind them.

    Args:
        services: The server's shared services; the data dir must exist.
        items: Where items, tags and listings are stored.
        pictures: Where the rows of stored pictures are.
        uploads: Where uploads in progress are recorded.
        clock: Wall-clock time, replaceable in tests.
    """

    def __init__(
        self,
        services: Services,
        *,
        items: CatalogueRepository,
        pictures: PictureRepository,
        uploads: UploadRepository,
        derivatives: DerivativeCodec = PLAIN,
        clock: Clock = time.time,
    ) -> None:
        config = services.config
        limits = config.limits
        data_dir = config.data_dir
        self._items = items
        self.events = services.events
        self.upload_expiry = config.upload_expiry
        self.starter_tags_path = data_file(STARTER_TAGS)
        # Keyed by start(): on PostgreSQL the secret is read from the database.
        self.cursors = CursorSigner()
        self._cursor_file = data_dir / CURSOR_SECRET_FILE
        self._db = services.db
        self._keys = services.keys
        self._picture_rows = pictures
        self._sealing: asyncio.Task[None] | None = None
        #: Seals the thumbnails and previews the database keeps (a pass-through unencrypted).
        self.derivatives = derivatives
        # Sealed at start(), once the store's keyring has been checked against the keys.
        self._raw_blobs = open_blob_storage(config.blobs, data_dir / "blobs")
        self.pictures = PictureStore(pictures, self._raw_blobs)
        self.processor = PictureProcessor(
            MediaLimits(max_bytes=limits.max_upload_bytes, max_pixels=limits.max_pixels)
        )
        self.uploads = UploadManager(
            uploads,
            # Beside the pictures: in the object store a cluster shares, or in the data dir.
            open_partial_storage(
                config.blobs,
                data_dir / "uploads",
                max_bytes=limits.max_upload_bytes,
                sealer=derivatives.sealer,
            ),
            max_bytes=limits.max_upload_bytes,
            chunk_bytes=limits.upload_chunk_bytes,
            max_open_uploads=limits.max_open_uploads,
            max_open_bytes=limits.max_open_upload_bytes,
            max_total_bytes=limits.max_open_upload_bytes_total,
            clock=clock,
        )
        pages = ListingPageCache()
        # Every item event, this instance's or another's, empties it (see page_cache).
        self.events.watch(CATALOGUE_TOPIC, pages.invalidate)
        self.listings = Listings(
            items,
            self.cursors,
            batch_default=limits.batch_default,
            batch_max=limits.batch_max,
            cache=pages,
        )
        #: The picture bytes replies carry; answers GetPictures.
        self.card_pictures = CardPictures(
            items, derivatives, reply_bytes=limits.max_message_bytes // 2
        )
        self.intake = Intake(items, self.uploads, self.pictures, self.processor, self.events, clock)
        self.changes = ItemChanges(items, self.pictures, self.events, clock)
        self.original_chunk_bytes = min(ORIGINAL_CHUNK_BYTES, limits.max_message_bytes // 2)
        self._metrics = services.metrics

    # -- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the starter tags (first start) and, alone on the database, remove what no row owns.

        Runs before the server accepts connections, so the sweeps race with nothing here.
        """
        await self._open_picture_store()
        log.info("pictures stored in %s", self.pictures.blobs.describe())
        self.cursors.use_secret(
            await cursor_secret(self._db, CURSOR_SECRET_NAME, self._cursor_file)
        )
        await self._load_starter_tags()
        await self.uploads.sweep_scratch()
        # Alone on its database, the server reconciles before it serves, racing nothing (no
        # grace needed). On a database other instances share, the periodic sweeps do it under
        # a lock shared by all (see backend.catalogue.sweeper): the reconciliation of uploads
        # would take uploads in progress elsewhere for orphans, so it is left to the expiry.
        if not self._db.shared:
            await self.uploads.sweep()
            await self.pictures.sweep()
        blobs = self.pictures.blobs
        if isinstance(blobs, SealedBlobs) and blobs.plaintext_left:
            # After the sweeps: the start-up sweep spares no temporary file, and the job writes
            # some.
            self._sealing = asyncio.create_task(
                self._seal_plaintext(blobs), name="pixmart-seal-in-place"
            )

    async def _open_picture_store(self) -> None:
        """Check the keys against the store's keyring and seal the store (or refuse to start).

        Raises:
            StartupError: the keys do not open the store, or a server without keys met an
                encrypted one.
        """
        raw = self._raw_blobs
        try:
            if self._keys is None:
                keyring = await load_keyring(raw)
                if keyring is not None:
                    raise StartupError(
                        "the picture store is encrypted (master key "
                        f"{keyring.describe()}) and this server runs unencrypted",
                        "start it with that key (--key-file)",
                    )
                return
            store_keys = await open_store_keys(raw, self._keys)
        except KeyringMismatch as exc:
            raise StartupError(str(exc), "start with the key the store was sealed under") from None
        except StoreUnavailable as exc:
            raise StartupError(
                f"cannot read the picture store's keyring: {exc}", "check --blobs"
            ) from None
        self.pictures.blobs = SealedBlobs(raw, store_keys)
        self.derivatives.plaintext_left = store_keys.keyring.plaintext_left

    async def _seal_plaintext(self, blobs: SealedBlobs) -> None:
        """Seal what the store held before encryption, in the background (one instance)."""
        metrics = self._metrics
        try:
            async with self._db.exclusive_job(SEAL_IN_PLACE_JOB) as mine:
                if not mine:
                    return  # another instance runs it
                log.info("encrypting the pictures stored before encryption, in the background")
                report = await seal_plaintext(
                    blobs,
                    self._picture_rows,
                    self.derivatives,
                    progress=lambda kind, _count: metrics.sealed_in_place(kind),
                )
                log.info("encryption in place done: %s", report.describe())
        except StoreUnavailable:
            log.warning("encryption in place paused: the picture store is unreachable")
        except Exception:
            log.exception("encryption in place failed; it resumes at the next start")

    async def stop(self) -> None:
        """Stop background work (the encryption in place resumes at the next start)."""
        if self._sealing is not None:
            self._sealing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sealing

    async def _load_starter_tags(self) -> None:
        """Load the starter tags on the first start; later starts leave the set as curated."""
        if await self._items.has_starter_tags():
            return
        if not self.starter_tags_path.is_file():
            log.warning("no starter tags: %s is missing", self.starter_tags_path)
            return
        await self._items.add_starter_tags(read_starter_tags(self.starter_tags_path))

    # -- hooks for other domains -----------------------------------------------------------

    def on_item_created(self, hook: CreatedHook) -> None:
        """Call ``hook`` after every new item; the warnings it returns reach the seller."""
        self.intake.created_hooks.append(hook)

    def on_items_deleted(self, hook: DeletedHook) -> None:
        """Call ``hook`` with the ids of deleted items, after the deletion committed."""
        self.changes.deleted_hooks.append(hook)

    def on_visibility_changed(self, hook: VisibilityHook) -> None:
        """Call ``hook`` with (item id, public) after an edit changed an item's visibility."""
        self.changes.visibility_hooks.append(hook)

    def on_item_changed(self, hook: ChangedHook) -> None:
        """Call ``hook`` with the item before and its card after every edit that changed it
        (committed), on the instance that made the edit."""
        self.changes.changed_hooks.append(hook)

    # -- uploads ---------------------------------------------------------------------------

    async def begin_upload(self, principal: Principal, request: BeginUpload) -> UploadState:
        """Start or resume an upload; name the caller's existing item if it is a duplicate.

        Raises:
            BadRequest: invalid metadata.
            UnsupportedMedia: the declared size is zero.
            TooLarge: the declared size is over the limit.
        """
        validate_metadata(request.metadata)
        self.uploads.check_declared_size(request.size)
        chunk = self.uploads.chunk_bytes
        existing = await self._items.item_showing(principal.user_id, request.sha256)
        if existing is not None:
            stale = await self.uploads.find(principal.user_id, request.sha256)
            if stale is not None:
                await self.uploads.cancel(principal.user_id, stale.id)
            card = await self.render_cards(principal.user_id, [existing])
            return UploadState(
                id=request.id,
                upload_id="",
                offset=0,
                size=request.size,
                chunk_bytes=chunk,
                existing=card[0] if card else None,
            )
        position = await self.uploads.begin(
            principal.user_id, request.sha256, request.size, request.metadata
        )
        return UploadState(
            id=request.id,
            upload_id=position.upload_id,
            offset=position.offset,
            size=request.size,
            chunk_bytes=chunk,
        )

    async def upload_chunk(self, principal: Principal, request: UploadChunk) -> int:
        """Append a chunk; return the bytes the server now holds (see UploadManager.append)."""
        offset = await self.uploads.append(
            principal.user_id, request.upload_id, request.offset, request.data
        )
        self._metrics.upload_bytes(len(request.data))
        return offset

    async def finish_upload(self, principal: Principal, upload_id: str) -> ItemCreated:
        """Verify a complete upload and list it (see :meth:`Intake.finish`)."""
        try:
            created = await self.intake.finish(principal.user_id, upload_id)
        except Incomplete:
            self._metrics.upload_finished("incomplete")  # kept, to be resumed: not a refusal
            raise
        except PixmartError as exc:
            self._metrics.upload_finished(exc.code.value)
            raise
        except Exception:
            self._metrics.upload_finished(ErrorCode.INTERNAL.value)
            raise
        self._metrics.upload_finished("duplicate" if created.duplicate else "listed")
        await self.card_pictures.fill_cards([created.item])
        return created

    async def cancel_upload(self, principal: Principal, upload_id: str) -> None:
        """Discard an upload in progress."""
        await self.uploads.cancel(principal.user_id, upload_id)

    # -- items -----------------------------------------------------------------------------

    async def get_item(
        self,
        principal: Principal,
        item_id: int,
        pictures: PictureMode = PictureMode.INLINE,
        sent: SentPictures | None = None,
    ) -> ItemDetail:
        """One item with its preview (bytes as ``pictures`` asks, see :class:`CardPictures`).

        Raises:
            NotFound: no such item, or one the principal may not see.
        """
        item = await item_for(self._items, principal, item_id, change=False)
        detail = await self._items.detail(item.id)
        if detail is None:
            raise NotFound(f"There is no item {item_id}")
        await self.card_pictures.fill_detail(detail, pictures, sent)
        return detail

    async def get_pictures(
        self,
        principal: Principal,
        item_ids: Sequence[int],
        kind: PictureKind,
        sent: SentPictures | None = None,
    ) -> Pictures:
        """The thumbnails or previews of the items the principal may see among ``item_ids``."""
        return await self.card_pictures.pictures(principal, item_ids, kind, sent)

    async def read_original(
        self, principal: Principal, item_id: int, offset: int = 0, length: int = 0
    ) -> OriginalData:
        """A range of the original: as uploaded for the owner, metadata-stripped for others.

        Raises:
            NotFound: no such item, or one the principal may not see.
            BadRequest: ``offset`` is past the end of the file.
        """
        item = await item_for(self._items, principal, item_id, change=False)
        stripped = item.owner_id != principal.user_id
        served = await self.pictures.served_file(item.sha256, stripped=stripped)
        if served is None:
            raise NotFound(f"There is no item {item_id}")
        name, fmt = served
        wanted = min(length or self.original_chunk_bytes, self.original_chunk_bytes)
        total, data = await self.pictures.read_range(name, offset, wanted)
        if offset > total:
            raise BadRequest(f"The file has {total:,} bytes; offset {offset:,} is past its end")
        return OriginalData(
            id=0,
            item_id=item.id,
            offset=offset,
            total=total,
            format=fmt,
            sha256=name,
            stripped=stripped,
            data=data,
        )

    async def edit_item(self, principal: Principal, request: EditItem) -> ItemCard:
        """Edit an item (see :meth:`ItemChanges.edit`); the card comes with its thumbnail."""
        card = await self.changes.edit(principal, request)
        await self.card_pictures.fill_cards([card])
        return card

    async def delete_items(
        self, principal: Principal, item_ids: Sequence[int]
    ) -> list[DeleteResult]:
        """Delete items, one result per id (see :meth:`ItemChanges.delete`)."""
        return await self.changes.delete(principal, item_ids)

    async def visible_among(self, principal: Principal, item_ids: Sequence[int]) -> list[int]:
        """The ids among ``item_ids`` that ``principal`` may see, in the given order."""
        items = await self._items.items(list(dict.fromkeys(item_ids)))
        return [i for i in dict.fromkeys(item_ids) if i in items and can_see(principal, items[i])]

    # -- listings --------------------------------------------------------------------------

    async def browse(
        self,
        viewer_id: int,
        filters: ListingFilters,
        sort: SortOrder = SortOrder.NEWEST,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        pictures: PictureMode = PictureMode.INLINE,
        sent: SentPictures | None = None,
    ) -> ItemBatch:
        """One batch of a browse or text search (see :meth:`Listings.browse`).

        Args:
            pictures: Which thumbnails go inline (see :class:`CardPictures`).
            sent: The connection's record of pictures sent, for ``PictureMode.UNSENT``.
        """
        batch = await self.listings.browse(viewer_id, filters, sort, limit=limit, cursor=cursor)
        await self.card_pictures.fill_cards(batch.items, pictures, sent)
        batch.items = self.card_pictures.shown(batch.items, pictures)
        self._metrics.observe_batch("browse", len(batch.items))
        return batch

    async def tags(self, viewer_id: int, prefix: str = "", limit: int = 100) -> list[TagCount]:
        """Tags starting with ``prefix`` with the number of items the viewer can see carry each."""
        normalised = normalise_prefix(prefix)
        if normalised is None:
            return []  # no tag can start with it
        return await self._items.tag_counts(viewer_id, normalised, limit)

    async def render_cards(
        self,
        viewer_id: int,
        item_ids: Sequence[int],
        scores: Mapping[int, float] | None = None,
        *,
        pictures: PictureMode = PictureMode.INLINE,
        sent: SentPictures | None = None,
    ) -> list[ItemCard]:
        """Cards of ``item_ids`` in that order, dropping ids the viewer may not see.

        Args:
            viewer_id: The user the cards are for; private items of others are left out.
            item_ids: Ids in the order wanted (e.g. by similarity).
            scores: Put into each card's ``score``.
            pictures: Which thumbnails go inline (see :class:`CardPictures`).
            sent: The connection's record of pictures sent, for ``PictureMode.UNSENT``.
        """
        cards = await self._items.cards(item_ids, viewer_id=viewer_id)
        await self.card_pictures.fill_cards(cards, pictures, sent)
        cards = self.card_pictures.shown(cards, pictures)
        if scores is not None:
            for card in cards:
                card.score = scores.get(card.id)
        return cards

    async def visible_item_ids(self, viewer_id: int, filters: ListingFilters) -> list[int]:
        """Ids (ascending) of the items matching ``filters`` that the viewer may see.

        Raises:
            BadRequest: invalid filters (e.g. a malformed tag).
        """
        return await self.listings.visible_ids(viewer_id, filters)

    # -- pictures for other domains ----------------------------------------------------------

    async def model_image(self, sha256: str) -> Image.Image | None:
        """Decode a stored picture for the embedder, in a thread; ``None`` if not stored.

        Raises:
            Unavailable: the picture store cannot be reached.
        """
        info = await self.pictures.info(sha256)
        if info is None:
            return None
        try:
            original = await self.pictures.read(sha256)
        except FileNotFoundError:
            return None
        return await self.processor.model_image(original, info)
