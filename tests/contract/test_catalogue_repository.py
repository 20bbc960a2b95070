"""The catalogue's repositories give the same answers on SQLite and PostgreSQL.

Items, pictures and uploads go through the repositories themselves; only users (the accounts
domain's) are written with plain SQL. Concurrency cases run on two "server processes": two open
databases on one store, each with its own connections.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import random
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pytest

from backend.catalogue.filters import KEYSETS, Criteria
from backend.catalogue.repositories import (
    catalogue_repository,
    picture_repository,
    upload_repository,
)
from backend.catalogue.repository import (
    CatalogueRepository,
    DuplicateItem,
    ItemDraft,
    ItemEdit,
    NewPicture,
    PictureMissing,
    PictureRepository,
    StoredFiles,
    UploadExists,
    UploadQuota,
    UploadQuotaExceeded,
    UploadRepository,
    UploadRow,
    UploadUsage,
)
from backend.catalogue.textsearch import search_words
from backend.catalogue.validation import Listing
from backend.storage.database import Database
from backend.storage.engine import StorageEngine
from backend.storage.postgres import PostgresDatabase
from protocol.messages.catalogue import ItemCard, ItemMetadata, SortOrder, TagCount

#: A fixed point in time; every test dates its rows relative to it.
T0 = 1_700_000_000.25


def sha(seed: object) -> str:
    """A picture hash unique to ``seed``."""
    return hashlib.sha256(repr(seed).encode()).hexdigest()


def picture(seed: object, *, digests: bool = True) -> NewPicture:
    """The rows of a picture unique to ``seed`` (with its derivatives' hashes, or without, as
    rows written before hashes were recorded)."""
    thumbnail = b"thumb:" + sha(seed).encode()
    preview = b"preview:" + sha(seed).encode()
    return NewPicture(
        files=StoredFiles(sha(seed), sha(("clean", seed))),
        format="JPEG",
        width=640,
        height=480,
        orientation=1,
        size_bytes=1000,
        clean_size=900,
        thumbnail=thumbnail,
        preview=preview,
        thumbnail_sha256=hashlib.sha256(thumbnail).hexdigest() if digests else "",
        thumbnail_size=len(thumbnail) if digests else 0,
        preview_sha256=hashlib.sha256(preview).hexdigest() if digests else "",
        preview_size=len(preview) if digests else 0,
    )


class Shop:
    """The catalogue's repositories on one engine, and users to own items."""

    def __init__(self, engine: StorageEngine) -> None:
        self.engine = engine
        self.items: CatalogueRepository = catalogue_repository(engine)
        self.pictures: PictureRepository = picture_repository(engine)
        self.uploads: UploadRepository = upload_repository(engine)
        self._seeds = itertools.count()

    async def write(self, sql: str, *args: Any) -> list[Any]:
        """Run one statement (``?`` placeholders) in its own transaction; its rows."""
        if isinstance(self.engine, Database):
            async with self.engine.transaction() as conn:
                return list(await conn.execute_fetchall(sql, args))
        numbers = itertools.count(1)
        numbered = re.sub(r"\?", lambda _: f"${next(numbers)}", sql)
        async with self.engine.transaction() as conn:
            return list(await conn.fetch(numbered, *args))

    async def user(self, name: str) -> int:
        """A new user's id."""
        rows = await self.write(
            "INSERT INTO users (username, username_key, password_hash, created_at,"
            " password_changed_at) VALUES (?, ?, 'hash', ?, ?) RETURNING id",
            name,
            name,
            T0,
            T0,
        )
        return int(rows[0][0])

    async def add(
        self,
        owner_id: int,
        title: str = "A picture",
        *,
        description: str = "",
        price_cents: int = 100,
        stock: int = 1,
        tags: Sequence[str] = (),
        public: bool = True,
        now: float = T0,
        seed: object = None,
    ) -> int:
        """List an item with a new picture (unique unless ``seed`` is given); its id."""
        seed = next(self._seeds) if seed is None else seed
        listing = Listing(title, description, price_cents, stock, tuple(tags), public)
        draft = ItemDraft(owner_id, sha(seed), listing, upload_id=f"u{seed}", picture=picture(seed))
        return await self.items.add_item(draft, now)

    async def count_rows(self, table: str) -> int:
        """How many rows ``table`` has."""
        row = await self.engine.fetchone(f"SELECT COUNT(*) FROM {table}")
        assert row is not None
        return int(row[0])


@pytest.fixture
def shop(engine: StorageEngine) -> Shop:
    return Shop(engine)


@pytest.fixture
async def second(engine: StorageEngine) -> AsyncIterator[Shop]:
    """The repositories of a second server on the same store (its own connections)."""
    other: StorageEngine
    if isinstance(engine, Database):
        other = Database(engine.path)
    else:
        other = PostgresDatabase(engine.url, min_size=1, max_size=8)
    await other.open()
    try:
        yield Shop(other)
    finally:
        await other.close()


def titles(cards: Iterable[ItemCard]) -> list[str]:
    return [card.title for card in cards]


async def everything(
    shop: Shop, viewer_id: int, criteria: Criteria, sort: SortOrder, limit: int = 2
) -> list[ItemCard]:
    """Every card of a listing, fetched in keyset pages of ``limit``."""
    cards: list[ItemCard] = []
    after = None
    while True:
        page = await shop.items.page(viewer_id, criteria, sort, after=after, limit=limit)
        cards.extend(page)
        if len(page) < limit:
            return cards
        after = KEYSETS[sort].key(page[-1])


# -- items -----------------------------------------------------------------------------------


async def test_an_added_item_has_its_rows_cards_and_detail(shop: Shop) -> None:
    alice = await shop.user("alice")
    metadata = ItemMetadata(title="Sunset")
    await shop.uploads.add(
        UploadRow("u-sunset", alice, sha("sunset"), 1000, metadata), T0, UploadQuota(9, 10**9)
    )
    listing = Listing("Sunset", "Over the sea", 1250, 3, ("sky", "red", "a-b"), True)
    draft = ItemDraft(alice, sha("sunset"), listing, "u-sunset", picture("sunset"))
    item_id = await shop.items.add_item(draft, T0)

    assert await shop.uploads.get("u-sunset") is None  # gone with the item's commit
    row = (await shop.items.items([item_id, 999]))[item_id]
    assert (row.owner_id, row.public, row.sha256, row.title, row.price_cents, row.stock) == (
        alice,
        True,
        sha("sunset"),
        "Sunset",
        1250,
        3,
    )
    assert await shop.items.item_showing(alice, sha("sunset")) == item_id
    assert await shop.items.item_showing(alice, sha("other")) is None
    [card] = await shop.items.cards([item_id], viewer_id=None)
    assert card == ItemCard(
        id=item_id,
        title="Sunset",
        price_cents=1250,
        stock=3,
        public=True,
        owner_id=alice,
        owner_name="alice",
        tags=["a-b", "red", "sky"],  # sorted bytewise, as both engines do
        width=640,
        height=480,
        created_at=T0,
        thumbnail=None,  # named, not read: listings never read the picture columns
        thumbnail_sha256=picture("sunset").thumbnail_sha256,
        thumbnail_size=len(picture("sunset").thumbnail),
    )
    detail = await shop.items.detail(item_id)
    assert detail is not None
    assert (detail.description, detail.format, detail.size_bytes, detail.updated_at) == (
        "Over the sea",
        "JPEG",
        1000,
        T0,
    )
    assert detail.tags == ["a-b", "red", "sky"] and detail.preview is None
    assert (detail.preview_sha256, detail.preview_size) == (
        picture("sunset").preview_sha256,
        len(picture("sunset").preview),
    )
    assert detail.thumbnail_sha256 == card.thumbnail_sha256
    assert await shop.items.detail(item_id + 1) is None


async def test_derivatives_are_read_by_item_id_with_what_access_needs(shop: Shop) -> None:
    alice = await shop.user("alice")
    listing = Listing("Night", "", 100, 1, (), False)
    draft = ItemDraft(alice, sha("night"), listing, "u-night", picture("night"))
    item_id = await shop.items.add_item(draft, T0)

    [row] = await shop.items.derivatives("thumbnail", [item_id, item_id, 999])
    assert (row.item_id, row.owner_id, row.public, row.picture_sha256) == (
        item_id,
        alice,
        False,
        sha("night"),
    )
    assert (row.digest, row.data) == (picture("night").thumbnail_sha256, picture("night").thumbnail)
    [preview] = await shop.items.derivatives("preview", [item_id])
    assert (preview.digest, preview.data) == (
        picture("night").preview_sha256,
        picture("night").preview,
    )


async def test_digests_missing_on_old_rows_are_recorded_once(shop: Shop) -> None:
    alice = await shop.user("alice")
    listing = Listing("Old", "", 100, 1, (), True)
    old = picture("old", digests=False)
    item_id = await shop.items.add_item(ItemDraft(alice, sha("old"), listing, "u-old", old), T0)
    [card] = await shop.items.cards([item_id], viewer_id=None)
    assert (card.thumbnail_sha256, card.thumbnail_size) == ("", 0)

    digest = hashlib.sha256(old.thumbnail).hexdigest()
    await shop.items.record_digests("thumbnail", [(sha("old"), digest, len(old.thumbnail))])
    await shop.items.record_digests("thumbnail", [(sha("old"), "f" * 64, 1)])  # kept: first wins
    [card] = await shop.items.cards([item_id], viewer_id=None)
    assert (card.thumbnail_sha256, card.thumbnail_size) == (digest, len(old.thumbnail))
    [row] = await shop.items.derivatives("preview", [item_id])
    assert row.digest is None


async def test_created_at_never_goes_back_and_ids_are_never_reused(shop: Shop) -> None:
    alice = await shop.user("alice")
    first = await shop.add(alice, now=T0 + 10)
    second = await shop.add(alice, now=T0)  # the wall clock stepped back
    cards = await shop.items.cards([first, second], viewer_id=None)
    assert [card.created_at for card in cards] == [T0 + 10, T0 + 10] and second > first
    await shop.items.delete_items([second])
    third = await shop.add(alice, now=T0 + 20)
    assert third > second


async def test_one_seller_lists_a_picture_once_and_sellers_share_it(shop: Shop) -> None:
    alice, bob = await shop.user("alice"), await shop.user("bob")
    await shop.add(alice, seed="shared")
    with pytest.raises(DuplicateItem):
        await shop.add(alice, "Again", seed="shared")
    # Bob's item shows the stored picture without rows of its own.
    draft = ItemDraft(bob, sha("shared"), Listing("Bob's", "", 1, 1, (), True), "u", None)
    bob_item = await shop.items.add_item(draft, T0)
    assert (await shop.items.items([bob_item]))[bob_item].sha256 == sha("shared")
    assert await shop.count_rows("pictures") == 1
    missing = replace(draft, sha256=sha("never stored"))
    with pytest.raises(PictureMissing):
        await shop.items.add_item(missing, T0)
    assert await shop.count_rows("items") == 2  # the refusals left nothing behind


async def test_an_edit_changes_fields_and_tags(shop: Shop) -> None:
    alice = await shop.user("alice")
    item_id = await shop.add(alice, "Old title", tags=["old"], public=True)
    edit = ItemEdit(title="New title", price_cents=5, stock=0, public=False, tags=("new", "b"))
    assert await shop.items.edit_item(item_id, edit, T0 + 5)
    detail = await shop.items.detail(item_id)
    assert detail is not None
    assert (detail.title, detail.price_cents, detail.stock, detail.public, detail.tags) == (
        "New title",
        5,
        0,
        False,
        ["b", "new"],
    )
    assert (detail.description, detail.created_at, detail.updated_at) == ("", T0, T0 + 5)
    # Fields left out stay; so do the tags.
    assert await shop.items.edit_item(item_id, ItemEdit(description="Words"), T0 + 6)
    detail = await shop.items.detail(item_id)
    assert detail is not None and (detail.title, detail.tags) == ("New title", ["b", "new"])
    assert await shop.items.edit_item(item_id, ItemEdit(tags=()), T0 + 7)
    assert (await shop.items.cards([item_id], viewer_id=None))[0].tags == []
    assert not await shop.items.edit_item(item_id + 1, ItemEdit(title="Nobody"), T0)


async def test_deleting_items_deletes_the_pictures_no_item_shows(shop: Shop) -> None:
    alice, bob = await shop.user("alice"), await shop.user("bob")
    shared = await shop.add(alice, tags=["x"], seed="shared")
    draft = ItemDraft(bob, sha("shared"), Listing("B", "", 1, 1, (), True), "u", None)
    bobs = await shop.items.add_item(draft, T0)
    own = await shop.add(alice, seed="own")

    assert await shop.items.delete_items([shared, own, 12345]) == [
        StoredFiles(sha("own"), sha(("clean", "own")))
    ]
    assert set(await shop.items.items([shared, own, bobs])) == {bobs}
    assert await shop.pictures.exists(sha("shared")) and not await shop.pictures.exists(sha("own"))
    assert await shop.count_rows("item_tags") == 0
    assert await shop.items.delete_items([bobs]) == [
        StoredFiles(sha("shared"), sha(("clean", "shared")))
    ]
    assert await shop.count_rows("picture_previews") == 0


# -- listings --------------------------------------------------------------------------------


@dataclass
class Catalogue:
    alice: int
    bob: int
    ids: dict[str, int]


@pytest.fixture
async def catalogue(shop: Shop) -> Catalogue:
    """Alice's and Bob's items, with ties in price and in time."""
    alice, bob = await shop.user("alice"), await shop.user("bob")
    items = [
        # title, owner, price, stock, tags, public, created_at
        ("Red sunset", alice, 500, 1, ["red", "sky"], True, T0 + 1),
        ("Blue square", alice, 300, 0, ["blue"], True, T0 + 2),
        ("Red square", bob, 300, 2, ["red", "square"], True, T0 + 2),
        ("Hidden red", bob, 100, 1, ["red", "secret"], False, T0 + 3),
        ("Cheap", alice, 100, 5, [], True, T0 + 4),
        ("Alice's secret", alice, 900, 1, ["secret"], False, T0 + 5),
    ]
    ids = {}
    for title, owner, price, stock, tags, public, created_at in items:
        ids[title] = await shop.add(
            owner, title, price_cents=price, stock=stock, tags=tags, public=public, now=created_at
        )
    return Catalogue(alice, bob, ids)


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        # The same created_at or price: the later id comes first, or last going up.
        (
            SortOrder.NEWEST,
            ["Alice's secret", "Cheap", "Red square", "Blue square", "Red sunset"],
        ),
        (
            SortOrder.PRICE_UP,
            ["Cheap", "Blue square", "Red square", "Red sunset", "Alice's secret"],
        ),
        (
            SortOrder.PRICE_DOWN,
            ["Alice's secret", "Red sunset", "Red square", "Blue square", "Cheap"],
        ),
    ],
)
async def test_sorts_break_ties_by_id_and_pages_follow_the_keyset(
    shop: Shop, catalogue: Catalogue, sort: SortOrder, expected: list[str]
) -> None:
    assert catalogue.ids["Red square"] > catalogue.ids["Blue square"]
    criteria = Criteria()
    whole = await shop.items.page(catalogue.alice, criteria, sort, after=None, limit=100)
    assert titles(whole) == expected
    for limit in (1, 2, 3):
        assert titles(await everything(shop, catalogue.alice, criteria, sort, limit)) == expected
    assert await shop.items.count(catalogue.alice, criteria) == 5


async def test_viewers_see_public_items_and_their_own(shop: Shop, catalogue: Catalogue) -> None:
    ids = catalogue.ids
    everyone = Criteria()
    assert await shop.items.matching_ids(catalogue.bob, everyone) == sorted(
        ids[t] for t in ids if t != "Alice's secret"
    )
    assert await shop.items.count(catalogue.bob, everyone) == 5
    stranger = await shop.user("carol")
    assert await shop.items.count(stranger, everyone) == 4
    wanted = [ids["Hidden red"], ids["Cheap"], 999, ids["Alice's secret"], ids["Cheap"]]
    assert titles(await shop.items.cards(wanted, viewer_id=catalogue.alice)) == [
        "Cheap",
        "Alice's secret",
    ]
    assert titles(await shop.items.cards(wanted, viewer_id=None)) == [
        "Hidden red",
        "Cheap",
        "Alice's secret",
    ]


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        (Criteria(tags=("red",)), {"Red sunset", "Red square"}),
        (Criteria(tags=("red", "square")), {"Red square"}),
        (Criteria(tags=("red", "blue")), set()),
        (Criteria(tags=("unknown",)), set()),
        (
            Criteria(min_price_cents=300, max_price_cents=500),
            {"Red sunset", "Blue square", "Red square"},
        ),
        (Criteria(max_price_cents=100), {"Cheap"}),
        (Criteria(in_stock=True), {"Red sunset", "Red square", "Cheap", "Alice's secret"}),
        (Criteria(owner_id=-1), set()),
        (Criteria(tags=("secret",)), {"Alice's secret"}),
        (Criteria(tags=("red",), in_stock=True, max_price_cents=300), {"Red square"}),
    ],
)
async def test_filters_combine(
    shop: Shop, catalogue: Catalogue, criteria: Criteria, expected: set[str]
) -> None:
    for sort in SortOrder:
        cards = await everything(shop, catalogue.alice, criteria, sort)
        assert set(titles(cards)) == expected
    assert await shop.items.count(catalogue.alice, criteria) == len(expected)
    assert await shop.items.matching_ids(catalogue.alice, criteria) == sorted(
        catalogue.ids[title] for title in expected
    )


async def test_owner_filter_shows_what_the_viewer_may_see_of_one_seller(
    shop: Shop, catalogue: Catalogue
) -> None:
    of_bob = Criteria(owner_id=catalogue.bob)
    assert titles(await everything(shop, catalogue.alice, of_bob, SortOrder.NEWEST)) == [
        "Red square"
    ]
    assert titles(await everything(shop, catalogue.bob, of_bob, SortOrder.NEWEST)) == [
        "Hidden red",
        "Red square",
    ]


# -- text search -----------------------------------------------------------------------------

SEARCHED = [
    # title, description, tags
    ("Red sunset", "over the sea", ["sky"]),
    ("Café au lait", "near the window", ["food"]),
    ("Black-and-white portrait", "", ["black-and-white"]),
    ("foo_bar baz", "", []),
    ("Lens 3.5 mm", "a 4k screen", []),
    ("Crème brûlée", "DESSERT", []),
    ("Ångström", "", []),
    ("red", "car", []),
    ("Redder things", "", []),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sunset", {"Red sunset"}),
        ("SUNSE", {"Red sunset"}),  # the last word is a prefix
        ("red", {"Red sunset", "red", "Redder things"}),
        ("red sea", {"Red sunset"}),  # every word, in any field
        ("sun red", set()),  # only the last word is a prefix
        ("red _", {"Red sunset", "red"}),  # a word without tokens is left out...
        ("_", set()),  # ...but alone it matches nothing
        ("cafe", {"Café au lait"}),  # accents folded
        ("CAFÉ LAIT", {"Café au lait"}),
        ("creme brul", {"Crème brûlée"}),
        ("dessert", {"Crème brûlée"}),
        ("angstrom", {"Ångström"}),
        ("food", {"Café au lait"}),  # tags are searched too
        ("black-and-white", {"Black-and-white portrait"}),  # hyphens separate words
        ("white-and", {"Black-and-white portrait"}),
        ("portrait black", {"Black-and-white portrait"}),
        ("foo_bar", {"foo_bar baz"}),  # underscores too, as a phrase
        ("foo_ba", {"foo_bar baz"}),
        ("bar", {"foo_bar baz"}),
        ("o_b", set()),
        ("baz_foo", set()),
        ("red_car", set()),  # a phrase never runs from the title into the description
        ("3.5", {"Lens 3.5 mm"}),  # digits
        ("3", {"Lens 3.5 mm"}),
        ("4k", {"Lens 3.5 mm"}),
        ("4", {"Lens 3.5 mm"}),
        ("lens 5 m", {"Lens 3.5 mm"}),
        ("near", {"Café au lait"}),  # a word, not an operator
        ('title:red OR "x"', set()),
        ("red & !sea | (sky)", {"Red sunset"}),  # tsquery syntax is text too
        ("red:* <-> sea", {"Red sunset"}),
        ("nothing-like-this", set()),
    ],
)
async def test_text_search(shop: Shop, text: str, expected: set[str]) -> None:
    owner = await shop.user("alice")
    for title, description, tags in SEARCHED:
        await shop.add(owner, title, description=description, tags=tags)
    words = search_words(text)
    criteria = Criteria(words=words)
    cards = await shop.items.page(owner, criteria, SortOrder.NEWEST, after=None, limit=100)
    assert set(titles(cards)) == expected
    assert await shop.items.count(owner, criteria) == len(expected)


async def test_text_search_follows_edits(shop: Shop) -> None:
    owner = await shop.user("alice")
    item_id = await shop.add(owner, "Plain", description="nothing", tags=["mountain"])

    async def found(text: str) -> bool:
        return bool(await shop.items.matching_ids(owner, Criteria(words=search_words(text))))

    assert await found("mountain") and not await found("lake")
    await shop.items.edit_item(item_id, ItemEdit(tags=("lake",)), T0)
    assert await found("lake") and not await found("mountain") and await found("plain")
    await shop.items.edit_item(item_id, ItemEdit(title="Glacier", description="ice"), T0)
    assert await found("glacier ice lake") and not await found("plain")


# -- tags ------------------------------------------------------------------------------------


async def test_tag_counts_follow_visibility_prefix_and_starters(
    shop: Shop, catalogue: Catalogue
) -> None:
    assert not await shop.items.has_starter_tags()
    await shop.items.add_starter_tags(["sky", "sea", "a-b", "ab"])
    await shop.items.add_starter_tags(["sky", "sea", "a-b", "ab"])  # idempotent
    assert await shop.items.has_starter_tags()

    def counts(pairs: list[tuple[str, int]]) -> list[TagCount]:
        return [TagCount(name=name, count=count) for name, count in pairs]

    # Bob sees his hidden item's tags; "secret" of Alice's private item counts for her only.
    assert await shop.items.tag_counts(catalogue.bob, "", 100) == counts(
        [
            ("red", 3),
            ("blue", 1),
            ("secret", 1),
            ("sky", 1),
            ("square", 1),
            ("a-b", 0),
            ("ab", 0),
            ("sea", 0),
        ]
    )
    assert await shop.items.tag_counts(catalogue.alice, "s", 100) == counts(
        [("secret", 1), ("sky", 1), ("square", 1), ("sea", 0)]
    )
    stranger = await shop.user("carol")
    assert await shop.items.tag_counts(stranger, "s", 2) == counts([("sky", 1), ("square", 1)])
    assert await shop.items.tag_counts(stranger, "secret", 10) == []
    assert await shop.items.tag_counts(stranger, "zzz", 10) == []


# -- pictures --------------------------------------------------------------------------------


async def test_pictures_are_looked_up_and_pruned(shop: Shop) -> None:
    alice = await shop.user("alice")
    kept = await shop.add(alice, seed="kept")
    gone = await shop.add(alice, seed="gone")
    info = await shop.pictures.info(sha("kept"))
    assert info is not None
    assert (info.format, info.width, info.height, info.orientation, info.size_bytes) == (
        "JPEG",
        640,
        480,
        1,
        1000,
    )
    assert info.clean_sha256 == sha(("clean", "kept"))
    assert await shop.pictures.info(sha("none")) is None
    assert await shop.pictures.referenced(sha("kept"))
    assert await shop.pictures.referenced(sha(("clean", "kept")))
    assert not await shop.pictures.referenced(sha("none"))

    # A picture row left without items (as after a crash between deletions) is pruned.
    await shop.write("DELETE FROM items WHERE id = ?", gone)
    assert await shop.pictures.prune() == {sha("kept"), sha(("clean", "kept"))}
    assert not await shop.pictures.exists(sha("gone")) and await shop.pictures.exists(sha("kept"))
    assert kept in await shop.items.items([kept])


# -- uploads ---------------------------------------------------------------------------------


async def test_uploads_are_recorded_found_and_deleted(shop: Shop) -> None:
    alice, bob = await shop.user("alice"), await shop.user("bob")
    quota = UploadQuota(uploads=10, bytes=10_000)
    first = UploadRow("up-1", alice, sha(1), 100, ItemMetadata(title="One", tags=["a"]))
    await shop.uploads.add(first, T0, quota)
    await shop.uploads.add(
        UploadRow("up-2", bob, sha(1), 200, ItemMetadata(title="Two")), T0 + 10, quota
    )
    assert await shop.uploads.get("up-1") == first
    assert await shop.uploads.get("nope") is None
    assert await shop.uploads.find(alice, sha(1)) == first
    assert await shop.uploads.find(alice, sha(2)) is None
    with pytest.raises(UploadExists):
        await shop.uploads.add(replace(first, id="up-3"), T0, quota)

    changed = ItemMetadata(title="One, renamed", price_cents=5)
    await shop.uploads.set_metadata("up-1", changed)
    assert (await shop.uploads.find(alice, sha(1))) == replace(first, metadata=changed)

    assert await shop.uploads.ids() == {"up-1", "up-2"}
    assert await shop.uploads.begun_before(T0) == ["up-1"]
    assert sorted(await shop.uploads.begun_before(T0 + 10)) == ["up-1", "up-2"]
    await shop.uploads.delete(["up-1", "nope"])
    assert await shop.uploads.ids() == {"up-2"}


async def test_the_upload_quota_counts_uploads_and_bytes(shop: Shop) -> None:
    alice, bob = await shop.user("alice"), await shop.user("bob")
    quota = UploadQuota(uploads=2, bytes=1000)

    def upload(n: int, owner: int, size: int) -> UploadRow:
        return UploadRow(f"up-{n}", owner, sha(n), size, ItemMetadata(title="T"))

    await shop.uploads.add(upload(1, alice, 600), T0, quota)
    with pytest.raises(UploadQuotaExceeded) as caught:
        await shop.uploads.add(upload(2, alice, 401), T0, quota)
    assert caught.value.usage == UploadUsage(uploads=1, bytes=600)
    await shop.uploads.add(upload(3, alice, 400), T0, quota)
    with pytest.raises(UploadQuotaExceeded) as caught:
        await shop.uploads.add(upload(4, alice, 1), T0, quota)
    assert caught.value.usage == UploadUsage(uploads=2, bytes=1000)
    await shop.uploads.add(upload(5, bob, 1000), T0, quota)  # a quota is per user
    assert await shop.uploads.ids() == {"up-1", "up-3", "up-5"}


# -- concurrency: two servers on one store ---------------------------------------------------


async def test_concurrent_uploads_never_exceed_the_quota(shop: Shop, second: Shop) -> None:
    alice = await shop.user("alice")
    quota = UploadQuota(uploads=3, bytes=10**9)

    async def begin(n: int) -> bool:
        repository = (shop if n % 2 else second).uploads
        row = UploadRow(f"up-{n}", alice, sha(n), 10, ItemMetadata(title="T"))
        try:
            await repository.add(row, T0, quota)
        except UploadQuotaExceeded:
            return False
        return True

    results = await asyncio.gather(*(begin(n) for n in range(12)))
    assert sum(results) == 3 and len(await shop.uploads.ids()) == 3


async def test_concurrent_additions_keep_created_at_in_id_order(shop: Shop, second: Shop) -> None:
    alice = await shop.user("alice")
    rng = random.Random(7)
    # Clocks that disagree, as several servers' may: the order of ids rules.
    clocks = [T0 + rng.uniform(0, 100) for _ in range(20)]
    await asyncio.gather(
        *(
            (shop if n % 2 else second).add(
                alice, f"Item {n}", tags=["t", f"t{n % 3}"], now=now, seed=n
            )
            for n, now in enumerate(clocks)
        )
    )
    cards = await shop.items.page(alice, Criteria(), SortOrder.NEWEST, after=None, limit=100)
    by_id = sorted(cards, key=lambda card: card.id)
    created = [card.created_at for card in by_id]
    assert created == sorted(created) and len(cards) == 20


async def test_concurrent_edits_may_add_the_same_new_tags(shop: Shop, second: Shop) -> None:
    alice = await shop.user("alice")
    first, other = await shop.add(alice), await shop.add(alice)
    for round_ in range(5):
        tags = tuple(f"new-{round_}-{n}" for n in range(20))
        # In opposite orders: neither may wait for a tag the other holds while holding one.
        await asyncio.gather(
            shop.items.edit_item(first, ItemEdit(tags=tags), T0),
            second.items.edit_item(other, ItemEdit(tags=tags[::-1]), T0),
        )
        cards = await shop.items.cards([first, other], viewer_id=None)
        assert cards[0].tags == cards[1].tags == sorted(tags)


async def test_deleting_a_picture_while_another_server_adds_an_item_for_it(
    shop: Shop, second: Shop
) -> None:
    alice, bob = await shop.user("alice"), await shop.user("bob")
    for round_ in range(8):
        seed = ("race", round_)
        doomed = await shop.add(alice, seed=seed)
        listing = Listing("Bob's", "", 1, 1, (), True)
        draft = ItemDraft(bob, sha(seed), listing, f"u{round_}", None)
        deleted, added = await asyncio.gather(
            shop.items.delete_items([doomed]), _add_unless_missing(second, draft)
        )
        # Either the item came first and the picture stays, or the picture went first and
        # the item was refused; never an item without its picture.
        if added is None:
            assert deleted == [StoredFiles(sha(seed), sha(("clean", seed)))]
            assert not await shop.pictures.exists(sha(seed))
        else:
            assert deleted == [] and await shop.pictures.exists(sha(seed))
            await shop.items.delete_items([added])
        assert await shop.count_rows("items") == 0


async def _add_unless_missing(shop: Shop, draft: ItemDraft) -> int | None:
    """The id of the item added, or ``None`` if its picture is gone."""
    try:
        return await shop.items.add_item(draft, T0)
    except PictureMissing:
        return None
