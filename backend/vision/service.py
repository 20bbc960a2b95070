"""Provides :class:`VisionService`: embeddings at upload, similar-image search, tag suggestions.

The service embeds every new picture once (pictures shared by several sellers share their
embedding) and stores it through the :class:`~backend.vision.repository.EmbeddingRepository`,
names near-duplicates to the seller, stores tag suggestions and the classes the model sees (for
text search, see :mod:`backend.catalogue.seen`), and re-embeds in the background whatever was
embedded by another model version, or before its classes were stored. Searches rank through the
:class:`~backend.vision.repository.SimilarityIndex`, which the catalogue's hooks (created,
deleted, visibility changed) keep in step. TensorFlow runs only on the embedding worker's
thread, so the event loop never waits on it.

The model and the index warm up in the background (:attr:`VisionService.state`): the server
listens at once, even on a first start that converts the model for half a minute. Until the
service is ready, searches answer ``unavailable`` with a retry-after, and pictures uploaded
meanwhile are embedded by the catch-up pass that runs as soon as it is.

Example pictures are decoded once, reduced where the format allows, inside a server-wide pixel
budget (``Limits.search_decode_pixels``), so pictures of many megapixels sent at once queue
instead of each holding hundreds of megabytes. Their vectors are remembered per user: a query id
is the picture's SHA-256, and a cache shared by all users told anyone who sent a picture's hash
whether somebody had searched for it lately.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Final, Literal

import msgspec
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from backend.accounts.service import Principal
from backend.catalogue.cursors import cursor_binding
from backend.catalogue.errors import protocol_error
from backend.catalogue.intake import NewItem
from backend.catalogue.service import CatalogueService
from backend.config import ServerConfig
from backend.media.budget import PixelBudget
from backend.media.derivatives import decode_for_model, model_decode_pixels
from backend.media.errors import MediaError
from backend.media.validate import MediaLimits, inspect_image
from backend.sent_pictures import SentPictures
from backend.vision.labels import LABELS_VERSION, seen_classes, suggest_tags
from backend.vision.preprocess import preprocess
from backend.vision.repository import (
    EmbeddingRepository,
    Hit,
    PictureLabels,
    SimilarityIndex,
    Suggestion,
)
from backend.vision.types import BatchEmbedder, EmbedResult
from backend.vision.worker import EmbeddingWorker
from protocol.errors import BadRequest, NotFound, TooLarge, Unavailable
from protocol.messages.catalogue import ListingFilters, PictureMode
from protocol.messages.vision import SimilarBatch, TagSuggestion

log = logging.getLogger(__name__)

#: Recent example-picture vectors kept so later batches need not resend the picture (all users'
#: together, each entry found only by the user who searched).
QUERY_CACHE_SIZE: Final = 1024
#: Largest example picture accepted for search by image.
MAX_QUERY_BYTES: Final = 8 * 1024 * 1024
#: How many near-duplicates an upload reply names at most.
NEAR_DUPLICATES: Final = 3
#: Seconds a client is asked to wait before it tries a search again while the model warms up.
WARMING_RETRY_AFTER: Final = 5.0
_NO_FILTERS: Final = ListingFilters()

#: ``warming``: building or loading the model and the index; ``ready``: searching;
#: ``failed``: the model could not be built (the rest of the server serves on).
VisionState = Literal["warming", "ready", "failed"]


class VisionService:
    """Similar-image search over the catalogue's items."""

    def __init__(
        self,
        *,
        config: ServerConfig,
        catalogue: CatalogueService,
        embeddings: EmbeddingRepository,
        index: SimilarityIndex,
        embedder_factory: Callable[[threading.Event], BatchEmbedder],
        model_version: str,
        exclusive_job: Callable[[str], AbstractAsyncContextManager[bool]] | None = None,
    ) -> None:
        """Prepare the service; nothing heavy runs until :meth:`start`.

        Args:
            config: The server's configuration (limits, near-duplicate threshold).
            catalogue: Whose items are searched (its hooks keep ``index`` in step).
            embeddings: Where the pictures' embeddings are stored.
            index: Ranks the items embedded by ``model_version``.
            embedder_factory: Builds the embedder on the worker thread; the event it is given
                is set when the server stops, to cut a model conversion short.
            model_version: Stored with every embedding made.
            exclusive_job: Enters a background job if no other server instance is running
                it (``StorageEngine.exclusive_job``); ``None``: always this process.
        """
        self._exclusive_job = exclusive_job
        self._catalogue = catalogue
        self._embeddings = embeddings
        self.index = index
        self._threshold = config.near_duplicate_threshold
        self._limits = MediaLimits(
            max_bytes=min(MAX_QUERY_BYTES, config.limits.max_message_bytes),
            max_pixels=config.limits.max_pixels,
        )
        self.model_version = model_version
        self._stopping = threading.Event()
        self.worker = EmbeddingWorker(lambda: embedder_factory(self._stopping))
        #: Example-picture vectors by (user id, query id).
        self._queries: OrderedDict[tuple[int, str], NDArray[np.float32]] = OrderedDict()
        self._decodes = PixelBudget(config.limits.search_decode_pixels)
        self._warmup: asyncio.Task[None] | None = None
        self._warmup_done = asyncio.Event()
        self.state: VisionState = "warming"
        #: Why the model could not be built, when :attr:`state` is ``failed``.
        self.failure = ""
        #: Pictures still waiting for an embedding of the current model (for progress reports).
        self.backfill_remaining = 0

    # -- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Hook into the catalogue and start warming up in the background; returns at once."""
        self._catalogue.on_item_created(self._item_created)
        self._catalogue.on_items_deleted(self._items_deleted)
        self._catalogue.on_visibility_changed(self._visibility_changed)
        self._warmup = asyncio.create_task(self._warm_up(), name="pixmart-vision-warmup")

    async def wait_ready(self) -> VisionState:
        """Wait until warming up has ended (ready or failed); returns the state."""
        await self._warmup_done.wait()
        return self.state

    async def stop(self) -> None:
        """Stop warming up or re-embedding (a model conversion is killed) and the worker."""
        self._stopping.set()
        if self._warmup is not None:
            self._warmup.cancel()
            await asyncio.gather(self._warmup, return_exceptions=True)
            self._warmup = None
        self._decodes.close()
        await self.worker.close()

    async def _warm_up(self) -> None:
        """Build the embedder, load the index, then embed whatever has no embedding yet."""
        started = time.monotonic()
        try:
            await self.worker.start()
            loaded = await self.index.load()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the rest of the shop serves on without image search
            self.state, self.failure = "failed", str(exc) or type(exc).__name__
            log.error("image search is unavailable: the model could not be built: %s", exc)
            log.debug("model build failure", exc_info=True)
            return
        finally:
            self._warmup_done.set()
        self.state = "ready"
        log.info(
            "image search ready in %.1f s: %d items indexed (%s)",
            time.monotonic() - started,
            loaded,
            self.model_version,
        )
        await self._catch_up()

    async def _catch_up(self) -> None:
        """Embed what has no embedding yet: on one instance of the shop at a time (the
        embeddings are shared, so another instance doing it is as good)."""
        if self._exclusive_job is None:
            await self._embed_missing()
            return
        async with self._exclusive_job("vision.embed-missing") as mine:
            if mine:
                await self._embed_missing()
            else:
                log.info("another server instance is embedding the missing pictures")

    def require_ready(self) -> None:
        """Raise ``unavailable`` unless the model and the index are ready for searches."""
        if self.state == "ready":
            return
        if self.state == "warming":
            raise Unavailable(
                "Image search is warming up (the server is loading its image model); "
                "try again in a few seconds",
                retry_after=WARMING_RETRY_AFTER,
                details={"vision": "warming"},
            )
        raise Unavailable(
            f"Image search is unavailable on this server: {self.failure}",
            details={"vision": "failed"},
        )

    async def _embed_missing(self) -> None:
        """Embed pictures that have no embedding of the current model (new model, old data)."""
        pictures = await self._embeddings.unembedded(self.model_version, LABELS_VERSION)
        self.backfill_remaining = len(pictures)
        if pictures:
            log.info("re-embedding %d pictures with %s", len(pictures), self.model_version)
        started = time.monotonic()
        for done, sha256 in enumerate(pictures, start=1):
            try:
                image = await self._catalogue.model_image(sha256)
                if image is not None:
                    result = await self._embed(image)
                    if await self._store(sha256, result):
                        await self.index.picture_embedded(sha256, result.embedding)
            except (MediaError, OSError, ValueError, Unavailable):
                # Unavailable: the picture store is down; the next start embeds it.
                log.exception("could not re-embed picture %s", sha256)
            self.backfill_remaining = len(pictures) - done
            if done % 100 == 0 or done == len(pictures):
                log.info(
                    "re-embedded %d/%d pictures (%.1f/s)",
                    done,
                    len(pictures),
                    done / max(time.monotonic() - started, 1e-6),
                )

    # -- embeddings --------------------------------------------------------------------------

    async def _embed(self, image: Image.Image) -> EmbedResult:
        pixels = await asyncio.to_thread(preprocess, image)
        return await self.worker.embed(pixels)

    async def _store(self, sha256: str, result: EmbedResult) -> bool:
        """Store a picture's embedding and the classes it shows; ``False`` if it was deleted
        meanwhile."""
        suggestions = [
            Suggestion(s.tag, round(float(s.probability), 4))
            for s in suggest_tags(result.probabilities)
        ]
        return await self._embeddings.store(
            sha256,
            model_version=self.model_version,
            vector=result.embedding,
            suggestions=suggestions,
            labels=PictureLabels(LABELS_VERSION, tuple(seen_classes(result.probabilities))),
        )

    # -- catalogue hooks -----------------------------------------------------------------------

    async def _item_created(self, item: NewItem) -> Sequence[str]:
        """Embed (or reuse) the picture, index the item and name near-duplicates.

        Never fails the upload: a vision problem is logged and the item is listed anyway. While
        the model warms up the item waits for the catch-up pass that follows.
        """
        if self.state != "ready":
            return []
        try:
            vector: NDArray[np.float32] | None = None
            if item.model_image is None:
                vector = await self._embeddings.vector(item.sha256, self.model_version)
            if vector is None:
                # A picture decoded for this upload is embedded even when another seller's item
                # already has its embedding: reusing it made such uploads finish 15 times
                # faster, which told the uploader that someone holds the picture, privately too.
                image = item.model_image or await self._catalogue.model_image(item.sha256)
                if image is None:
                    return []
                result = await self._embed(image)
                if not await self._store(item.sha256, result):
                    return []
                vector = result.embedding
            await self.index.picture_embedded(item.sha256, vector)
            # The item itself is searchable now: ask for one more and leave it out.
            hits = await self.index.search(vector, NEAR_DUPLICATES + 1, viewer_id=item.owner_id)
            others = [hit for hit in hits if hit.item_id != item.item_id][:NEAR_DUPLICATES]
            return await self._near_duplicate_warnings(item.owner_id, others)
        except Exception:  # the upload itself succeeded; vision must not undo that
            log.exception("vision could not process item %d", item.item_id)
            return []

    async def _near_duplicate_warnings(self, owner_id: int, hits: list[Hit]) -> list[str]:
        close = {hit.item_id: hit.score for hit in hits if hit.score >= self._threshold}
        if not close:
            return []
        # Titles only: no thumbnail is read for a warning.
        cards = await self._catalogue.render_cards(
            owner_id, list(close), close, pictures=PictureMode.HASHES
        )
        return [
            f"Looks very like item #{card.id} “{card.title}” "
            f"({round(100 * close[card.id])}% similar)"
            for card in cards
        ]

    async def _items_deleted(self, item_ids: Sequence[int]) -> None:
        await self.index.items_deleted(item_ids)

    async def _visibility_changed(self, item_id: int, public: bool) -> None:
        await self.index.visibility_changed(item_id, public)

    # -- search --------------------------------------------------------------------------------

    async def search_by_image(
        self,
        principal: Principal,
        *,
        image: bytes | None,
        query_id: str | None,
        filters: ListingFilters,
        limit: int | None,
        cursor: str | None,
        pictures: PictureMode = PictureMode.INLINE,
        sent: SentPictures | None = None,
    ) -> SimilarBatch:
        """One batch of the items most like an example picture.

        ``pictures`` and ``sent`` say which thumbnails go inline, as for a browse.

        Raises:
            BadRequest: neither a picture nor a query id, or a bad cursor or filter.
            NotFound: the query id is unknown (expired): send the picture again.
            UnsupportedMedia, TooLarge: the picture is refused, as an upload would be.
            Unavailable: the model is still warming up (with a retry-after) or failed.
        """
        self.require_ready()
        query_id, vector = await self._query_vector(principal, image, query_id)
        batch = await self._rank(
            principal,
            vector,
            "vision.image",
            query_id,
            filters,
            limit,
            cursor,
            exclude=None,
            pictures=pictures,
            sent=sent,
        )
        batch.query_id = query_id
        return batch

    async def _query_vector(
        self, principal: Principal, image: bytes | None, query_id: str | None
    ) -> tuple[str, NDArray[np.float32]]:
        """The query id and embedding of an example picture, sent or remembered."""
        if image is not None:
            if len(image) > self._limits.max_bytes:
                raise TooLarge(
                    f"The example picture is {len(image):,} bytes; the limit is "
                    f"{self._limits.max_bytes:,} bytes"
                )
            picture = await self._decode_query(image)
            query_id = hashlib.sha256(image).hexdigest()
            vector = (await self._embed(picture)).embedding
            self._remember((principal.user_id, query_id), vector)
            return query_id, vector
        if query_id is not None:
            # Only the caller's own searches: another user's answer would tell that somebody
            # searched for the picture with this hash.
            key = (principal.user_id, query_id)
            cached = self._queries.get(key)
            if cached is None:
                raise NotFound("This picture search has expired; send the picture again")
            self._queries.move_to_end(key)
            return query_id, cached
        raise BadRequest("Send an example picture (or the query id of a running search)")

    async def example_vector(
        self,
        principal: Principal,
        *,
        image: bytes | None = None,
        query_id: str | None = None,
        item_id: int | None = None,
    ) -> NDArray[np.float32]:
        """The embedding of an example picture, as a picture search computes it, for another
        domain to keep (a saved search that alerts): a picture sent, the caller's running
        picture search, or an item the caller may see.

        Raises:
            BadRequest: none of them given.
            NotFound: the query id expired, or the item is unknown, invisible or not embedded.
            UnsupportedMedia, TooLarge: the picture is refused, as an upload would be.
            Unavailable: the model is still warming up (with a retry-after) or failed.
        """
        self.require_ready()
        if item_id is not None:
            if not await self._catalogue.visible_among(principal, [item_id]):
                raise NotFound(f"There is no item {item_id}")
            vector = await self.index.vector_of(item_id)
            if vector is None:
                raise NotFound(f"Item {item_id} has no picture embedding yet; try again shortly")
            return vector
        return (await self._query_vector(principal, image, query_id))[1]

    async def similar_to_item(
        self,
        principal: Principal,
        item_id: int,
        filters: ListingFilters,
        limit: int | None,
        cursor: str | None,
        pictures: PictureMode = PictureMode.INLINE,
        sent: SentPictures | None = None,
    ) -> SimilarBatch:
        """One batch of the items most like a stored item (no inference; the item left out).

        ``pictures`` and ``sent`` say which thumbnails go inline, as for a browse.
        """
        self.require_ready()
        if not await self._catalogue.visible_among(principal, [item_id]):
            raise NotFound(f"There is no item {item_id}")
        vector = await self.index.vector_of(item_id)
        if vector is None:
            raise NotFound(f"Item {item_id} has no picture embedding yet; try again shortly")
        return await self._rank(
            principal,
            vector,
            "vision.item",
            item_id,
            filters,
            limit,
            cursor,
            exclude=item_id,
            pictures=pictures,
            sent=sent,
        )

    async def _decode_query(self, data: bytes) -> Image.Image:
        """Check an example picture as an upload is checked and decode it for the model, once.

        The headers are checked first (format, pixel count, animation); the one decode, reduced
        where the format allows, then waits for room in the pixel budget and finds any damage.

        Raises:
            UnsupportedMedia, TooLarge: the picture is refused, as an upload would be.
        """
        try:
            info = await asyncio.to_thread(inspect_image, data, self._limits, decode=False)
            return await self._decodes.run(model_decode_pixels(info), decode_for_model, data, info)
        except MediaError as exc:
            raise protocol_error(exc) from None

    def _remember(self, key: tuple[int, str], vector: NDArray[np.float32]) -> None:
        self._queries[key] = vector
        self._queries.move_to_end(key)
        while len(self._queries) > QUERY_CACHE_SIZE:
            self._queries.popitem(last=False)

    async def _rank(
        self,
        principal: Principal,
        vector: NDArray[np.float32],
        scope: str,
        key: object,
        filters: ListingFilters,
        limit: int | None,
        cursor: str | None,
        *,
        exclude: int | None,
        pictures: PictureMode,
        sent: SentPictures | None,
    ) -> SimilarBatch:
        viewer = principal.user_id
        size = self._catalogue.listings.batch_size(limit)
        binding = cursor_binding(scope, viewer, key, msgspec.to_builtins(filters))
        after: tuple[float, int] | None = None
        if cursor is not None:
            position = self._catalogue.cursors.open(cursor, binding)
            if len(position) != 2:
                raise BadRequest("The cursor does not belong to this search")
            after = (float(position[0]), int(position[1]))
        among: list[int] | None = None
        total: int | None = None
        if filters != _NO_FILTERS:
            among = await self._catalogue.visible_item_ids(viewer, filters)
            total = len(among)
        elif cursor is None:
            total = await self.index.count_visible(viewer)
        # One more than a batch tells whether another batch exists; one more for ``exclude``.
        wanted = size + 1 + (exclude is not None)
        hits = await self.index.search(vector, wanted, viewer_id=viewer, after=after, among=among)
        hits = [hit for hit in hits if hit.item_id != exclude]
        if total is not None and exclude is not None and cursor is None:
            total = max(0, total - 1)
        page, more = hits[:size], len(hits) > size
        scores = {hit.item_id: float(hit.score) for hit in page}
        cards = await self._catalogue.render_cards(
            viewer, [hit.item_id for hit in page], scores, pictures=pictures, sent=sent
        )
        next_cursor = None
        if more and page:
            last = page[-1]
            next_cursor = self._catalogue.cursors.seal(binding, [float(last.score), last.item_id])
        return SimilarBatch(id=0, items=cards, cursor=next_cursor, total=total)

    # -- tag suggestions -------------------------------------------------------------------------

    async def tag_suggestions(self, principal: Principal, item_id: int) -> list[TagSuggestion]:
        """The model's tag proposals for an item of the caller's, minus the tags it carries."""
        found = await self._embeddings.item_suggestions(item_id)
        if found is None or (found.owner_id != principal.user_id and not principal.is_admin):
            raise NotFound(f"There is no item {item_id} of yours")
        return [
            TagSuggestion(tag=s.tag, score=s.probability)
            for s in found.suggestions
            if s.tag not in found.tags
        ]
