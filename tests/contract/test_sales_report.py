"""The sales report sums a seller's sales alike on SQLite and PostgreSQL.

Orders are written with plain SQL at chosen times and in chosen currencies (checkout always pays
in the server's currency, at the present time); the report is read through the repository and
through :class:`~backend.commerce.sales_report.SalesReport` with a fixed clock, on each engine.
"""

from __future__ import annotations

import calendar
import itertools

import pytest

from backend.commerce.repositories import commerce_repository
from backend.commerce.repository import CommerceRepository
from backend.commerce.sales_report import DAYS, WEEKS, SalesReport
from backend.storage.engine import StorageEngine
from protocol.messages.sales import STOCK_LIST_LIMIT, GetSalesSummary, SalesSummary
from tests.contract.test_commerce_repository import Store

#: "Now" for every report here: Wednesday 2026-12-02, 15:00 UTC.
NOW = calendar.timegm((2026, 12, 2, 15, 0, 0))
DAY = 86_400


def at(year: int, month: int, day: int, hour: int = 12, minute: int = 0) -> float:
    """A UTC time."""
    return float(calendar.timegm((year, month, day, hour, minute, 0)))


class Orders:
    """Places orders with plain SQL: any buyer, time, currency and lines."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._keys = itertools.count(1)

    async def place(
        self,
        buyer: int,
        when: float,
        lines: list[tuple[int, int, int, int]],
        *,
        currency: str = "EUR",
        titles: dict[int, str] | None = None,
    ) -> int:
        """An order of ``lines`` (item id, seller id, quantity, unit price) at ``when``."""
        total = sum(quantity * price for _, _, quantity, price in lines)
        rows = await self.store.write(
            "INSERT INTO orders (user_id, checkout_key, total_cents, currency, created_at)"
            " VALUES (?, ?, ?, ?, ?) RETURNING id",
            buyer,
            f"key-{next(self._keys)}",
            total,
            currency,
            when,
        )
        order_id = int(rows[0]["id"])
        for item_id, seller, quantity, price in lines:
            title = (titles or {}).get(item_id, f"Item {item_id}")
            await self.store.write(
                "INSERT INTO order_lines (order_id, item_id, seller_id, title, quantity,"
                " unit_price_cents, sold_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                order_id,
                item_id,
                seller,
                title,
                quantity,
                price,
                when,  # as checkout writes it: the order's time
            )
        return order_id


@pytest.fixture
def store(engine: StorageEngine) -> Store:
    return Store(engine)


@pytest.fixture
def repo(engine: StorageEngine) -> CommerceRepository:
    return commerce_repository(engine)


@pytest.fixture
def orders(store: Store) -> Orders:
    return Orders(store)


async def report(
    repo: CommerceRepository, seller: int, currency: str = "EUR", **asked: int
) -> SalesSummary:
    return await SalesReport(repo, currency=currency, clock=lambda: NOW).summary(
        seller, GetSalesSummary(**asked)
    )


# -- the repository's sums --------------------------------------------------------------------


async def test_sums_per_utc_day_count_each_order_once(
    repo: CommerceRepository, store: Store, orders: Orders
) -> None:
    alice, bob = await store.user("alice"), await store.user("bob")
    print_, mug = await store.item(alice, "Print"), await store.item(alice, "Mug")
    # Two lines of one order on 1 Dec; one just before and one just after midnight UTC.
    await orders.place(bob, at(2026, 12, 1, 9), [(print_, alice, 2, 1250), (mug, alice, 1, 999)])
    await orders.place(bob, at(2026, 11, 30, 23, 59), [(mug, alice, 3, 999)])
    await orders.place(bob, at(2026, 12, 1, 0, 0), [(print_, alice, 1, 1250)])
    sums = await repo.sales_by_period(alice, DAYS, since=at(2026, 11, 1, 0), until=NOW + DAY)
    got = sorted((row.period * DAY, row.revenue_cents, row.units, row.orders) for row in sums)
    assert got == [
        (at(2026, 11, 30, 0), 2997, 3, 1),
        (at(2026, 12, 1, 0), 2 * 1250 + 999 + 1250, 4, 2),
    ]


async def test_weeks_run_monday_to_sunday_utc(
    repo: CommerceRepository, store: Store, orders: Orders
) -> None:
    alice, bob = await store.user("alice"), await store.user("bob")
    item = await store.item(alice)
    await orders.place(bob, at(2026, 11, 29, 23, 59), [(item, alice, 1, 100)])  # a Sunday
    await orders.place(bob, at(2026, 11, 30, 0, 0), [(item, alice, 2, 100)])  # the Monday
    sums = await repo.sales_by_period(alice, WEEKS, since=0.0, until=NOW + DAY)
    starts = sorted((row.period * WEEKS.width - WEEKS.shift, row.units) for row in sums)
    assert starts == [(at(2026, 11, 23, 0), 1), (at(2026, 11, 30, 0), 2)]


async def test_sums_stay_within_the_window(
    repo: CommerceRepository, store: Store, orders: Orders
) -> None:
    alice, bob = await store.user("alice"), await store.user("bob")
    item = await store.item(alice)
    since, until = at(2026, 11, 10, 0), at(2026, 11, 20, 0)
    await orders.place(bob, since - 0.5, [(item, alice, 1, 100)])
    await orders.place(bob, since, [(item, alice, 2, 100)])
    await orders.place(bob, until - 0.5, [(item, alice, 4, 100)])
    await orders.place(bob, until, [(item, alice, 8, 100)])
    sums = await repo.sales_by_period(alice, DAYS, since=since, until=until)
    assert sum(row.units for row in sums) == 6
    top = await repo.top_items(alice, since=since, until=until, limit=5)
    assert [(row.item_id, row.units) for row in top] == [(item, 6)]


async def test_top_items_rank_by_revenue_and_by_units_per_currency(
    repo: CommerceRepository, store: Store, orders: Orders
) -> None:
    alice, bob = await store.user("alice"), await store.user("bob")
    cheap, dear, mid = [await store.item(alice, f"Item {n}", stock=n) for n in (4, 0, 7)]
    when = at(2026, 12, 1)
    await orders.place(bob, when, [(cheap, alice, 10, 100), (dear, alice, 1, 5000)])
    await orders.place(bob, when, [(mid, alice, 3, 1000)])
    await orders.place(bob, when, [(cheap, alice, 1, 7)], currency="JPY")
    top = await repo.top_items(alice, since=0.0, until=NOW, limit=2)
    got = [
        (row.currency, row.item_id, row.revenue_cents, row.units, row.by_revenue, row.by_units)
        for row in top
    ]
    # EUR: dear leads by revenue, cheap by units; mid is second on both. JPY apart.
    assert got == [
        ("EUR", dear, 5000, 1, 1, 3),
        ("EUR", mid, 3000, 3, 2, 2),
        ("EUR", cheap, 1000, 10, 3, 1),
        ("JPY", cheap, 7, 1, 1, 1),
    ]
    assert [row.stock for row in top] == [0, 7, 4, 4]


async def test_top_items_keep_the_latest_title_and_flag_deleted_items(
    repo: CommerceRepository, store: Store, orders: Orders
) -> None:
    alice, bob = await store.user("alice"), await store.user("bob")
    item = await store.item(alice, "Old name")
    gone = await store.item(alice, "Gone")
    await orders.place(bob, at(2026, 12, 1, 8), [(item, alice, 1, 100)], titles={item: "Old name"})
    await orders.place(bob, at(2026, 12, 1, 9), [(item, alice, 1, 100)], titles={item: "New name"})
    await orders.place(bob, at(2026, 12, 1, 10), [(gone, alice, 1, 50)], titles={gone: "Gone"})
    await store.delete(gone)
    top = await repo.top_items(alice, since=0.0, until=NOW, limit=5)
    assert [(row.title, row.stock) for row in top] == [("New name", 5), ("Gone", None)]


async def test_a_seller_sums_only_their_own_lines(
    repo: CommerceRepository, store: Store, orders: Orders
) -> None:
    alice, bob, cyd = await store.user("alice"), await store.user("bob"), await store.user("cyd")
    hers, his = await store.item(alice, stock=1), await store.item(cyd, stock=0)
    # One order buys from both sellers: each sees their own line and the order once.
    await orders.place(bob, at(2026, 12, 1), [(hers, alice, 1, 300), (his, cyd, 5, 700)])
    for seller, item, revenue, units in ((alice, hers, 300, 1), (cyd, his, 3500, 5)):
        sums = await repo.sales_by_period(seller, DAYS, since=0.0, until=NOW)
        assert [(row.revenue_cents, row.units, row.orders) for row in sums] == [(revenue, units, 1)]
        top = await repo.top_items(seller, since=0.0, until=NOW, limit=5)
        assert [row.item_id for row in top] == [item]
    assert [
        item.item_id for item in (await repo.stock_levels(alice, threshold=3, limit=5)).low
    ] == [hers]
    assert [
        item.item_id for item in (await repo.stock_levels(cyd, threshold=3, limit=5)).sold_out
    ] == [his]


async def test_stock_levels_list_few_and_count_all(repo: CommerceRepository, store: Store) -> None:
    alice, bob = await store.user("alice"), await store.user("bob")
    plenty = await store.item(alice, stock=4)
    three = await store.item(alice, "Three", stock=3)
    one = await store.item(alice, "One", stock=1, public=False)
    empty = [await store.item(alice, f"Empty {n}", stock=0) for n in range(3)]
    await store.item(bob, stock=0)  # someone else's
    levels = await repo.stock_levels(alice, threshold=3, limit=2)
    assert [(item.item_id, item.stock, item.public) for item in levels.low] == [
        (one, 1, False),
        (three, 3, True),
    ]
    assert [item.item_id for item in levels.sold_out] == empty[:2]
    assert (levels.low_count, levels.sold_out_count) == (2, 3)
    assert plenty not in [item.item_id for item in levels.low]
    none_low = await repo.stock_levels(alice, threshold=0, limit=5)
    assert (none_low.low, none_low.low_count, none_low.sold_out_count) == ([], 0, 3)


async def test_money_sums_exactly_past_float_precision(
    repo: CommerceRepository, store: Store, orders: Orders
) -> None:
    alice, bob = await store.user("alice"), await store.user("bob")
    item = await store.item(alice)
    # 2**53 + 1 cannot be a float: a sum that went through one would lose the last cent.
    big = 2**52 + 1
    await orders.place(bob, at(2026, 12, 1), [(item, alice, 2, big)])
    await orders.place(bob, at(2026, 12, 1), [(item, alice, 1, 1)])
    sums = await repo.sales_by_period(alice, DAYS, since=0.0, until=NOW)
    assert [row.revenue_cents for row in sums] == [2 * big + 1]
    assert isinstance(sums[0].revenue_cents, int)
    summary = await report(repo, alice)
    assert summary.currencies[0].revenue_cents == 2**53 + 3


# -- the summary laid on the calendar ---------------------------------------------------------


async def test_an_empty_shop_has_zeros_for_every_day_and_week(
    repo: CommerceRepository, store: Store
) -> None:
    alice = await store.user("alice")
    summary = await report(repo, alice, "USD", days=30, weeks=12)
    assert summary.today == "2026-12-02"
    [usd] = summary.currencies
    assert usd.currency == "USD"
    assert len(usd.days) == 30 and len(usd.weeks) == 12
    assert (usd.days[0].start, usd.days[-1].start) == ("2026-11-03", "2026-12-02")
    # The current ISO week started on Monday 30 November.
    assert (usd.weeks[0].start, usd.weeks[-1].start) == ("2026-09-14", "2026-11-30")
    assert {(p.revenue_cents, p.units, p.orders) for p in usd.days + usd.weeks} == {(0, 0, 0)}
    assert (usd.revenue_cents, usd.units, usd.orders) == (0, 0, 0)
    assert usd.top_by_revenue == usd.top_by_units == []
    assert (summary.low_stock, summary.sold_out) == ([], [])


async def test_the_summary_fills_gaps_and_keeps_currencies_apart(
    repo: CommerceRepository, store: Store, orders: Orders
) -> None:
    alice, bob = await store.user("alice"), await store.user("bob")
    item = await store.item(alice, "Print", stock=2)
    await orders.place(bob, at(2026, 12, 2, 14), [(item, alice, 2, 1250)])
    await orders.place(bob, at(2026, 11, 28), [(item, alice, 1, 1250)])
    await orders.place(bob, at(2026, 11, 28), [(item, alice, 3, 900)], currency="USD")
    await orders.place(bob, at(2026, 10, 1), [(item, alice, 1, 5)], currency="CHF")  # weeks only
    summary = await report(repo, alice, "EUR", days=7, weeks=12)
    assert [c.currency for c in summary.currencies] == ["EUR", "CHF", "USD"]
    eur, chf, usd = summary.currencies
    assert [(p.start, p.revenue_cents) for p in eur.days] == [
        ("2026-11-26", 0),
        ("2026-11-27", 0),
        ("2026-11-28", 1250),
        ("2026-11-29", 0),
        ("2026-11-30", 0),
        ("2026-12-01", 0),
        ("2026-12-02", 2500),
    ]
    assert (eur.revenue_cents, eur.units, eur.orders) == (3750, 3, 2)
    assert [(p.start, p.units) for p in eur.weeks[-2:]] == [("2026-11-23", 1), ("2026-11-30", 2)]
    assert (usd.revenue_cents, usd.units) == (2700, 3)
    assert [p.revenue_cents for p in usd.weeks if p.revenue_cents] == [2700]
    assert (chf.revenue_cents, sum(p.revenue_cents for p in chf.weeks)) == (0, 5)
    assert chf.top_by_revenue == []  # the top lists cover the days window
    assert [(t.item_id, t.revenue_cents, t.units, t.stock) for t in eur.top_by_units] == [
        (item, 3750, 3, 2)
    ]
    assert [t.revenue_cents for t in usd.top_by_revenue] == [2700]
    assert [s.item_id for s in summary.low_stock] == [item]


async def test_the_summary_honours_its_top_count_and_stock_threshold(
    repo: CommerceRepository, store: Store, orders: Orders
) -> None:
    alice, bob = await store.user("alice"), await store.user("bob")
    items = [await store.item(alice, f"Item {n}", stock=n + 1) for n in range(4)]
    await orders.place(
        bob, at(2026, 12, 1), [(item, alice, n + 1, 100) for n, item in enumerate(items)]
    )
    summary = await report(repo, alice, top=2, low_stock=2)
    [eur] = summary.currencies
    assert [t.item_id for t in eur.top_by_units] == [items[3], items[2]]
    assert [t.item_id for t in eur.top_by_revenue] == [items[3], items[2]]
    assert [s.item_id for s in summary.low_stock] == items[:2]
    assert summary.low_stock_threshold == 2
    assert STOCK_LIST_LIMIT >= 2
