"""Orders and sales against a real TLS server: batches, cursors, access and deleted items."""

from __future__ import annotations

from pathlib import Path

import pytest

from protocol import commerce_client as shop
from protocol.catalogue_client import delete_items
from protocol.client import Session
from protocol.errors import BadRequest, NotFound
from protocol.messages.commerce import ListOrders, ListSales, OrderBatch, SaleBatch
from tests.conftest import SessionFactory, logged_in
from tests.support.commerce import list_item


async def _buy(session: Session, *lines: tuple[int, int]) -> int:
    for item_id, quantity in lines:
        cart = await shop.add_to_cart(session, item_id, quantity)
    placed = await shop.checkout(session, cart.total_cents, shop.new_checkout_key())
    return placed.order.id


async def test_orders_come_newest_first_in_batches(
    make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    bob = await logged_in(make_session, "bob")
    first = await list_item(alice, tmp_path, title="First", price_cents=100, stock=20)
    second = await list_item(alice, tmp_path, title="Second", price_cents=250, stock=20)
    placed = [await _buy(bob, (first, 1)) for _ in range(4)]
    placed.append(await _buy(bob, (second, 2), (first, 3)))

    batches = []
    cursor = None
    while True:
        batch = await shop.order_batch(bob, limit=2, cursor=cursor)
        batches.append([order.id for order in batch.orders])
        if batch.cursor is None:
            break
        cursor = batch.cursor
    assert batches == [placed[:2:-1], placed[2:0:-1], placed[:1]]

    newest = (await shop.order_batch(bob, limit=1)).orders[0]
    assert (newest.first_title, newest.line_count, newest.units) == ("Second", 2, 5)
    assert (newest.total_cents, newest.currency) == (2 * 250 + 3 * 100, "EUR")
    assert [order.id async for order in shop.iter_orders(bob, limit=3)] == placed[::-1]


async def test_cursors_only_work_for_their_listing_and_user(
    make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    bob = await logged_in(make_session, "bob")
    carol = await logged_in(make_session, "carol")
    item = await list_item(alice, tmp_path, price_cents=100, stock=20)
    for _ in range(3):
        await _buy(bob, (item, 1))
        await _buy(carol, (item, 1))
    cursor = (await shop.order_batch(bob, limit=1)).cursor
    assert cursor is not None
    sales_cursor = (await shop.sales_batch(alice, limit=1)).cursor
    assert sales_cursor is not None

    tampered = cursor[:-3] + ("AAA" if not cursor.endswith("AAA") else "BBB")
    for who, request in [
        (bob, ListOrders(limit=1, cursor=tampered)),  # edited by hand
        (carol, ListOrders(limit=1, cursor=cursor)),  # issued to bob
        (alice, ListSales(limit=1, cursor=cursor)),  # from another listing
        (bob, ListOrders(limit=1, cursor=sales_cursor)),
        (bob, ListOrders(limit=1000)),  # above the server's batch maximum
    ]:
        with pytest.raises(BadRequest):
            await who.request(request, OrderBatch if isinstance(request, ListOrders) else SaleBatch)
    assert len((await shop.order_batch(bob, limit=1, cursor=cursor)).orders) == 1


async def test_an_order_is_only_shown_to_its_buyer(
    make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    bob = await logged_in(make_session, "bob")
    item = await list_item(alice, tmp_path, price_cents=100)
    order_id = await _buy(bob, (item, 1))
    assert (await shop.get_order(bob, order_id)).id == order_id
    with pytest.raises(NotFound) as someone_elses:
        await shop.get_order(alice, order_id)
    with pytest.raises(NotFound) as missing:
        await shop.get_order(alice, order_id + 100)
    assert someone_elses.value.message.replace(str(order_id), "N") == (
        missing.value.message.replace(str(order_id + 100), "N")
    )


async def test_sellers_see_the_sales_of_their_items(
    make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    dave = await logged_in(make_session, "dave")
    bob = await logged_in(make_session, "bob")
    carol = await logged_in(make_session, "carol")
    sunset = await list_item(alice, tmp_path, title="Sunset", price_cents=1250, stock=9)
    dunes = await list_item(alice, tmp_path, title="Dunes", price_cents=300, stock=9)
    boat = await list_item(dave, tmp_path, title="Boat", price_cents=700, stock=9)
    bobs = await _buy(bob, (sunset, 2))
    carols = await _buy(carol, (sunset, 1), (dunes, 1), (boat, 1))

    sales = [sale async for sale in shop.iter_sales(alice, limit=2)]
    assert [
        (sale.order_id, sale.title, sale.quantity, sale.line_total_cents, sale.buyer_name)
        for sale in sales
    ] == [
        (carols, "Dunes", 1, 300, "carol"),
        (carols, "Sunset", 1, 1250, "carol"),
        (bobs, "Sunset", 2, 2500, "bob"),
    ]
    assert [(sale.title, sale.buyer_name) for sale in (await shop.sales_batch(dave)).sales] == [
        ("Boat", "carol")
    ]
    assert (await shop.sales_batch(bob)).sales == []


async def test_deleting_an_item_keeps_past_orders_readable(
    make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    bob = await logged_in(make_session, "bob")
    item = await list_item(alice, tmp_path, title="Ephemeral", price_cents=450, stock=3)
    order_id = await _buy(bob, (item, 2))
    assert (await delete_items(alice, [item]))[0].error is None

    order = await shop.get_order(bob, order_id)
    assert [(line.item_id, line.title, line.unit_price_cents) for line in order.lines] == [
        (item, "Ephemeral", 450)
    ]
    assert order.total_cents == 900
    assert [sale.title for sale in (await shop.sales_batch(alice)).sales] == ["Ephemeral"]
    assert (await shop.order_batch(bob)).orders[0].first_title == "Ephemeral"
