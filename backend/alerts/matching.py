"""Provides :class:`AlertMatcher`: new and changed items matched against every saved search.

Items to match wait in the database's backlog (:mod:`backend.alerts.backlog`), queued in the
transaction that wrote them, so an upload or an edit does not wait for the matching and a crash
does not lose it; the catalogue's hooks only wake the drain. Matching an item reads it as it
stands then (not as the hook saw it), finds the picture searches its embedding satisfies with
one matrix product (:class:`PictureMatcher`), and hands the rest to one transaction of the
repository that finds and records the (search, item) pairs not alerted yet, stores each one's
inbox notice for the search's owner (the inbox checks again that they may see the item) and
settles the backlog entry. The sessions hear of the notices after that commit.

An item whose embedding is not there yet (uploaded while the model warms up, or not yet
embedded again after a model upgrade) is matched by its words, tags, price and stock at once;
its entry then waits for the embedding (looked at again with a growing delay) and is matched by
picture once it is stored, for at most :data:`PICTURE_WAIT_SECONDS` (then the picture searches
miss it, and a line of the log says so). The database's record of each pair keeps every
(search, item) to one notice, whichever pass or instance finds it.

Picture searches saved or removed on another instance arrive as facts
(:mod:`backend.alerts.live`); a periodic reload catches up on facts missed while the bus was
down.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Final

import msgspec
import numpy as np
from numpy.typing import NDArray

from backend.alerts.backlog import BacklogDrain
from backend.alerts.criteria import item_tokens
from backend.alerts.pictures import PictureMatcher
from backend.alerts.repository import (
    AlertRepository,
    BacklogEntry,
    ItemFacts,
    ItemProbe,
    Match,
    PictureSearch,
    Recorded,
    Settle,
)
from backend.inbox.notices import NewNotice
from backend.inbox.service import InboxService
from backend.vision.service import VisionService
from protocol.messages.catalogue import ListingFilters
from protocol.messages.inbox import NoticeKind
from protocol.saved_searches import describe_search

log = logging.getLogger(__name__)

#: The length of the image model's embeddings.
DIMENSIONS: Final = 1280
#: Seconds between reloads of the picture searches on a database other instances share.
RESYNC_SECONDS: Final = 600.0
#: Seconds :meth:`AlertMatcher.stop` lets the due items be matched before it stops (the rest
#: stay in the backlog for the next start).
DRAIN_SECONDS: Final = 2.0
#: The longest an item waits for its embedding before the picture searches give up on it.
PICTURE_WAIT_SECONDS: Final = 900.0
#: The longest delay between two looks for an item's embedding.
PICTURE_RETRY_SECONDS: Final = 30.0

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
        picture_wait: The longest an item waits for its embedding, in seconds.
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
        picture_wait: float = PICTURE_WAIT_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._repository = repository
        self._inbox = inbox
        self._vision = vision
        self._currency = currency
        self._shared = shared
        self._picture_wait = picture_wait
        self._clock = clock
        self.pictures = PictureMatcher(DIMENSIONS)
        #: The model version whose picture searches :attr:`pictures` holds (once loaded).
        self._model: str | None = None
        self._generation = 0
        #: Drains the backlog of items to match.
        self.backlog = BacklogDrain(repository, self.match_entry)
        self._tasks: list[asyncio.Task[None]] = []
        self._reloads: set[asyncio.Task[None]] = set()

    # -- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start draining the backlog (leftovers first), and load the picture searches once the
        model is ready."""
        self._tasks = [
            asyncio.create_task(self._keep_pictures(), name="pixmart-alerts-pictures"),
        ]
        self.backlog.start()

    async def stop(self) -> None:
        """Let the due items be matched for a moment, then stop (the rest stay queued)."""
        if self.backlog.running:
            try:
                await asyncio.wait_for(self.backlog.idle(), DRAIN_SECONDS)
            except TimeoutError:
                pass  # the rest stay queued for the next start
            except Exception:
                log.exception("saved searches: matching the due items before stopping failed")
        await self.backlog.stop()
        for task in [*self._tasks, *self._reloads]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._reloads, return_exceptions=True)
        self._tasks = []

    async def idle(self) -> None:
        """Wait until every item due so far has been matched (tests, benchmarks)."""
        await self.backlog.idle()

    # -- items -----------------------------------------------------------------------------

    def wake(self) -> None:
        """Match the backlog's due items now (an item was just written here); never blocks."""
        self.backlog.wake()

    async def match(self, item_id: int) -> list[Match]:
        """Match one item now, outside the backlog, and deliver its alerts; return the new
        (search, item) pairs."""
        facts = await self._repository.item_facts(item_id)
        if facts is None:
            return []  # deleted meanwhile
        similar, _ = await self._picture_scores(item_id)
        recorded = await self._record(facts, similar, None)
        return recorded.matches if recorded is not None else []

    async def match_entry(self, entry: BacklogEntry) -> bool:
        """Match a backlog entry's item and settle the entry in the same transaction: deleted,
        or kept until the item's embedding is there (see the module docstring).

        Returns:
            ``False`` if it was not this instance's to settle (another holds it, or the item
            changed since the entry was read: it is due again).
        """
        facts = await self._repository.item_facts(entry.item_id)
        if facts is None:
            await self._repository.discard(entry)  # deleted meanwhile
            return True
        similar, waiting = await self._picture_scores(entry.item_id)
        retry_in = None
        if waiting:
            if entry.age < self._picture_wait:
                # Soon at first (the embedding usually follows within seconds), then less often.
                retry_in = min(PICTURE_RETRY_SECONDS, max(1.0, entry.age / 2))
            else:
                log.info(
                    "saved searches: item %d had no embedding after %.0f s; matched without"
                    " its picture",
                    entry.item_id,
                    entry.age,
                )
        return await self._record(facts, similar, Settle(entry, retry_in)) is not None

    async def _record(
        self, facts: ItemFacts, similar: dict[int, float], settle: Settle | None
    ) -> Recorded | None:
        """Record the item's new matches, store their notices and settle its entry (one
        transaction); then tell the owners' sessions."""
        tokens, prefixes = item_tokens(facts)
        probe = ItemProbe(facts, tokens, prefixes, tuple(sorted(similar)))

        def notice_for(found: Match) -> NewNotice:
            text = self._text(found, facts.title, similar.get(found.search_id))
            return NewNotice(kind=NoticeKind.ALERT_MATCH, text=text, item_id=facts.id)

        recorded = await self._repository.record_matches(
            probe, self._clock(), notice_for, keep=self._inbox.keep, settle=settle
        )
        if recorded is not None:
            self._inbox.announce(recorded.delivered)
        return recorded

    async def _picture_scores(self, item_id: int) -> tuple[dict[int, float], bool]:
        """The picture searches the item looks like enough (id to similarity), and whether
        they cannot tell yet (model warming, searches not loaded, item not embedded)."""
        vision = self._vision()
        if vision is None or vision.state == "failed":
            return {}, False
        if vision.state != "ready" or self._model != vision.model_version:
            return {}, True
        if not len(self.pictures):
            return {}, False
        vector = await vision.index.vector_of(item_id)
        if vector is None:
            return {}, True
        return self.pictures.matching(vector), False

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
                first = self._model is None
                await self._load(model, first=first)
                self._model = model
                if first:
                    # Items matched while the searches were loading wait for them: now.
                    await self._repository.wake_waiting()
                    self.backlog.wake()
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
