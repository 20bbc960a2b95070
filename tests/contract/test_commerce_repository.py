"""The commerce repository gives the same answers on SQLite and PostgreSQL.

Users and items are written with plain SQL (the catalogue and accounts have their own suites), so
these cases hold only the cart, checkout and order book to their contract, including checkout
under concurrency: many buyers on two "server processes" (two open databases on one store).
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from backend.commerce.lines import StoredLine, cart_total
from backend.commerce.repositories import commerce_repository
from backend.commerce.repository import (
    AddDecision,
    CartSlot,
    CheckoutResult,
    CommerceRepository,
    LineWrite,
    QuantityDecision,
    StockGuardError,
)
from backend.storage.database import Database
from backend.storage.engine import StorageEngine
from backend.storage.postgres import PostgresDatabase
from protocol.errors import BadRequest, NotFound, OutOfStock
from protocol.messages.commerce import LineProblem

#: A fixed point in time; every test dates its rows relative to it.
T0 = 1_700_000_000.25
EUR = "EUR"


# -- seeding users and items with plain SQL on either engine ---------------------------------


def _numbered(sql: str) -> str:
    """``sql`` with its ``?`` placeholders numbered for PostgreSQL."""
    numbers = itertools.count(1)
    return re.sub(r"\?", lambda _: f"${next(numbers)}", sql)


class Store:
    """Writes and reads the rows around commerce (users, items) on either engine."""

    def __init__(self, engine: StorageEngine) -> None:
        self.engine = engine
        self._pictures = itertools.count(1)

    async def write(self, sql: str, *args: Any) -> list[Any]:
        """Run one statement (``?`` placeholders) in its own transaction; its rows."""
        if isinstance(self.engine, Database):
            async with self.engine.transaction() as conn:
                return list(await conn.execute_fetchall(sql, args))
        async with self.engine.transaction() as conn:
            return list(await conn.fetch(_numbered(sql), *args))

    async def read(self, sql: str, *args: Any) -> list[Any]:
        """Run one query (``?`` placeholders); its rows."""
        if isinstance(self.engine, Database):
            return await self.engine.fetchall(sql, args)
        return await self.engine.fetchall(_numbered(sql), *args)

    async def user(self, name: str) -> int:
        rows = await self.write(
            "INSERT INTO users (username, username_key, password_hash, created_at,"
            " password_changed_at) VALUES (?, ?, 'hash', ?, ?) RETURNING id",
            name,
            name.casefold(),
            T0,
            T0,
        )
        return int(rows[0]["id"])

    async def item(
        self,
        owner_id: int,
        title: str = "Print",
        *,
        price_cents: int = 500,
        stock: int = 5,
        public: bool = True,
    ) -> int:
        sha = f"{next(self._pictures):064x}"
        await self.write(
            "INSERT INTO pictures (sha256, format, width, height, orientation, size_bytes,"
            " clean_sha256, clean_size, created_at, thumbnail)"
            " VALUES (?, 'PNG', 8, 8, 1, 64, ?, 64, ?, ?)",
            sha,
            sha,
            T0,
            b"thumbnail",
        )
        rows = await self.write(
            "INSERT INTO items (owner_id, title, description, price_cents, stock, public,"
            " sha256, created_at, updated_at) VALUES (?, ?, '', ?, ?, ?, ?, ?, ?) RETURNING id",
            owner_id,
            title,
            price_cents,
            stock,
            public,
            sha,
            T0,
            T0,
        )
        return int(rows[0]["id"])

    async def edit(self, item_id: int, **columns: Any) -> None:
        """Change an item's columns, as the catalogue would."""
        assignments = ", ".join(f"{name} = ?" for name in columns)
        await self.write(f"UPDATE items SET {assignments} WHERE id = ?", *columns.values(), item_id)

    async def delete(self, item_id: int) -> None:
        await self.write("DELETE FROM items WHERE id = ?", item_id)

    async def stock(self, item_id: int) -> int:
        rows = await self.read("SELECT stock FROM items WHERE id = ?", item_id)
        return int(rows[0]["stock"])

    async def sold(self, item_id: int) -> tuple[int, int]:
        """(order lines, units) sold of an item."""
        rows = await self.read(
            "SELECT count(*) AS n, coalesce(sum(quantity), 0) AS units"
            " FROM order_lines WHERE item_id = ?",
            item_id,
        )
        return int(rows[0]["n"]), int(rows[0]["units"])

    async def order_count(self) -> int:
        rows = await self.read("SELECT count(*) AS n FROM orders")
        return int(rows[0]["n"])


@pytest.fixture
def store(engine: StorageEngine) -> Store:
    return Store(engine)


@pytest.fixture
def repo(engine: StorageEngine) -> CommerceRepository:
    return commerce_repository(engine)


@pytest.fixture
async def other_process(engine: StorageEngine) -> AsyncIterator[CommerceRepository]:
    """The repository of a second server on the same store (its own connections)."""
    second: StorageEngine
    if isinstance(engine, Database):
        second = Database(engine.path)
    else:
        assert isinstance(engine, PostgresDatabase)
        second = PostgresDatabase(engine.url, min_size=1, max_size=8)
    await second.open()
    try:
        yield commerce_repository(second)
    finally:
        await second.close()


# -- decisions, as the services make them -----------------------------------------------------


def put(quantity: int) -> AddDecision:
    """An add decision storing ``quantity`` more units at the item's current title and price."""

    def decide(slot: CartSlot) -> LineWrite:
        if slot.item is None:
            raise NotFound("no such item")
        return LineWrite(slot.in_cart + quantity, slot.item.title, slot.item.price_cents)

    return decide


def to(quantity: int) -> QuantityDecision:
    """A quantity decision setting the line to ``quantity``."""

    def decide(line: StoredLine | None) -> int:
        if line is None:
            raise NotFound("not in the cart")
        return quantity

    return decide


def approve_sound(lines: list[StoredLine]) -> int:
    """Approve a cart only if no line has a problem (as checkout does, prices aside)."""
    if not lines:
        raise BadRequest("Your cart is empty")
    short = [line.item_id for line in lines if LineProblem.OUT_OF_STOCK in line.problems]
    if short:
        raise OutOfStock("sold out", details={"items": short})
    if any(line.problems for line in lines):
        raise BadRequest("not for sale")
    return cart_total(lines)


def approve_blindly(lines: list[StoredLine]) -> int:
    """Approve anything: leaves the guarded stock update as the only check."""
    return cart_total(lines)


async def buy(
    repo: CommerceRepository, user_id: int, key: str = "k1", *, at: float = T0 + 100
) -> CheckoutResult:
    return await repo.checkout(user_id, key, approve_sound, currency=EUR, now=at)


async def shopper(store: Store, name: str = "bob") -> tuple[int, int]:
    """(seller, buyer) ids: ``alice`` sells, ``name`` buys."""
    return await store.user("alice"), await store.user(name)


def summary(lines: Sequence[StoredLine]) -> list[tuple[int, int, str, int]]:
    return [(line.item_id, line.quantity, line.title, line.price_cents) for line in lines]


# -- the cart ---------------------------------------------------------------------------------


async def test_an_empty_cart_has_no_lines(repo: CommerceRepository, store: Store) -> None:
    _, bob = await shopper(store)
    assert await repo.lines(bob) == []


async def test_lines_are_oldest_first_with_their_items_now(
    repo: CommerceRepository, store: Store
) -> None:
    alice, bob = await shopper(store)
    first = await store.item(alice, "First", price_cents=100, stock=3)
    second = await store.item(alice, "Second", price_cents=200, stock=4)
    third = await store.item(alice, "Third", price_cents=300, stock=5)
    await repo.add(bob, third, put(1), now=T0 + 1)
    await repo.add(bob, second, put(2), now=T0 + 2)
    returned = await repo.add(bob, first, put(3), now=T0 + 2)  # same time: by item id
    lines = await repo.lines(bob)
    assert returned == lines
    assert [(line.item_id, line.added_at) for line in lines] == [
        (third, T0 + 1),
        (first, T0 + 2),
        (second, T0 + 2),
    ]
    item = lines[1].item
    assert item is not None
    assert (item.owner_id, item.title, item.price_cents, item.stock, item.public) == (
        alice,
        "First",
        100,
        3,
        True,
    )


async def test_lines_show_items_changed_hidden_or_deleted_since(
    repo: CommerceRepository, store: Store
) -> None:
    alice, bob = await shopper(store)
    repriced = await store.item(alice, "Repriced", price_cents=100)
    hidden = await store.item(alice, "Hidden")
    deleted = await store.item(alice, "Deleted")
    for n, item_id in enumerate((repriced, hidden, deleted)):
        await repo.add(bob, item_id, put(1), now=T0 + n)
    await store.edit(repriced, price_cents=150, title="Renamed", stock=0)
    await store.edit(hidden, public=False)
    await store.delete(deleted)
    lines = await repo.lines(bob)
    # The line keeps what was seen when added; the item shows what is true now.
    assert summary(lines) == [
        (repriced, 1, "Repriced", 100),
        (hidden, 1, "Hidden", 500),
        (deleted, 1, "Deleted", 500),
    ]
    assert [line.problems for line in lines] == [
        [LineProblem.PRICE_CHANGED, LineProblem.OUT_OF_STOCK],
        [LineProblem.PRIVATE],
        [LineProblem.DELETED],
    ]
    assert lines[0].item is not None and lines[0].item.title == "Renamed"
    assert lines[1].item is not None and lines[1].item.public is False
    assert lines[2].item is None


async def test_add_decides_from_the_item_and_the_cart_around_it(
    repo: CommerceRepository, store: Store
) -> None:
    alice, bob = await shopper(store)
    item = await store.item(alice, "Sunset", price_cents=700, stock=9)
    other = await store.item(alice, "Dunes")
    seen: list[CartSlot] = []

    def record(slot: CartSlot) -> LineWrite:
        seen.append(slot)
        return put(2)(slot)

    await repo.add(bob, other, put(1), now=T0)
    await repo.add(bob, item, record, now=T0 + 1)
    await store.edit(item, price_cents=800, title="Sunrise")
    lines = await repo.add(bob, item, record, now=T0 + 5)
    assert [(slot.in_cart, slot.line_count) for slot in seen] == [(0, 1), (2, 2)]
    assert seen[0].item is not None and seen[0].item.stock == 9
    assert seen[1].item is not None and seen[1].item.price_cents == 800
    # The stored title and price become the current ones; the line keeps its first added_at.
    assert summary(lines) == [(other, 1, "Dunes", 500), (item, 4, "Sunrise", 800)]
    assert lines[1].added_at == T0 + 1


async def test_add_of_a_missing_item_sees_no_item(repo: CommerceRepository, store: Store) -> None:
    _, bob = await shopper(store)
    seen: list[CartSlot] = []

    def record(slot: CartSlot) -> LineWrite:
        seen.append(slot)
        raise NotFound("no such item")

    with pytest.raises(NotFound):
        await repo.add(bob, 10_000, record, now=T0)
    assert seen == [CartSlot(item=None, in_cart=0, line_count=0)]


async def test_a_refused_add_changes_nothing(repo: CommerceRepository, store: Store) -> None:
    alice, bob = await shopper(store)
    item = await store.item(alice)
    await repo.add(bob, item, put(1), now=T0)

    def refuse(slot: CartSlot) -> LineWrite:
        raise OutOfStock("too many")

    with pytest.raises(OutOfStock):
        await repo.add(bob, item, refuse, now=T0 + 1)
    assert summary(await repo.lines(bob)) == [(item, 1, "Print", 500)]


async def test_set_quantity_keeps_the_remembered_title_and_price(
    repo: CommerceRepository, store: Store
) -> None:
    alice, bob = await shopper(store)
    item = await store.item(alice, "Sunset", price_cents=700)
    await repo.add(bob, item, put(1), now=T0)
    await store.edit(item, price_cents=900)
    seen: list[StoredLine | None] = []

    def record(line: StoredLine | None) -> int:
        seen.append(line)
        return 4

    lines = await repo.set_quantity(bob, item, record, now=T0 + 1)
    assert summary(lines) == [(item, 4, "Sunset", 700)]
    assert lines == await repo.lines(bob)
    assert seen[0] is not None and seen[0].quantity == 1
    assert seen[0].item is not None and seen[0].item.price_cents == 900


async def test_set_quantity_of_a_line_not_in_the_cart_sees_none(
    repo: CommerceRepository, store: Store
) -> None:
    alice, bob = await shopper(store)
    item = await store.item(alice)
    with pytest.raises(NotFound):
        await repo.set_quantity(bob, item, to(2), now=T0)
    assert await repo.lines(bob) == []


async def test_remove_and_clear(repo: CommerceRepository, store: Store) -> None:
    alice, bob = await shopper(store)
    carol = await store.user("carol")
    first = await store.item(alice)
    second = await store.item(alice)
    await repo.add(bob, first, put(1), now=T0)
    await repo.add(bob, second, put(1), now=T0 + 1)
    await repo.add(carol, first, put(1), now=T0)
    lines = await repo.remove(bob, first)
    assert lines is not None and [line.item_id for line in lines] == [second]
    assert await repo.remove(bob, first) is None
    await repo.clear(bob)
    await repo.clear(bob)  # an empty cart stays empty
    assert await repo.lines(bob) == []
    assert [line.item_id for line in await repo.lines(carol)] == [first]


# -- checkout ---------------------------------------------------------------------------------


async def test_checkout_places_the_order_takes_stock_and_empties_the_cart(
    repo: CommerceRepository, store: Store
) -> None:
    alice, bob = await shopper(store)
    carol = await store.user("carol")
    sunset = await store.item(alice, "Sunset", price_cents=1250, stock=5)
    dunes = await store.item(carol, "Dunes", price_cents=300, stock=1)
    await repo.add(bob, dunes, put(1), now=T0)
    await repo.add(bob, sunset, put(2), now=T0 + 1)

    result = await buy(repo, bob, at=T0 + 10)

    order = result.order
    assert result.replayed is False
    assert (order.total_cents, order.currency, order.created_at) == (2800, EUR, T0 + 10)
    # Lines in cart order, at the prices paid, with their sellers.
    assert [
        (
            line.item_id,
            line.title,
            line.quantity,
            line.unit_price_cents,
            line.line_total_cents,
            line.seller_id,
            line.seller_name,
        )
        for line in order.lines
    ] == [
        (dunes, "Dunes", 1, 300, 300, carol, "carol"),
        (sunset, "Sunset", 2, 1250, 2500, alice, "alice"),
    ]
    assert {(change.item_id, change.item.stock) for change in result.stock_changes} == {
        (dunes, 0),
        (sunset, 3),
    }
    assert (await store.stock(sunset), await store.stock(dunes)) == (3, 0)
    assert await repo.lines(bob) == []
    found = await repo.order(order.id)
    assert found is not None and (found.buyer_id, found.order) == (bob, order)


async def test_a_retried_checkout_returns_the_order_already_placed(
    repo: CommerceRepository, store: Store
) -> None:
    alice, bob = await shopper(store)
    item = await store.item(alice, stock=5)
    await repo.add(bob, item, put(2), now=T0)
    placed = await buy(repo, bob, "key")
    await repo.add(bob, item, put(1), now=T0 + 20)  # a new cart meanwhile

    def must_not_run(lines: list[StoredLine]) -> int:
        raise AssertionError("a replay approves nothing")

    again = await repo.checkout(bob, "key", must_not_run, currency=EUR, now=T0 + 30)

    assert (again.order, again.replayed, again.stock_changes) == (placed.order, True, ())
    assert await store.stock(item) == 3
    assert summary(await repo.lines(bob)) == [(item, 1, "Print", 500)]  # left alone
    assert await store.order_count() == 1


async def test_checkout_keys_are_per_user(repo: CommerceRepository, store: Store) -> None:
    alice, bob = await shopper(store)
    carol = await store.user("carol")
    item = await store.item(alice, stock=5)
    await repo.add(bob, item, put(1), now=T0)
    await repo.add(carol, item, put(1), now=T0)
    bobs = await buy(repo, bob, "same")
    carols = await buy(repo, carol, "same")
    assert bobs.order.id != carols.order.id
    assert not carols.replayed
    assert await store.stock(item) == 3


async def test_a_refused_checkout_changes_nothing(repo: CommerceRepository, store: Store) -> None:
    alice, bob = await shopper(store)
    fine = await store.item(alice, "Fine", stock=5)
    short = await store.item(alice, "Short", stock=5)
    await repo.add(bob, fine, put(2), now=T0)
    await repo.add(bob, short, put(3), now=T0 + 1)
    await store.edit(short, stock=1)

    with pytest.raises(OutOfStock) as caught:
        await buy(repo, bob)

    assert caught.value.details == {"items": [short]}
    assert (await store.stock(fine), await store.stock(short)) == (5, 1)
    assert summary(await repo.lines(bob)) == [(fine, 2, "Fine", 500), (short, 3, "Short", 500)]
    assert await store.order_count() == 0


async def test_an_empty_cart_is_refused(repo: CommerceRepository, store: Store) -> None:
    _, bob = await shopper(store)
    with pytest.raises(BadRequest):
        await buy(repo, bob)
    assert await store.order_count() == 0


async def test_the_stock_guard_rolls_back_every_line_and_names_the_failing_ones(
    repo: CommerceRepository, store: Store
) -> None:
    alice, bob = await shopper(store)
    fine = await store.item(alice, "Fine", stock=5)
    short = await store.item(alice, "Short", stock=5)
    hidden = await store.item(alice, "Hidden", stock=5)
    gone = await store.item(alice, "Gone", stock=5)
    for n, item_id in enumerate((fine, short, hidden, gone)):
        await repo.add(bob, item_id, put(2), now=T0 + n)
    await store.edit(short, stock=1)
    await store.edit(hidden, public=False)
    await store.delete(gone)

    with pytest.raises(StockGuardError) as caught:
        await repo.checkout(bob, "k", approve_blindly, currency=EUR, now=T0 + 10)

    assert [line.item_id for line in caught.value.lines] == [short, hidden, gone]
    assert [await store.stock(item_id) for item_id in (fine, short, hidden)] == [5, 1, 5]
    assert len(await repo.lines(bob)) == 4
    assert await store.order_count() == 0


# -- checkout under concurrency ---------------------------------------------------------------


async def test_fifty_buyers_on_two_servers_race_for_ten_units(
    repo: CommerceRepository, other_process: CommerceRepository, store: Store
) -> None:
    alice = await store.user("alice")
    item = await store.item(alice, "Last ones", price_cents=999, stock=10)
    buyers = [await store.user(f"buyer{n}") for n in range(50)]
    servers = [repo, other_process]
    for buyer in buyers:
        await repo.add(buyer, item, put(1), now=T0)

    outcomes = await asyncio.gather(
        *(buy(servers[n % 2], buyer, f"key-{buyer}") for n, buyer in enumerate(buyers)),
        return_exceptions=True,
    )

    placed = [outcome for outcome in outcomes if isinstance(outcome, CheckoutResult)]
    failed = [outcome for outcome in outcomes if not isinstance(outcome, CheckoutResult)]
    assert len(placed) == 10
    # Every loser is refused by approval, which saw the stock as it was: never by the guard.
    assert len(failed) == 40 and all(isinstance(error, OutOfStock) for error in failed), failed
    assert await store.stock(item) == 0
    assert await store.sold(item) == (10, 10)
    # What each winner was told it left matches a strictly falling stock: 9, 8, ... 0.
    left = sorted(change.item.stock for result in placed for change in result.stock_changes)
    assert left == list(range(10))
    winners = {result.order.id for result in placed}
    assert len(winners) == 10
    assert sum([len(await repo.lines(buyer)) for buyer in buyers]) == 40


async def test_racing_retries_of_one_checkout_place_one_order(
    repo: CommerceRepository, other_process: CommerceRepository, store: Store
) -> None:
    alice, bob = await shopper(store)
    item = await store.item(alice, stock=5)
    await repo.add(bob, item, put(2), now=T0)

    results = await asyncio.gather(
        *(buy((repo, other_process)[n % 2], bob, "one-key") for n in range(6))
    )

    assert len({result.order.id for result in results}) == 1
    assert sorted(result.replayed for result in results) == [False] + [True] * 5
    assert await store.stock(item) == 3
    assert await store.order_count() == 1


async def test_racing_checkouts_of_one_cart_buy_it_once(
    repo: CommerceRepository, other_process: CommerceRepository, store: Store
) -> None:
    alice, bob = await shopper(store)
    item = await store.item(alice, stock=5)
    await repo.add(bob, item, put(2), now=T0)

    outcomes = await asyncio.gather(
        *(buy((repo, other_process)[n % 2], bob, f"key-{n}") for n in range(6)),
        return_exceptions=True,
    )

    placed = [outcome for outcome in outcomes if isinstance(outcome, CheckoutResult)]
    failed = [outcome for outcome in outcomes if not isinstance(outcome, CheckoutResult)]
    assert len(placed) == 1
    # The others found the cart the winner emptied.
    assert len(failed) == 5 and all(isinstance(error, BadRequest) for error in failed), failed
    assert await store.stock(item) == 3


async def test_crossing_carts_never_deadlock(
    repo: CommerceRepository, other_process: CommerceRepository, store: Store
) -> None:
    alice = await store.user("alice")
    first = await store.item(alice, "First", stock=100)
    second = await store.item(alice, "Second", stock=100)
    buyers = [await store.user(f"buyer{n}") for n in range(20)]
    for n, buyer in enumerate(buyers):
        # Half the carts hold the items one way round, half the other.
        ordered = (first, second) if n % 2 else (second, first)
        for offset, item_id in enumerate(ordered):
            await repo.add(buyer, item_id, put(1), now=T0 + offset)

    results = await asyncio.gather(
        *(buy((repo, other_process)[n % 2], buyer, "k") for n, buyer in enumerate(buyers))
    )

    assert all(not result.replayed for result in results)
    assert (await store.stock(first), await store.stock(second)) == (80, 80)


# -- the order book ---------------------------------------------------------------------------


async def test_orders_are_listed_newest_first_in_keyset_batches(
    repo: CommerceRepository, store: Store
) -> None:
    alice, bob = await shopper(store)
    carol = await store.user("carol")
    items = [await store.item(alice, f"Print {n}", price_cents=100 * (n + 1)) for n in range(3)]
    ids = []
    for n, item_id in enumerate(items):
        await repo.add(bob, item_id, put(n + 1), now=T0 + n)
        if n:  # later orders hold two lines: the new item first
            await repo.add(bob, items[0], put(1), now=T0 + 10 + n)
        ids.append((await buy(repo, bob, f"k{n}", at=T0 + 100 + n)).order.id)
    await repo.add(carol, items[0], put(1), now=T0)
    await buy(repo, carol)

    first = await repo.orders(bob, below=None, limit=2)
    rest = await repo.orders(bob, below=first[-1].position, limit=2)

    assert [keyed.position for keyed in first + rest] == ids[::-1]
    assert [keyed.row.id for keyed in first + rest] == ids[::-1]
    assert [
        (row.first_title, row.line_count, row.units, row.total_cents, row.created_at)
        for row in (keyed.row for keyed in first + rest)
    ] == [
        ("Print 2", 2, 4, 1000, T0 + 102),
        ("Print 1", 2, 3, 500, T0 + 101),
        ("Print 0", 1, 1, 100, T0 + 100),
    ]
    assert await repo.orders(bob, below=ids[0], limit=2) == []


async def test_sales_are_listed_newest_first_in_keyset_batches(
    repo: CommerceRepository, store: Store
) -> None:
    alice, bob = await shopper(store)
    carol = await store.user("carol")
    mine = await store.item(alice, "Mine", price_cents=250)
    theirs = await store.item(carol, "Theirs")
    await repo.add(bob, mine, put(2), now=T0)
    await repo.add(bob, theirs, put(1), now=T0 + 1)
    first = await buy(repo, bob, "k1", at=T0 + 50)
    await repo.add(carol, mine, put(1), now=T0 + 2)
    second = await buy(repo, carol, "k2", at=T0 + 60)
    await store.delete(mine)  # sales outlive the item

    batch = await repo.sales(alice, below=None, limit=1)
    rest = await repo.sales(alice, below=batch[-1].position, limit=5)

    assert [
        (
            sale.order_id,
            sale.item_id,
            sale.title,
            sale.quantity,
            sale.line_total_cents,
            sale.buyer_name,
            sale.sold_at,
            sale.currency,
        )
        for sale in (keyed.row for keyed in batch + rest)
    ] == [
        (second.order.id, mine, "Mine", 1, 250, "carol", T0 + 60, EUR),
        (first.order.id, mine, "Mine", 2, 500, "bob", T0 + 50, EUR),
    ]
    assert batch[0].position > rest[0].position
    assert await repo.sales(bob, below=None, limit=5) == []


async def test_an_unknown_order_is_none(repo: CommerceRepository, store: Store) -> None:
    assert await repo.order(10_000) is None
