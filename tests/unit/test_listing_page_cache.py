"""The cache of listing batches: what it keys on, what it keeps, when it forgets."""

from __future__ import annotations

import pytest

from backend.catalogue.cursors import CursorSigner
from backend.catalogue.filters import Criteria
from backend.catalogue.listing import Listings
from backend.catalogue.live import ItemChangedFact, listen, publish_added, publish_removed
from backend.catalogue.page_cache import ListingPageCache, page_key
from backend.catalogue.seen import SeenMatch
from backend.eventbus import EventBus
from backend.events import EventHub
from protocol.messages.catalogue import ItemCard, ListingFilters, SortOrder


def _card(item_id: int, *, thumbnail: bytes | None = None) -> ItemCard:
    return ItemCard(
        id=item_id,
        title=f"item {item_id}",
        price_cents=100,
        stock=1,
        public=True,
        owner_id=1,
        owner_name="alice",
        tags=["a"],
        width=10,
        height=10,
        created_at=float(item_id),
        thumbnail=thumbnail,
        thumbnail_sha256="ab" * 32,
        thumbnail_size=3,
    )


def _key(viewer_id: int = 1, cursor: str | None = None, **criteria: object) -> tuple[object, ...]:
    return page_key(viewer_id, SortOrder.NEWEST, Criteria(**criteria), cursor, 24)  # type: ignore[arg-type]


def test_a_batch_comes_back_as_a_copy_without_picture_bytes() -> None:
    cache = ListingPageCache()
    cache.put(_key(), cache.generation, [_card(1, thumbnail=b"abc")], "next", 7)
    first = cache.get(_key())
    assert first is not None
    assert [card.id for card in first.items] == [1]
    assert (first.cursor, first.total) == ("next", 7)
    assert first.items[0].thumbnail is None  # filled per connection, never kept
    first.items[0].thumbnail = b"sent to one connection"
    again = cache.get(_key())
    assert again is not None and again.items[0].thumbnail is None


def test_viewers_filters_and_cursors_never_share_an_entry() -> None:
    cache = ListingPageCache()
    cache.put(_key(viewer_id=1), cache.generation, [_card(1)], None, 1)
    assert cache.get(_key(viewer_id=2)) is None  # Bob never gets Alice's private items
    assert cache.get(_key(cursor="c")) is None
    assert cache.get(_key(tags=("cat",))) is None
    assert cache.get(_key(in_stock=True)) is None
    assert cache.get(page_key(1, SortOrder.PRICE_UP, Criteria(), None, 24)) is None
    assert cache.get(page_key(1, SortOrder.NEWEST, Criteria(), None, 12)) is None
    assert cache.get(_key(viewer_id=1)) is not None


def test_a_change_empties_it_and_a_batch_read_meanwhile_is_not_kept() -> None:
    cache = ListingPageCache()
    cache.put(_key(), cache.generation, [_card(1)], None, 1)
    read_from = cache.generation  # a read starts ...
    cache.invalidate()  # ... an edit commits while it runs ...
    assert cache.get(_key()) is None
    cache.put(_key(cursor="c"), read_from, [_card(1)], None, 1)  # ... its result is stale
    assert len(cache) == 0


def test_old_entries_are_not_used_and_the_cache_is_bounded() -> None:
    now = [0.0]
    cache = ListingPageCache(max_pages=2, max_age=30.0, clock=lambda: now[0])
    for n in range(3):
        cache.put(_key(cursor=str(n)), cache.generation, [_card(n)], None, None)
    assert len(cache) == 2 and cache.get(_key(cursor="0")) is None  # least recently used out
    now[0] = 31.0
    assert cache.get(_key(cursor="2")) is None
    with pytest.raises(ValueError):
        ListingPageCache(max_pages=0)


def test_item_events_here_and_from_other_instances_empty_it() -> None:
    events, bus = EventHub(), EventBus()
    listen(bus, events)
    cache = ListingPageCache()
    events.watch("catalogue", cache.invalidate)

    def filled() -> int:
        cache.put(_key(), cache.generation, [_card(1)], None, 1)
        return len(cache)

    assert filled() == 1
    publish_added(events, item_id=2, owner_id=1, public=False)  # a private upload counts too
    assert len(cache) == 0
    assert filled() == 1
    publish_removed(events, item_id=1, owner_id=1, public=True)
    assert len(cache) == 0
    assert filled() == 1
    bus.receive(
        ItemChangedFact(
            item_id=1, owner_id=1, title="t", price_cents=1, stock=0, public=False, was_public=True
        )
    )  # made private on another instance
    assert len(cache) == 0


class _Repository:
    """Just what :class:`Listings` reads, counting the reads."""

    def __init__(self) -> None:
        self.reads = 0

    async def page(
        self, viewer_id: int, criteria: Criteria, sort: SortOrder, **_: object
    ) -> list[ItemCard]:
        self.reads += 1
        return [_card(1)]

    async def count(self, viewer_id: int, criteria: Criteria) -> int:
        return 1


class _Vocabulary:
    """Names one class for the word "dog", none for anything else."""

    def match(self, words: tuple[str, ...]) -> SeenMatch | None:
        return SeenMatch({1: "golden retriever"}, 0.5) if words == ("dog",) else None


async def test_listings_use_it_except_for_matches_by_what_the_model_sees() -> None:
    items = _Repository()
    listings = Listings(
        items,  # type: ignore[arg-type]
        CursorSigner(b"s" * 32),
        batch_default=24,
        batch_max=100,
        cache=ListingPageCache(),
    )
    listings.vocabulary = _Vocabulary()  # type: ignore[assignment]
    for text in ("", "", "cat", "cat"):
        await listings.browse(1, ListingFilters(text=text), SortOrder.NEWEST)
    assert items.reads == 2  # once per listing, then from the cache
    await listings.browse(1, ListingFilters(text="dog"), SortOrder.NEWEST)
    reads = items.reads
    await listings.browse(1, ListingFilters(text="dog"), SortOrder.NEWEST)
    assert items.reads > reads  # picture classes are recorded after the announcement
