"""Unit tests of saved-search matching: words as tokens, an item's tokens and prefixes, and the
in-memory matrix of picture searches (thresholds, removal, growth)."""

from __future__ import annotations

import asyncio
from typing import cast

import numpy as np
import pytest
from numpy.typing import NDArray

from backend.alerts.criteria import item_tokens, saved_filters, word_tokens
from backend.alerts.matching import DIMENSIONS, AlertMatcher
from backend.alerts.pictures import INITIAL_ROWS, PictureMatcher
from backend.alerts.repository import (
    AlertRepository,
    BacklogEntry,
    ItemFacts,
    PictureSearch,
    WordToken,
)
from backend.inbox.service import InboxService
from backend.vision.service import VisionService
from protocol.errors import BadRequest
from protocol.messages.catalogue import ListingFilters


def _unit(*values: float) -> NDArray[np.float32]:
    vector = np.array(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def _facts(title: str, description: str = "", tags: tuple[str, ...] = ()) -> ItemFacts:
    return ItemFacts(
        id=1,
        owner_id=1,
        public=True,
        title=title,
        description=description,
        tags=tags,
        price_cents=100,
        stock=1,
    )


def test_the_last_word_is_a_prefix_and_the_others_whole() -> None:
    assert word_tokens("Blue  Océ") == (WordToken("blue", False), WordToken("oce", True))
    # A word the engines split asks for each token; a token asked twice is asked whole.
    assert word_tokens("sun_set sun") == (WordToken("sun", False), WordToken("set", False))
    assert word_tokens("") == ()
    assert word_tokens("!!!") == ()


def test_an_item_is_looked_up_by_its_tokens_and_their_prefixes() -> None:
    tokens, prefixes = item_tokens(_facts("Blue Océan", "big-wave", ("sea",)))
    assert tokens == ("blue", "ocean", "big", "wave", "sea")
    assert {"b", "bl", "blu", "blue", "o", "oce", "ocean", "wav", "se"} <= set(prefixes)
    assert len(prefixes) == len(set(prefixes))
    # The very long token of a pasted hash gives prefixes no search word could be, not more.
    long_tokens, long_prefixes = item_tokens(_facts("x" * 300))
    assert long_tokens == ("x" * 300,) and max(map(len, long_prefixes)) == 64


def test_saved_filters_are_normalised_and_checked() -> None:
    saved, criteria = saved_filters(
        ListingFilters(text="  red   fox ", tags=["Wild", "red"], mine=True), user_id=7
    )
    assert saved == ListingFilters(text="red fox", tags=["red", "wild"], owner_id=7)
    assert criteria.tags == ("red", "wild")
    with pytest.raises(BadRequest, match="letters or digits"):
        saved_filters(ListingFilters(text="?!"), user_id=7)
    with pytest.raises(BadRequest, match="lowest price"):
        saved_filters(ListingFilters(min_price_cents=9, max_price_cents=1), user_id=7)


def test_picture_searches_match_at_or_above_their_threshold() -> None:
    matcher = PictureMatcher(2)
    matcher.add(PictureSearch(1, _unit(1, 0), 90))
    matcher.add(PictureSearch(2, _unit(0, 1), 90))
    matcher.add(PictureSearch(3, _unit(1, 1), 70))
    found = matcher.matching(_unit(1, 0.1))
    assert sorted(found) == [1, 3]
    assert found[1] == pytest.approx(0.995, abs=1e-3)
    assert found[3] == pytest.approx(0.774, abs=1e-3)
    # Exactly at the threshold counts: "at least 100% alike" is the example itself.
    matcher.add(PictureSearch(4, _unit(0, 1), 100))
    assert 4 in matcher.matching(_unit(0, 1))
    assert matcher.matching(_unit(-1, -1)) == {}


def test_removing_moves_the_last_row_and_growing_keeps_every_row() -> None:
    matcher = PictureMatcher(3)
    count = 3 * INITIAL_ROWS + 5
    rng = np.random.default_rng(5)
    vectors = {i: _unit(*rng.normal(size=3)) for i in range(1, count + 1)}
    for search_id, vector in vectors.items():
        matcher.add(PictureSearch(search_id, vector, 99))
    assert len(matcher) == count
    assert matcher.remove(1) and not matcher.remove(1)
    assert 1 not in matcher and count in matcher
    # Every remaining search still finds its own example, the moved last one included.
    for search_id in (2, count // 2, count):
        assert search_id in matcher.matching(vectors[search_id])
    assert 1 not in matcher.matching(vectors[1])
    # Saved again with another threshold: its row is replaced, not doubled.
    matcher.add(PictureSearch(count, vectors[count], 50))
    assert len(matcher) == count - 1
    matcher.replace_all([PictureSearch(9, vectors[9], 99)])
    assert len(matcher) == 1 and list(matcher.matching(vectors[9])) == [9]


def test_a_vector_of_another_length_is_refused() -> None:
    with pytest.raises(ValueError, match="dimensions"):
        PictureMatcher(4).add(PictureSearch(1, _unit(1, 0), 80))


class _Vision:
    """Stands in for the vision service: a ready model of one version."""

    model_version = "m1"
    state = "ready"

    async def wait_ready(self) -> str:
        return "ready"


class _Searches:
    """Stands in for the repository's picture searches, as another instance changes them."""

    def __init__(self) -> None:
        self.stored: dict[int, PictureSearch] = {}

    async def picture_searches(self, model_version: str) -> list[PictureSearch]:
        return list(self.stored.values()) if model_version == "m1" else []

    async def picture_search(self, search_id: int, model_version: str) -> PictureSearch | None:
        return self.stored.get(search_id) if model_version == "m1" else None

    # An empty backlog, for the matcher's drain.

    async def due(self, limit: int) -> list[BacklogEntry]:
        return []

    async def take_overflow(self) -> None:
        return None

    async def wake_waiting(self) -> None:
        return None


async def test_picture_searches_saved_or_removed_elsewhere_are_read_again() -> None:
    searches = _Searches()
    searches.stored[1] = PictureSearch(1, _unit(1, 0, *[0] * (DIMENSIONS - 2)), 90)
    matcher = AlertMatcher(
        cast(AlertRepository, searches),
        cast(InboxService, object()),
        lambda: cast(VisionService, _Vision()),
        currency="EUR",
    )
    await matcher.start()
    try:
        for _ in range(100):
            if 1 in matcher.pictures:
                break
            await asyncio.sleep(0.01)
        assert 1 in matcher.pictures  # loaded at start

        # Another instance saves search 2 and removes search 1, and says so.
        searches.stored[2] = PictureSearch(2, _unit(0, 1, *[0] * (DIMENSIONS - 2)), 90)
        del searches.stored[1]
        matcher.changed_elsewhere(2)
        matcher.changed_elsewhere(1)
        for _ in range(100):
            if 2 in matcher.pictures and 1 not in matcher.pictures:
                break
            await asyncio.sleep(0.01)
        assert 2 in matcher.pictures and 1 not in matcher.pictures
    finally:
        await matcher.stop()
