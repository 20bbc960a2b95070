"""Provides :class:`AlertMatcher`: new and changed items matched against every saved search.

The catalogue's hooks only queue the item's id (:meth:`AlertMatcher.enqueue`), so an upload or an
edit does not wait for the matching; one background task per instance takes the queue in order.
Matching an item reads it as it stands then (not as the hook saw it), finds the picture searches
its embedding satisfies with one matrix product (:class:`PictureMatcher`), and hands the rest to
one statement of the repository that finds and records the (search, item) pairs not alerted yet.
Each new pair becomes an inbox notice for the search's owner; the inbox checks again that they
may see the item.

The matching runs on the instance that wrote the item, once: the hooks fire only there, and the
database's record of each pair stops a second alert even if two edits of the same item are
matched at once on two instances. Picture searches saved or removed on another instance arrive
as facts (:mod:`backend.alerts.live`); a periodic reload catches up on facts missed while the
bus was down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Final

import msgspec
import numpy as np
from numpy.typing import NDArray

from backend.alerts.criteria import item_tokens
from backend.alerts.pictures import PictureMatcher
from backend.alerts.repository import AlertRepository, ItemProbe, Match, PictureSearch
from backend.inbox.notices import NewNotice
from backend.inbox.service import InboxService
from backend.vision.service import VisionService
from protocol.messages.catalogue import ListingFilters
from protocol.messages.inbox import NoticeKind
from protocol.saved_searches import describe_search

log = logging.getLogger(__name__)

#: Items waiting to be matched; beyond this (a bulk import faster than matching) the newest
#: are not matched, and a warning says so.
QUEUE_LIMIT: Final = 50_000
#: The length of the image model's embeddings.
DIMENSIONS: Final = 1280
#: Seconds between reloads of the picture searches on a database other instances share.
RESYNC_SECONDS: Final = 600.0
#: Seconds :meth:`AlertMatcher.stop` lets the queue drain before it gives up on the rest.
DRAIN_SECONDS: Final = 2.0

#: The running vision service, or ``None`` (the image model off or not built).
VisionLookup = Callable[[], VisionService | None]


class AlertMatcher:
    """Matches items against saved searches in the background and delivers the alerts.

    Args:
        repository: The saved searches.
        inbox: Where alerts are delivered.
        vision: The vision service, when the server runs the image model.
        currency: The shop's currency, for the notices' words.
        shared: Whether other instances share the database (then reload picture searches
            every :data:`RESYNC_SECONDS`).
        clock: The server clock.
    """

    def __init__(
        self,
        repository: AlertRepository,
        inbox: InboxService,
        vision: VisionLookup,
        *,
        currency: str,
        shared: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._repository = repository
        self._inbox = inbox
        self._vision = vision
        self._currency = currency
        self._shared = shared
        self._clock = clock
        self.pictures = PictureMatcher(DIMENSIONS)
        #: The model version whose picture searches :attr:`pictures` holds (once loaded).
        self._model: str | None = None
        self._generation = 0
        self._queue: asyncio.Queue[int] = asyncio.Queue(QUEUE_LIMIT)
        self._tasks: list[asyncio.Task[None]] = []
        self._reloads: set[asyncio.Task[None]] = set()

    # -- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the matching task, and load the picture searches once the model is ready."""
        self._tasks = [
            asyncio.create_task(self._run(), name="pixmart-alerts-matching"),
            asyncio.create_task(self._keep_pictures(), name="pixmart-alerts-pictures"),
        ]

    async def stop(self) -> None:
        """Let the queue drain for a moment, then stop (items still queued are not matched)."""
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), DRAIN_SECONDS)
        for task in [*self._tasks, *self._reloads]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._reloads, return_exceptions=True)
        self._tasks = []

    async def idle(self) -> None:
        """Wait until every item queued so far has been matched (tests, benchmarks)."""
        await self._queue.join()

    # -- items -----------------------------------------------------------------------------

    def enqueue(self, item_id: int) -> None:
        """Match ``item_id`` in the background, soon; never blocks."""
        try:
            self._queue.put_nowait(item_id)
        except asyncio.QueueFull:
            log.warning(
                "saved searches: %d items wait already; item %d not matched", QUEUE_LIMIT, item_id
            )

    async def match(self, item_id: int) -> list[Match]:
        """Match one item now and deliver its alerts; return the new (search, item) pairs."""
        facts = await self._repository.item_facts(item_id)
        if facts is None:
            return []  # deleted meanwhile
        tokens, prefixes = item_tokens(facts)
        similar = await self._picture_scores(item_id)
        probe = ItemProbe(facts, tokens, prefixes, tuple(sorted(similar)))
        matches = await self._repository.record_matches(probe, self._clock())
        for found in matches:
            notice = NewNotice(
                kind=NoticeKind.ALERT_MATCH,
                text=self._text(found, facts.title, similar.get(found.search_id)),
                item_id=facts.id,
            )
            await self._inbox.deliver(found.user_id, notice)
        return matches

    async def _run(self) -> None:
        while True:
            item_id = await self._queue.get()
            try:
                await self.match(item_id)
            except Exception:  # one item's failure must not stop the alerts of the next
                log.exception("saved searches: matching item %d failed", item_id)
            finally:
                self._queue.task_done()

    async def _picture_scores(self, item_id: int) -> dict[int, float]:
        vision = self._vision()
        if vision is None or self._model != vision.model_version or not len(self.pictures):
            return {}
        vector = await vision.index.vector_of(item_id)
        if vector is None:
            return {}  # not embedded (yet): the picture searches cannot tell
        return self.pictures.matching(vector)

    def _text(self, found: Match, title: str, score: float | None) -> str:
        filters = msgspec.json.decode(found.filters_json, type=ListingFilters)
        described = describe_search(
            filters,
            like_label=found.like_label,
            min_similarity=None,
            currency=self._currency,
        )
        if found.like_label is not None:
            alike = f"{round(100 * score)}% " if score is not None else ""
            picture = f"looks {alike}like {found.like_label}"
            described = picture if described == "everything" else f"{described} · {picture}"
        return f"“{title}” matches your saved search: {described}"

    # -- picture searches ------------------------------------------------------------------

    def picture_added(self, search_id: int, vector: NDArray[np.float32], least: int) -> None:
        """Hold a picture search saved on this instance."""
        self._generation += 1
        self.pictures.add(PictureSearch(search_id, vector, least))

    def picture_removed(self, search_id: int) -> bool:
        """Forget a picture search; ``False`` if it was not held."""
        self._generation += 1
        return self.pictures.remove(search_id)

    def changed_elsewhere(self, search_id: int) -> None:
        """Read a search saved or removed on another instance, in the background."""
        task = asyncio.create_task(self._reload_one(search_id), name="pixmart-alerts-reload")
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def _reload_one(self, search_id: int) -> None:
        if self._model is None:
            return  # not loaded yet: the load reads it
        try:
            found = await self._repository.picture_search(search_id, self._model)
        except Exception:
            log.exception("saved searches: reading picture search %d failed", search_id)
            return
        self._generation += 1
        if found is None:
            self.pictures.remove(search_id)
        else:
            self.pictures.add(found)

    async def _keep_pictures(self) -> None:
        """Load the picture searches once the model is ready; on a shared database, reload."""
        vision = self._vision()
        if vision is None or await vision.wait_ready() != "ready":
            return
        model = vision.model_version
        while True:
            try:
                await self._load(model, first=self._model is None)
                self._model = model
            except Exception:
                log.exception("saved searches: loading the picture searches failed")
            if not self._shared:
                return
            await asyncio.sleep(RESYNC_SECONDS)

    async def _load(self, model: str, *, first: bool) -> None:
        generation = self._generation
        searches = await self._repository.picture_searches(model)
        if first:
            # Searches saved while this read ran are held already; the read has them too.
            for search in searches:
                self.pictures.add(search)
            log.info("saved searches: %d picture searches loaded", len(searches))
        elif generation == self._generation:
            # Only if nothing changed meanwhile: a search saved during the read could be lost.
            self.pictures.replace_all(searches)
