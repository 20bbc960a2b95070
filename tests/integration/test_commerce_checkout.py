"""Checkout against a real TLS server: all or nothing, idempotent, never overselling."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from backend.accounts import passwords
from protocol import commerce_client as shop
from protocol.catalogue_client import delete_items, edit_item, get_item
from protocol.client import Session
from protocol.errors import BadRequest, Conflict, OutOfStock
from protocol.messages.commerce import LineProblem
from tests.conftest import SessionFactory, logged_in
from tests.support.commerce import list_item, many_logged_in


async def _stock(session: Session, item_id: int) -> int:
    return (await get_item(session, item_id)).stock


async def _order_count(session: Session) -> int:
    return len([order async for order in shop.iter_orders(session)])


async def test_checkout_buys_the_whole_cart(make_session: SessionFactory, tmp_path: Path) -> None:
    alice = await logged_in(make_session, "alice")
    carol = await logged_in(make_session, "carol")
    bob = await logged_in(make_session, "bob")
    sunset = await list_item(alice, tmp_path, title="Sunset", price_cents=1250, stock=5)
    dunes = await list_item(carol, tmp_path, title="Dunes", price_cents=300, stock=1)
    await shop.add_to_cart(bob, sunset, 2)
    cart = await shop.add_to_cart(bob, dunes, 1)
    assert cart.total_cents == 2800

    placed = await shop.checkout(bob, 2800, shop.new_checkout_key())

    assert not placed.replayed
    order = placed.order
    assert (order.total_cents, order.currency) == (2800, "EUR")
    assert [
        (line.item_id, line.title, line.quantity, line.unit_price_cents, line.seller_name)
        for line in order.lines
    ] == [(sunset, "Sunset", 2, 1250, "alice"), (dunes, "Dunes", 1, 300, "carol")]
    assert [line.line_total_cents for line in order.lines] == [2500, 300]
    assert (await _stock(bob, sunset), await _stock(bob, dunes)) == (3, 0)
    assert (await shop.get_cart(bob)).lines == []
    assert await shop.get_order(bob, order.id) == order


async def test_an_empty_cart_cannot_be_checked_out(make_session: SessionFactory) -> None:
    bob = await logged_in(make_session, "bob")
    with pytest.raises(BadRequest, match="empty"):
        await shop.checkout(bob, 0, shop.new_checkout_key())
    assert await _order_count(bob) == 0


async def test_a_line_without_stock_stops_everything(
    make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    bob = await logged_in(make_session, "bob")
    plenty = await list_item(alice, tmp_path, title="Plenty", price_cents=100, stock=9)
    scarce = await list_item(alice, tmp_path, title="Scarce", price_cents=200, stock=3)
    await shop.add_to_cart(bob, plenty, 2)
    cart = await shop.add_to_cart(bob, scarce, 3)
    await edit_item(alice, scarce, stock=1)

    with pytest.raises(OutOfStock) as failed:
        await shop.checkout(bob, cart.total_cents, shop.new_checkout_key())

    failures = shop.checkout_failures(failed.value)
    assert [(f.item_id, f.reason, f.stock, f.quantity) for f in failures] == [
        (scarce, LineProblem.OUT_OF_STOCK, 1, 3)
    ]
    assert "only 1 of 'Scarce' left" in failed.value.message
    # Nothing changed: stock, cart and orders are as they were.
    assert (await _stock(bob, plenty), await _stock(bob, scarce)) == (9, 1)
    assert [(line.item_id, line.quantity) for line in (await shop.get_cart(bob)).lines] == [
        (plenty, 2),
        (scarce, 3),
    ]
    assert await _order_count(bob) == 0


async def test_deleted_and_private_lines_are_a_conflict(
    make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    bob = await logged_in(make_session, "bob")
    gone = await list_item(alice, tmp_path, title="Gone", price_cents=100)
    hidden = await list_item(alice, tmp_path, title="Hidden", price_cents=100)
    scarce = await list_item(alice, tmp_path, title="Scarce", price_cents=100, stock=2)
    fine = await list_item(alice, tmp_path, title="Fine", price_cents=100, stock=2)
    for item in (gone, hidden, scarce, fine):
        await shop.add_to_cart(bob, item, 2)
    await delete_items(alice, [gone])
    await edit_item(alice, hidden, public=False)
    await edit_item(alice, scarce, stock=0)
    total = (await shop.get_cart(bob)).total_cents

    with pytest.raises(Conflict) as failed:
        await shop.checkout(bob, total, shop.new_checkout_key())

    assert [(f.item_id, f.reason) for f in shop.checkout_failures(failed.value)] == [
        (gone, LineProblem.DELETED),
        (hidden, LineProblem.PRIVATE),
        (scarce, LineProblem.OUT_OF_STOCK),
    ]
    assert await _stock(bob, fine) == 2
    assert await _order_count(bob) == 0


async def test_a_changed_price_needs_the_new_total_confirmed(
    make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    bob = await logged_in(make_session, "bob")
    item = await list_item(alice, tmp_path, title="Sunset", price_cents=1250, stock=5)
    shown = (await shop.add_to_cart(bob, item, 2)).total_cents
    await edit_item(alice, item, price_cents=1500)

    with pytest.raises(Conflict) as failed:
        await shop.checkout(bob, shown, shop.new_checkout_key())
    failures = shop.checkout_failures(failed.value)
    assert [(f.reason, f.price_cents, f.added_price_cents) for f in failures] == [
        (LineProblem.PRICE_CHANGED, 1500, 1250)
    ]
    assert failed.value.details is not None
    assert failed.value.details["total_cents"] == 3000
    assert failed.value.details["expected_total_cents"] == 2500
    assert await _stock(bob, item) == 5

    # Shown the new total, the person confirms it: the order is at the new price.
    placed = await shop.checkout(bob, (await shop.get_cart(bob)).total_cents, "ab" * 16)
    assert [(line.unit_price_cents, line.quantity) for line in placed.order.lines] == [(1500, 2)]
    assert placed.order.total_cents == 3000


async def test_a_retried_checkout_key_returns_the_same_order(
    make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    bob = await logged_in(make_session, "bob")
    item = await list_item(alice, tmp_path, price_cents=500, stock=5)
    key = shop.new_checkout_key()
    await shop.add_to_cart(bob, item, 2)
    first = await shop.checkout(bob, 1000, key)

    # Another client session (a restarted client): the replay cache cannot help, the key does.
    again = await make_session(token=bob.token)
    second = await shop.checkout(again, 1000, key)
    assert second.replayed and second.order == first.order
    # Even with a new cart, the key stays bound to the order it placed.
    await shop.add_to_cart(again, item, 1)
    third = await shop.checkout(again, 500, key)
    assert third.replayed and third.order.id == first.order.id
    assert [line.quantity for line in (await shop.get_cart(bob)).lines] == [1]
    assert await _stock(bob, item) == 3
    assert await _order_count(bob) == 1


async def test_checkout_keys_belong_to_their_user(
    make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    bob = await logged_in(make_session, "bob")
    carol = await logged_in(make_session, "carol")
    item = await list_item(alice, tmp_path, price_cents=500, stock=5)
    key = shop.new_checkout_key()
    await shop.add_to_cart(bob, item)
    await shop.add_to_cart(carol, item)
    bobs = await shop.checkout(bob, 500, key)
    carols = await shop.checkout(carol, 500, key)
    assert not carols.replayed and carols.order.id != bobs.order.id


async def test_a_checkout_cut_off_by_a_drop_is_applied_once(
    make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    bob = await logged_in(make_session, "bob")
    item = await list_item(alice, tmp_path, price_cents=500, stock=5)
    await shop.add_to_cart(bob, item, 1)
    pending = asyncio.create_task(shop.checkout(bob, 500, shop.new_checkout_key()))
    await asyncio.sleep(0)  # the frame is on its way
    bob.abort_transport()
    placed = await asyncio.wait_for(pending, 10)
    assert placed.order.total_cents == 500
    assert await _order_count(bob) == 1
    assert await _stock(bob, item) == 4


async def test_fifty_buyers_race_for_the_last_ten_units(
    make_session: SessionFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Fifty accounts at full Argon2id cost would dominate the test; the race is about checkout.
    monkeypatch.setattr(passwords, "MEMORY_KIB", 64)
    monkeypatch.setattr(passwords, "ITERATIONS", 1)
    alice = await logged_in(make_session, "alice")
    item = await list_item(alice, tmp_path, title="Last ones", price_cents=999, stock=10)
    buyers = await many_logged_in(make_session, "buyer", 50)
    await asyncio.gather(*(shop.add_to_cart(buyer, item, 1) for buyer in buyers))

    outcomes = await asyncio.gather(
        *(shop.checkout(buyer, 999, shop.new_checkout_key()) for buyer in buyers),
        return_exceptions=True,
    )

    orders = [outcome for outcome in outcomes if not isinstance(outcome, BaseException)]
    losers = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    assert len(orders) == 10
    assert len(losers) == 40
    assert all(isinstance(loser, OutOfStock) for loser in losers), losers
    assert all(
        [f.reason for f in shop.checkout_failures(loser)] == [LineProblem.OUT_OF_STOCK]
        for loser in losers
        if isinstance(loser, OutOfStock)
    )
    assert await _stock(alice, item) == 0
    sales = [sale async for sale in shop.iter_sales(alice)]
    assert sorted(sale.order_id for sale in sales) == sorted(order.order.id for order in orders)
    assert {(sale.item_id, sale.quantity) for sale in sales} == {(item, 1)}
