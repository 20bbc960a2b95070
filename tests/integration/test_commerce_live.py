"""Live events for cart holders: stock taken by checkouts, catalogue changes, other devices."""

from __future__ import annotations

import asyncio
from pathlib import Path

from protocol import commerce_client as shop
from protocol.catalogue_client import delete_items, edit_item
from protocol.messages.commerce import CartChanged
from protocol.messages.live import ItemChanged, ItemRemoved
from tests.conftest import SessionFactory, logged_in
from tests.support.commerce import EventLog, list_item


async def test_cart_holders_hear_of_stock_taken_by_a_checkout(
    make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    bob = await logged_in(make_session, "bob")
    carol = await logged_in(make_session, "carol")
    item = await list_item(alice, tmp_path, price_cents=800, stock=4)
    await shop.add_to_cart(carol, item, 1)
    carols = EventLog(carol)

    await shop.add_to_cart(bob, item, 3)
    await shop.checkout(bob, 2400, shop.new_checkout_key())

    changed = await carols.wait_for(ItemChanged, lambda event: event.item_id == item)
    assert (changed.stock, changed.price_cents) == (1, 800)


async def test_cart_holders_hear_of_catalogue_changes(
    make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    bob = await logged_in(make_session, "bob")
    item = await list_item(alice, tmp_path, price_cents=800, stock=4)
    # A fresh device that only looks at the cart (it never added the line itself).
    phone = await make_session(token=bob.token)
    await shop.add_to_cart(bob, item, 1)
    await shop.get_cart(phone)
    phones = EventLog(phone)

    await edit_item(alice, item, price_cents=900)
    changed = await phones.wait_for(ItemChanged, lambda event: event.item_id == item)
    assert changed.price_cents == 900
    await delete_items(alice, [item])
    await phones.wait_for(ItemRemoved, lambda event: event.item_id == item)


async def test_other_devices_hear_of_cart_changes(
    make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    bob = await logged_in(make_session, "bob")
    item = await list_item(alice, tmp_path, price_cents=800, stock=4)
    phone = await make_session(token=bob.token)
    await shop.get_cart(phone)
    await shop.get_cart(bob)
    phones, laptops = EventLog(phone), EventLog(bob)

    await shop.add_to_cart(bob, item, 2)
    added = await phones.wait_for(CartChanged, lambda event: event.cart.units == 2)
    assert [line.item_id for line in added.cart.lines] == [item]

    await shop.checkout(bob, 1600, shop.new_checkout_key())
    emptied = await phones.wait_for(CartChanged, lambda event: not event.cart.lines)
    assert emptied.cart.total_cents == 0
    await asyncio.sleep(0.05)
    assert laptops.of(CartChanged) == []  # the device that made the change is not told


async def test_a_connection_that_changed_user_no_longer_hears_the_old_cart(
    make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    bob = await logged_in(make_session, "bob")
    item = await list_item(alice, tmp_path, price_cents=800, stock=4)
    shared = await make_session()
    await shared.login("bob", "password123")  # its own session: logging out ends only this one
    await shop.get_cart(shared)  # subscribed as bob
    await shared.logout()
    await shared.create_account("carol", "password123")
    await shared.login("carol", "password123")
    shareds = EventLog(shared)
    observer = await make_session(token=bob.token)
    await shop.get_cart(observer)
    observers = EventLog(observer)

    await shop.add_to_cart(bob, item, 1)
    await observers.wait_for(CartChanged)  # delivered to bob's devices by now
    await asyncio.sleep(0.05)
    assert shareds.of(CartChanged) == []
