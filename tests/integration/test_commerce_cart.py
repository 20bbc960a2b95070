"""The server-side cart against a real TLS server: changes, limits, flags and persistence."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.accounts.service import Principal
from backend.commerce.cart import CartService
from backend.commerce.repositories import commerce_repository
from backend.server import PixmartServer
from protocol import commerce_client as shop
from protocol.catalogue_client import delete_items, edit_item
from protocol.client import Session
from protocol.errors import BadRequest, Conflict, Forbidden, NotFound, OutOfStock
from protocol.messages.commerce import AddToCart, CartView, LineProblem
from protocol.trust import TrustPolicy
from tests.conftest import TEST_BACKOFF, SessionFactory, logged_in
from tests.support.commerce import list_item


async def test_add_change_remove_and_clear(make_session: SessionFactory, tmp_path: Path) -> None:
    alice = await logged_in(make_session, "alice")
    bob = await logged_in(make_session, "bob")
    item = await list_item(alice, tmp_path, title="Sunset", price_cents=1250, stock=5)

    cart = await shop.add_to_cart(bob, item, 2)
    assert [(line.item_id, line.quantity) for line in cart.lines] == [(item, 2)]
    line = cart.lines[0]
    assert (line.title, line.price_cents, line.added_price_cents) == ("Sunset", 1250, 1250)
    assert (line.stock, line.line_total_cents, line.problems) == (5, 2500, [])
    assert (cart.total_cents, cart.units, cart.ready) == (2500, 2, True)

    # Adding again adds to the line.
    assert (await shop.add_to_cart(bob, item)).lines[0].quantity == 3
    cart = await shop.set_quantity(bob, item, 1)
    assert (cart.lines[0].quantity, cart.total_cents) == (1, 1250)
    assert await shop.get_cart(bob) == cart

    assert (await shop.remove_from_cart(bob, item)).lines == []
    with pytest.raises(NotFound):
        await shop.remove_from_cart(bob, item)
    with pytest.raises(NotFound):
        await shop.set_quantity(bob, item, 1)

    await shop.add_to_cart(bob, item, 1)
    cleared = await shop.clear_cart(bob)
    assert (cleared.lines, cleared.total_cents, cleared.ready) == ([], 0, False)
    assert (await shop.get_cart(bob)).lines == []


async def test_quantity_is_at_least_one_and_at_most_the_stock(
    make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    bob = await logged_in(make_session, "bob")
    item = await list_item(alice, tmp_path, title="Dunes", stock=5)
    sold_out = await list_item(alice, tmp_path, title="Gone", stock=0)

    with pytest.raises(OutOfStock) as too_many:
        await shop.add_to_cart(bob, item, 6)
    assert too_many.value.details == {"item_id": item, "stock": 5, "in_cart": 0}
    await shop.add_to_cart(bob, item, 3)
    with pytest.raises(OutOfStock, match="3 already in your cart"):
        await shop.add_to_cart(bob, item, 3)
    with pytest.raises(OutOfStock):
        await shop.set_quantity(bob, item, 6)
    with pytest.raises(OutOfStock, match="sold out"):
        await shop.add_to_cart(bob, sold_out)
    with pytest.raises(BadRequest):
        await shop.set_quantity(bob, item, 0)
    with pytest.raises(BadRequest):
        await bob.request(AddToCart(item_id=item, quantity=-1), CartView)
    # Nothing above changed the line.
    assert [(line.item_id, line.quantity) for line in (await shop.get_cart(bob)).lines] == [
        (item, 3)
    ]


async def test_owners_cannot_buy_their_own_items(
    make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    item = await list_item(alice, tmp_path)
    with pytest.raises(Forbidden):
        await shop.add_to_cart(alice, item)
    assert (await shop.get_cart(alice)).lines == []


async def test_private_items_of_others_look_missing(
    make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    bob = await logged_in(make_session, "bob")
    private = await list_item(alice, tmp_path, public=False)
    missing = private + 1000

    with pytest.raises(NotFound) as hidden:
        await shop.add_to_cart(bob, private)
    with pytest.raises(NotFound) as absent:
        await shop.add_to_cart(bob, missing)
    # The same words, except for the id: nothing tells a private item from a missing one.
    assert hidden.value.message.replace(str(private), "N") == absent.value.message.replace(
        str(missing), "N"
    )
    assert hidden.value.details == absent.value.details is None


async def test_lines_are_flagged_when_their_items_change(
    make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    bob = await logged_in(make_session, "bob")
    repriced = await list_item(alice, tmp_path, title="Repriced", price_cents=1000, stock=5)
    deleted = await list_item(alice, tmp_path, title="Deleted", price_cents=700, stock=5)
    hidden = await list_item(alice, tmp_path, title="Hidden", price_cents=900, stock=5)
    scarce = await list_item(alice, tmp_path, title="Scarce", price_cents=300, stock=5)
    fine = await list_item(alice, tmp_path, title="Fine", price_cents=100, stock=5)
    for item in (repriced, deleted, hidden, scarce, fine):
        await shop.add_to_cart(bob, item, 2)

    await edit_item(alice, repriced, price_cents=1500)
    await delete_items(alice, [deleted])
    await edit_item(alice, hidden, public=False, title="Secret new title")
    await edit_item(alice, scarce, stock=1)

    cart = await shop.get_cart(bob)
    lines = {line.item_id: line for line in cart.lines}
    assert [line.item_id for line in cart.lines] == [repriced, deleted, hidden, scarce, fine]
    assert lines[repriced].problems == [LineProblem.PRICE_CHANGED]
    assert (lines[repriced].price_cents, lines[repriced].added_price_cents) == (1500, 1000)
    assert lines[repriced].line_total_cents == 3000
    # Deleted and private lines keep what the buyer saw and reveal nothing new.
    assert lines[deleted].problems == [LineProblem.DELETED]
    assert (lines[deleted].title, lines[deleted].price_cents, lines[deleted].stock) == (
        "Deleted",
        700,
        0,
    )
    assert lines[hidden].problems == [LineProblem.PRIVATE]
    assert (lines[hidden].title, lines[hidden].stock) == ("Hidden", 0)
    assert lines[scarce].problems == [LineProblem.OUT_OF_STOCK]
    assert lines[scarce].stock == 1
    assert lines[fine].problems == []
    # Deleted and private lines cannot be bought, so they count nothing.
    assert cart.total_cents == 3000 + 2 * 300 + 2 * 100
    assert not cart.ready

    with pytest.raises(Conflict):
        await shop.set_quantity(bob, deleted, 1)
    with pytest.raises(Conflict):
        await shop.set_quantity(bob, hidden, 1)
    ready = await shop.set_quantity(bob, scarce, 1)
    assert {line.item_id: line.problems for line in ready.lines}[scarce] == []
    await shop.remove_from_cart(bob, deleted)
    # A changed price alone does not block: the person confirms the total at checkout.
    assert (await shop.remove_from_cart(bob, hidden)).ready


async def test_adding_again_remembers_the_current_price(
    make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    bob = await logged_in(make_session, "bob")
    item = await list_item(alice, tmp_path, price_cents=1000, stock=5)
    await shop.add_to_cart(bob, item)
    await edit_item(alice, item, price_cents=1200)
    assert (await shop.get_cart(bob)).lines[0].problems == [LineProblem.PRICE_CHANGED]
    line = (await shop.add_to_cart(bob, item)).lines[0]
    assert (line.quantity, line.added_price_cents, line.problems) == (2, 1200, [])


async def test_the_cart_follows_the_user_across_devices_and_restarts(
    server: PixmartServer, make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    bob = await logged_in(make_session, "bob")
    item = await list_item(alice, tmp_path, stock=5)
    await shop.add_to_cart(bob, item, 2)

    phone = await make_session()
    await phone.login("bob", "password123")
    assert [line.quantity for line in (await shop.get_cart(phone)).lines] == [2]

    bob.abort_transport()  # a network drop: the session resumes by itself
    assert [line.quantity for line in (await shop.add_to_cart(bob, item)).lines] == [3]

    token = bob.token
    await server.stop()
    restarted = PixmartServer(server.config)
    await restarted.start()
    try:
        session = Session(
            f"wss://127.0.0.1:{restarted.port}",
            TrustPolicy(fingerprint=restarted.fingerprint),
            token=token,
            backoff=TEST_BACKOFF,
        )
        async with session:
            assert [line.quantity for line in (await shop.get_cart(session)).lines] == [3]
    finally:
        await restarted.stop()


async def test_a_cart_holds_a_bounded_number_of_lines(
    server: PixmartServer, make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    bob = await logged_in(make_session, "bob")
    first = await list_item(alice, tmp_path)
    second = await list_item(alice, tmp_path)
    assert bob.user is not None
    principal = Principal(bob.user.id, "bob", False, b"")
    small = CartService(commerce_repository(server.db), max_lines=1)
    await small.add(principal, first, 1)
    await small.add(principal, first, 1)  # more units of a line already there are fine
    with pytest.raises(BadRequest, match="at most 1 different"):
        await small.add(principal, second, 1)
