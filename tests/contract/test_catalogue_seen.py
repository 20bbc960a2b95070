"""Text search finds pictures by what the image model sees, the same way on both engines.

What the model sees is written straight into ``picture_classes`` (the vision domain's job); the
classes a search's words name come from a small vocabulary made here, so the tests do not depend
on the shipped ImageNet table (``tests/unit/test_catalogue_seen.py`` covers that one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import pytest

from backend.catalogue.cursors import CursorSigner
from backend.catalogue.filters import KEYSETS, Criteria, TextMatch
from backend.catalogue.listing import Listings
from backend.catalogue.seen import SeenVocabulary
from backend.catalogue.textsearch import search_words
from backend.storage.engine import StorageEngine
from protocol.messages.catalogue import ItemCard, ListingFilters, SortOrder
from tests.contract.test_catalogue_repository import T0, Shop, sha, titles

#: Class id: (the name a card shows, the words it goes by).
CLASSES: Final = {
    0: ("golden retriever", ["golden retriever", "retriever", "dog", "animal"]),
    1: ("beagle", ["beagle", "hound", "dog", "animal"]),
    2: ("tabby", ["tabby", "tabby cat", "cat", "animal"]),
    3: ("lemon", ["lemon", "citrus fruit", "fruit"]),
    4: ("banana", ["banana", "edible fruit", "fruit"]),
}
THRESHOLD: Final = 0.3


def vocabulary() -> SeenVocabulary:
    def load() -> tuple[list[str], list[list[str]]]:
        return [name for name, _ in CLASSES.values()], [words for _, words in CLASSES.values()]

    return SeenVocabulary(load, threshold=THRESHOLD)


@dataclass
class Gallery:
    alice: int
    bob: int
    ids: dict[str, int]


async def seen(shop: Shop, seed: object, classes: dict[int, float]) -> None:
    """Record what the model sees in the picture of ``seed``."""
    for class_id, probability in classes.items():
        await shop.write(
            "INSERT INTO picture_classes (sha256, class_id, probability) VALUES (?, ?, ?)",
            sha(seed),
            class_id,
            probability,
        )


@pytest.fixture
def shop(engine: StorageEngine) -> Shop:
    return Shop(engine)


@pytest.fixture
async def gallery(shop: Shop) -> Gallery:
    """Pictures of dogs, a cat and fruit, some described by their seller, most not."""
    alice, bob = await shop.user("alice"), await shop.user("bob")
    pictures = [
        # title, owner, public, what the model sees, description
        ("Our dog Rex", alice, True, {2: 0.9}, ""),  # the seller's words say dog
        ("IMG_0001", alice, True, {0: 0.8}, ""),
        ("IMG_0002", bob, True, {0: 0.1, 1: 0.25, 2: 0.2}, ""),  # dog by 0.35 in all
        ("IMG_0003", bob, True, {0: 0.1, 1: 0.15}, ""),  # dog by only 0.25
        ("IMG_0004", bob, False, {1: 0.9}, ""),  # Bob's private beagle
        ("IMG_0005", alice, True, {3: 0.5, 4: 0.4}, ""),
        ("Still life", bob, True, {4: 0.7}, "Bananas on a plate, with a dog"),
        ("IMG_0006", alice, True, {}, ""),
    ]
    ids = {}
    for n, (title, owner, public, classes, description) in enumerate(pictures):
        ids[title] = await shop.add(
            owner, title, description=description, public=public, now=T0 + n, seed=title
        )
        await seen(shop, title, classes)
    return Gallery(alice, bob, ids)


def criteria(text: str) -> Criteria:
    words = search_words(text)
    return Criteria(words=words, seen=vocabulary().match(words))


async def part(
    shop: Shop, viewer: int, text: str, which: TextMatch | None, sort: SortOrder = SortOrder.NEWEST
) -> list[ItemCard]:
    return await shop.items.page(viewer, criteria(text), sort, after=None, limit=100, part=which)


async def test_words_match_the_sellers_words_then_what_the_model_sees(
    shop: Shop, gallery: Gallery
) -> None:
    alice, bob = gallery.alice, gallery.bob
    words = await part(shop, alice, "dog", TextMatch.WORDS)
    assert titles(words) == ["Still life", "Our dog Rex"]
    assert [card.looks_like for card in words] == [None, None]
    looks = await part(shop, alice, "dog", TextMatch.SEEN)
    # Newest first; the most probable of the classes the words name is shown; Bob's private
    # beagle stays his, and 0.25 of dog is not enough.
    assert [(card.title, card.looks_like) for card in looks] == [
        ("IMG_0002", "beagle"),
        ("IMG_0001", "golden retriever"),
    ]
    assert titles(await part(shop, bob, "dog", TextMatch.SEEN)) == [
        "IMG_0004",
        "IMG_0002",
        "IMG_0001",
    ]
    everything = {"Still life", "Our dog Rex", "IMG_0002", "IMG_0001"}
    assert set(titles(await part(shop, alice, "dog", None))) == everything
    assert await shop.items.count(alice, criteria("dog")) == 4
    assert await shop.items.count(bob, criteria("dog")) == 5
    matching = await shop.items.matching_ids(alice, criteria("dog"))
    assert matching == sorted(gallery.ids[title] for title in everything)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # The more probable of lemon (0.5) and banana (0.4) is named.
        ("fruit", [("Still life", "banana"), ("IMG_0005", "lemon")]),
        ("fruits", [("Still life", "banana"), ("IMG_0005", "lemon")]),
        ("bananas", [("IMG_0005", "banana")]),  # "Still life" matched by its description
        ("citrus fruit", [("IMG_0005", "lemon")]),
        ("golden retriever", [("IMG_0001", "golden retriever")]),
        ("cat", [("Our dog Rex", "tabby")]),  # 0.2 of a tabby is not enough
        ("ca", []),  # what the model sees is matched by whole words only
        ("dog fruit", []),  # every word, within one class
        ("nothing", []),
    ],
)
async def test_what_the_model_sees_is_matched_by_whole_words(
    shop: Shop, gallery: Gallery, text: str, expected: list[tuple[str, str]]
) -> None:
    cards = await part(shop, gallery.alice, text, TextMatch.SEEN)
    assert [(card.title, card.looks_like) for card in cards] == expected


async def test_the_seen_part_pages_in_every_sort_order(shop: Shop, gallery: Gallery) -> None:
    for sort in SortOrder:
        whole = await part(shop, gallery.bob, "animal", TextMatch.SEEN, sort)
        assert len(whole) == 4
        paged: list[ItemCard] = []
        after = None
        while True:
            page = await shop.items.page(
                gallery.bob, criteria("animal"), sort, after=after, limit=2, part=TextMatch.SEEN
            )
            paged += page
            if len(page) < 2:
                break
            after = KEYSETS[sort].key(page[-1])
        assert paged == whole


async def test_listings_send_each_match_once_in_batches_across_both_parts(
    shop: Shop, gallery: Gallery
) -> None:
    listings = Listings(shop.items, CursorSigner(b"k" * 32), batch_default=3, batch_max=10)
    listings.vocabulary = vocabulary()
    filters = ListingFilters(text="dog")
    for size in (1, 2, 3, 5):
        cards: list[ItemCard] = []
        batch = await listings.browse(gallery.bob, filters, SortOrder.PRICE_UP, limit=size)
        assert batch.total == 5
        cards += batch.items
        while batch.cursor is not None:
            batch = await listings.browse(
                gallery.bob, filters, SortOrder.PRICE_UP, limit=size, cursor=batch.cursor
            )
            assert batch.total is None
            cards += batch.items
        assert [card.looks_like is not None for card in cards] == [False] * 2 + [True] * 3
        assert titles(cards) == ["Our dog Rex", "Still life", "IMG_0001", "IMG_0002", "IMG_0004"]
    assert await listings.visible_ids(gallery.alice, filters) == sorted(
        gallery.ids[t] for t in ("Our dog Rex", "Still life", "IMG_0001", "IMG_0002")
    )


async def test_without_a_vocabulary_only_the_sellers_words_match(
    shop: Shop, gallery: Gallery
) -> None:
    listings = Listings(shop.items, CursorSigner(b"k" * 32), batch_default=3, batch_max=10)
    batch = await listings.browse(gallery.alice, ListingFilters(text="dog"), SortOrder.NEWEST)
    assert titles(batch.items) == ["Still life", "Our dog Rex"] and batch.total == 2
