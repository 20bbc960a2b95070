"""Provides :class:`SavedSearchService`: a user's saved searches, saved, listed and removed.

Every method acts on the searches of the user it is handed by the handler (the caller's own id,
never one from a request), so nobody lists or removes another's. The bounds (per user, per shop,
picture searches per shop) are checked in the transaction that adds a search.

A picture search keeps the example's embedding, computed by the vision service exactly as a
picture search computes it, and goes into the in-memory :class:`~backend.alerts.pictures.
PictureMatcher` of this instance; the other instances hear of it through the event bus
(:mod:`backend.alerts.live`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Final

import msgspec

from backend.alerts.criteria import draft_for, is_empty, saved_filters
from backend.alerts.live import PictureSearchesChanged
from backend.alerts.matching import AlertMatcher
from backend.alerts.repository import AlertRepository, SearchLimits, StoredSearch
from backend.auth import Principal
from backend.events import EventHub
from backend.vision.service import VisionService
from protocol.errors import BadRequest, NotFound, Unavailable
from protocol.messages.alerts import SavedSearch, SaveSearch
from protocol.messages.catalogue import ListingFilters

#: Saved searches one user may keep.
PER_USER: Final = 100
#: Saved searches the shop keeps, all users together.
TOTAL: Final = 200_000
#: Picture searches the shop keeps: each holds 5 KB of memory on every instance.
PICTURES: Final = 50_000
#: The bounds a server keeps saved searches within.
DEFAULT_LIMITS: Final = SearchLimits(per_user=PER_USER, total=TOTAL, pictures=PICTURES)
#: The least similarity of a picture search saved without one, in percent. Whitened embeddings
#: (pipeline revision 6) spread scores lower: as many pairs of the development set reach 68% as
#: reached 80% before, and an 80% crop of a picture scores 83% (median) with its original.
DEFAULT_MIN_SIMILARITY: Final = 70

#: The running vision service, or ``None`` (the image model off or not built).
VisionLookup = Callable[[], VisionService | None]


class SavedSearchService:
    """Save, list and remove one's saved searches.

    Args:
        repository: Where saved searches are stored.
        matcher: Matches items against them (holds the picture searches of this instance).
        events: Shares picture-search changes with the other instances.
        vision: The vision service, when the server runs the image model.
        limits: The bounds on saved searches.
        clock: The server clock.
    """

    def __init__(
        self,
        repository: AlertRepository,
        matcher: AlertMatcher,
        events: EventHub,
        vision: VisionLookup,
        *,
        limits: SearchLimits = DEFAULT_LIMITS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._repository = repository
        self._matcher = matcher
        self._events = events
        self._vision = vision
        self.limits = limits
        self._clock = clock

    async def save(self, principal: Principal, request: SaveSearch) -> SavedSearch:
        """Save a search for the caller.

        Raises:
            BadRequest: invalid filters, several example pictures, a similarity without a
                picture, or a search that asks for nothing.
            NotFound: the example item or running picture search is unknown to the caller.
            Unavailable: a picture search on a server without (a ready) image model.
            SearchLimitReached: the caller or the shop keeps as many as allowed.
        """
        filters, criteria = saved_filters(request.filters, principal.user_id)
        examples = [
            x
            for x in (request.like_image, request.like_query_id, request.like_item_id)
            if x is not None
        ]
        if len(examples) > 1:
            raise BadRequest("Give one example picture: a picture, a query id or an item")
        if not examples and request.min_similarity is not None:
            raise BadRequest("A least similarity goes with an example picture")
        if not examples and is_empty(filters):
            raise BadRequest(
                "Say what to look for: words, tags, a price range, stock, a seller or a picture"
            )
        draft = draft_for(principal.user_id, filters, criteria, msgspec.json.encode(filters))
        if examples:
            vision = self._require_vision()
            vector = await vision.example_vector(
                principal,
                image=request.like_image,
                query_id=request.like_query_id,
                item_id=request.like_item_id,
            )
            label = request.like_label.strip() or (
                f"item #{request.like_item_id}" if request.like_item_id else "a picture"
            )
            draft = replace(
                draft,
                like_label=label,
                like_vector=vector,
                like_model=vision.model_version,
                min_similarity=request.min_similarity or DEFAULT_MIN_SIMILARITY,
            )
        stored = await self._repository.add(draft, self._clock(), self.limits)
        if draft.like_vector is not None and draft.min_similarity is not None:
            self._matcher.picture_added(stored.id, draft.like_vector, draft.min_similarity)
            self._events.share(PictureSearchesChanged(search_id=stored.id))
        return _view(stored)

    async def searches(self, user_id: int) -> list[SavedSearch]:
        """The user's saved searches, oldest first."""
        return [_view(stored) for stored in await self._repository.searches(user_id)]

    async def remove(self, user_id: int, search_id: int) -> None:
        """Remove one of the user's saved searches.

        Raises:
            NotFound: the user has no saved search of that id (another's included).
        """
        if not await self._repository.remove(user_id, search_id):
            raise NotFound(f"You have no saved search {search_id}")
        self._matcher.picture_removed(search_id)
        # Whether or not it was a picture search: the others look it up and drop it if held.
        self._events.share(PictureSearchesChanged(search_id=search_id))

    def _require_vision(self) -> VisionService:
        vision = self._vision()
        if vision is None:
            raise Unavailable(
                "This server runs without its image model, so it cannot keep picture searches",
                details={"vision": "off"},
            )
        return vision


def _view(stored: StoredSearch) -> SavedSearch:
    return SavedSearch(
        id=stored.id,
        filters=msgspec.json.decode(stored.filters_json, type=ListingFilters),
        like_label=stored.like_label,
        min_similarity=stored.min_similarity,
        created_at=stored.created_at,
    )
