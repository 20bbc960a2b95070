"""Browse and search: filters, sorts, counts, tags, cursors and stability under inserts."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from backend.config import ServerConfig
from backend.server import PixmartServer
from protocol.catalogue_client import browse, get_item, iter_items, list_tags
from protocol.client import Session
from protocol.errors import BadRequest
from protocol.messages.catalogue import ItemCard, ListingFilters, SortOrder
from tests.conftest import SessionFactory, logged_in
from tests.support import pinned_session, running_server
from tests.support.catalogue import catalogue, jpeg, upload

_seeds = iter(range(1000, 10**6))


async def add(session: Session, tmp_path: Path, title: str = "Item", **fields: object) -> ItemCard:
    """Upload a fresh picture as an item and return its card."""
    return (await upload(session, tmp_path, jpeg(next(_seeds), (24, 16)), title, **fields)).item


async def everything(
    session: Session, filters: ListingFilters | None = None, sort: SortOrder = SortOrder.NEWEST
) -> list[int]:
    """Ids of the whole listing, fetched in batches of 2."""
    return [card.id async for card in iter_items(session, filters, sort, batch=2)]


@pytest.fixture
async def shop(
    make_session: SessionFactory, tmp_path: Path
) -> tuple[Session, Session, dict[str, int]]:
    """Alice and Bob with a few items; returns both sessions and item ids by name."""
    alice = await logged_in(make_session, "alice")
    bob = await logged_in(make_session, "bob")
    ids: dict[str, int] = {}
    specs: list[tuple[Session, str, dict[str, object]]] = [
        (alice, "Red sunset", {"price_cents": 500, "tags": ["red", "sky"], "stock": 2}),
        (alice, "Red square", {"price_cents": 1500, "tags": ["red", "square"]}),
        (alice, "Blue square", {"price_cents": 1500, "tags": ["blue", "square"], "stock": 0}),
        (alice, "Grainy field", {"price_cents": 2500, "description": "Film grain, Sunday."}),
        (bob, "Bob's red square", {"price_cents": 900, "tags": ["red", "square"]}),
        (bob, "Bob's café", {"price_cents": 0, "tags": ["food"]}),
    ]
    for session, title, fields in specs:
        ids[title] = (await add(session, tmp_path, title, **fields)).id
    return alice, bob, ids


async def test_newest_first_with_total_on_the_first_batch_only(
    shop: tuple[Session, Session, dict[str, int]],
) -> None:
    alice, _, ids = shop
    first = await browse(alice, limit=4)
    assert first.total == 6 and len(first.items) == 4 and first.cursor is not None
    second = await browse(alice, limit=4, cursor=first.cursor)
    assert second.total is None and second.cursor is None and len(second.items) == 2
    listed = [card.id for card in first.items + second.items]
    assert listed == sorted(ids.values(), reverse=True)
    assert (first.items[0].thumbnail or b"").startswith(b"RIFF")


async def test_cards_carry_their_tags_sorted_as_the_item_detail_does(
    shop: tuple[Session, Session, dict[str, int]], tmp_path: Path
) -> None:
    alice, _, _ = shop
    await add(alice, tmp_path, "Zoo", tags=["zebra", "apple", "mango-2"])
    batch = await browse(alice, limit=10)
    tags = {card.title: card.tags for card in batch.items}
    assert tags["Zoo"] == ["apple", "mango-2", "zebra"]
    assert tags["Bob's café"] == ["food"]
    assert tags["Grainy field"] == []
    for card in batch.items:
        assert card.tags == (await get_item(alice, card.id)).tags


async def test_price_sorts_break_ties_by_id(shop: tuple[Session, Session, dict[str, int]]) -> None:
    alice, _, ids = shop
    up = await everything(alice, sort=SortOrder.PRICE_UP)
    assert up == [
        ids["Bob's café"],
        ids["Red sunset"],
        ids["Bob's red square"],
        ids["Red square"],
        ids["Blue square"],
        ids["Grainy field"],
    ]
    down = await everything(alice, sort=SortOrder.PRICE_DOWN)
    assert down == [
        ids["Grainy field"],
        ids["Blue square"],
        ids["Red square"],
        ids["Bob's red square"],
        ids["Red sunset"],
        ids["Bob's café"],
    ]


#: Filters and the names of the items (of the shop fixture) that match them.
FILTER_CASES: list[tuple[ListingFilters, set[str]]] = [
    (ListingFilters(tags=["red", "Square"]), {"Red square", "Bob's red square"}),
    (ListingFilters(tags=["square"], in_stock=True), {"Red square", "Bob's red square"}),
    (ListingFilters(text="sunset"), {"Red sunset"}),
    (ListingFilters(text="sunse"), {"Red sunset"}),  # the last word is a prefix
    (ListingFilters(text="GRAIN sunday"), {"Grainy field"}),  # the description, any case
    (ListingFilters(text="cafe"), {"Bob's café"}),  # diacritics folded
    (ListingFilters(text="square red"), {"Red square", "Bob's red square"}),
    (ListingFilters(text="food"), {"Bob's café"}),  # tags are searched too
    (ListingFilters(text="red", tags=["sky"]), {"Red sunset"}),
    (
        ListingFilters(min_price_cents=900, max_price_cents=1500),
        {"Red square", "Blue square", "Bob's red square"},
    ),
    (ListingFilters(mine=True, tags=["red"]), {"Red sunset", "Red square"}),
    (ListingFilters(max_price_cents=0), {"Bob's café"}),
    (ListingFilters(text="nothing-like-this"), set()),
]


async def test_filters_combine(shop: tuple[Session, Session, dict[str, int]]) -> None:
    alice, _, ids = shop
    names = {item_id: name for name, item_id in ids.items()}
    for filters, expected in FILTER_CASES:
        listed = await everything(alice, filters)
        assert {names[item_id] for item_id in listed} == expected, filters
        assert len(listed) == len(expected), filters
        assert (await browse(alice, filters)).total == len(expected), filters


async def test_owner_filter_shows_one_seller(shop: tuple[Session, Session, dict[str, int]]) -> None:
    alice, bob, ids = shop
    assert bob.user is not None
    listed = await everything(alice, ListingFilters(owner_id=bob.user.id))
    assert set(listed) == {ids["Bob's red square"], ids["Bob's café"]}
    with pytest.raises(BadRequest):
        await browse(alice, ListingFilters(mine=True, owner_id=bob.user.id))


#: What people (or attackers) may type into a search box, with how many shop items match: only
#: the words count (the last one as a prefix), never FTS5 syntax; no words means no text filter.
HOSTILE_QUERIES: list[tuple[str, int]] = [
    ('"', 6),
    ("*", 6),
    ("((", 6),
    ("-", 6),
    (" ", 6),
    ("💥", 6),
    ("^red", 3),
    ("red\x00", 3),
    ('sunset"*', 1),
    ("NEAR(red sunset)", 0),
    ("title:red", 0),
    ("red OR blue", 0),
    ("AND", 0),
    ("'); DROP TABLE items; --", 0),
]


async def test_any_text_query_is_safe(shop: tuple[Session, Session, dict[str, int]]) -> None:
    alice, _, _ = shop
    for text, matches in HOSTILE_QUERIES:
        assert len(await everything(alice, ListingFilters(text=text))) == matches, text


async def test_invalid_filters_and_limits_are_bad_requests(
    shop: tuple[Session, Session, dict[str, int]],
) -> None:
    alice, _, _ = shop
    with pytest.raises(BadRequest):
        await browse(alice, ListingFilters(tags=["no spaces"]))
    with pytest.raises(BadRequest):
        await browse(alice, ListingFilters(min_price_cents=10, max_price_cents=5))
    with pytest.raises(BadRequest, match="at most 100"):
        await browse(alice, limit=101)
    assert len((await browse(alice)).items) == 6  # the default batch holds all six


async def test_tags_count_visible_items_and_autocomplete(
    shop: tuple[Session, Session, dict[str, int]],
) -> None:
    alice, _, _ = shop
    counts = {tag.name: tag.count for tag in await list_tags(alice, limit=1000)}
    assert counts["red"] == 3 and counts["square"] == 3 and counts["food"] == 1
    assert counts["landscape"] == 0  # a starter tag, listed for completion
    assert len(counts) > 40
    completed = await list_tags(alice, "s")
    assert [tag.name for tag in completed[:2]] == ["square", "sky"]  # most used first
    assert all(tag.name.startswith("s") for tag in completed)
    assert await list_tags(alice, "Ü") == []


async def test_listing_stays_exact_while_items_are_added(
    make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    before = [
        (await add(alice, tmp_path, f"Old {i}", price_cents=100 * (i % 4))).id for i in range(9)
    ]
    for sort in (SortOrder.NEWEST, SortOrder.PRICE_UP, SortOrder.PRICE_DOWN):
        seen: list[int] = []
        cursor: str | None = None
        added = 0
        while True:
            batch = await browse(alice, sort=sort, limit=2, cursor=cursor)
            seen.extend(card.id for card in batch.items)
            if batch.cursor is None:
                break
            cursor = batch.cursor
            # New items at the cheapest, the dearest and a middle price, between two batches.
            await add(alice, tmp_path, "New", price_cents=(0, 150, 10_000)[added % 3])
            added += 1
        old_seen = [item_id for item_id in seen if item_id in before]
        assert sorted(old_seen) == sorted(before), sort  # each pre-existing item exactly once
        assert len(seen) == len(set(seen)), sort  # nothing twice
        if sort is SortOrder.NEWEST:
            assert seen == old_seen  # items added meanwhile come before the position


async def test_cursors_are_tamper_proof_and_bound(
    shop: tuple[Session, Session, dict[str, int]],
) -> None:
    alice, bob, _ = shop
    filters = ListingFilters(tags=["square"])
    cursor = (await browse(alice, filters, limit=1)).cursor
    assert cursor is not None
    flipped = cursor[:10] + ("A" if cursor[10] != "A" else "B") + cursor[11:]
    for bad in (flipped, cursor[:-3], "not a cursor", "A" * 200, cursor + "AA"):
        with pytest.raises(BadRequest, match="cursor"):
            await browse(alice, filters, limit=1, cursor=bad)
    with pytest.raises(BadRequest, match="cursor"):
        await browse(alice, ListingFilters(tags=["red"]), limit=1, cursor=cursor)
    with pytest.raises(BadRequest, match="cursor"):
        await browse(alice, filters, SortOrder.PRICE_UP, limit=1, cursor=cursor)
    with pytest.raises(BadRequest, match="cursor"):
        await browse(bob, filters, limit=1, cursor=cursor)
    assert len((await browse(alice, filters, limit=1, cursor=cursor)).items) == 1


async def test_cursors_survive_a_reconnect_and_a_restart(
    server: PixmartServer, server_config: ServerConfig, make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    ids = [(await add(alice, tmp_path, f"Item {i}")).id for i in range(5)]
    first = await browse(alice, limit=2)
    alice.abort_transport()
    second = await browse(alice, limit=2, cursor=first.cursor)
    await alice.close()
    await server.stop()
    async with running_server(server_config) as restarted, AsyncExitStack() as stack:
        again = await stack.enter_async_context(pinned_session(restarted))
        await again.login("alice", "password123")
        third = await browse(again, limit=2, cursor=second.cursor)
    listed = [card.id for batch in (first, second, third) for card in batch.items]
    assert listed == sorted(ids, reverse=True) and third.cursor is None


async def test_services_for_other_domains(
    server: PixmartServer, shop: tuple[Session, Session, dict[str, int]], tmp_path: Path
) -> None:
    alice, bob, ids = shop
    assert alice.user is not None and bob.user is not None
    hidden = await add(alice, tmp_path, "Hidden red", tags=["red"], public=False)
    service = catalogue(server)
    wanted = [ids["Blue square"], hidden.id, 999_999, ids["Red sunset"]]
    cards = await service.render_cards(bob.user.id, wanted, scores={ids["Red sunset"]: 0.5})
    assert [card.id for card in cards] == [ids["Blue square"], ids["Red sunset"]]
    assert cards[1].score == 0.5 and cards[0].score is None
    own = await service.render_cards(alice.user.id, wanted)
    assert [card.id for card in own] == [ids["Blue square"], hidden.id, ids["Red sunset"]]
    red = ListingFilters(tags=["red"])
    assert await service.visible_item_ids(bob.user.id, red) == sorted(
        [ids["Red sunset"], ids["Red square"], ids["Bob's red square"]]
    )
    assert hidden.id in await service.visible_item_ids(alice.user.id, red)
