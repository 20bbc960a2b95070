"""The scripting CLI's cart, checkout, orders and sales commands against a real server."""

from __future__ import annotations

import json
import os
from pathlib import Path

from protocol import commerce_client as shop
from protocol.checkout import PendingCheckout
from tests.conftest import SessionFactory, logged_in
from tests.support.cli import Cli
from tests.support.commerce import PASSWORD, list_item
from tui.store import ClientStore


async def test_shopping_from_the_command_line(
    cli: Cli, make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    item = await list_item(alice, tmp_path, title="Sunset", price_cents=1250, stock=5)

    code, out, _ = await cli("cart", "add", str(item), "2")
    assert code == 0 and "Sunset" in out and "Total: €25.00 (2 units)" in out
    code, out, _ = await cli("cart", "set", str(item), "3", "--json")
    assert code == 0 and json.loads(out)["total_cents"] == 3750
    code, out, _ = await cli("cart", "--json")
    cart = json.loads(out)
    assert [(line["item_id"], line["quantity"]) for line in cart["lines"]] == [(item, 3)]

    code, out, _ = await cli("checkout", "--json")
    assert code == 0
    placed = json.loads(out)
    assert placed["replayed"] is False and placed["order"]["total_cents"] == 3750
    code, out, _ = await cli("cart")
    assert (code, out.strip()) == (0, "Your cart is empty")

    code, out, _ = await cli("orders", "--json")
    assert [json.loads(line)["id"] for line in out.splitlines()] == [placed["order"]["id"]]
    code, out, _ = await cli("orders", str(placed["order"]["id"]))
    assert code == 0 and "Total paid: €37.50" in out and "from alice" in out
    code, out, _ = await cli("sales")
    assert (code, out.strip()) == (0, "Nothing of yours has been sold yet")
    assert (await cli("login", "alice"))[0] == 0
    code, out, _ = await cli("sales", "--json")
    sales = [json.loads(line) for line in out.splitlines()]
    assert [(sale["item_id"], sale["quantity"], sale["buyer_name"]) for sale in sales] == [
        (item, 3, "bob")
    ]
    code, out, _ = await cli("sales")
    assert "to bob" in out and "3 x €12.50 = €37.50" in out


async def test_failures_are_told_in_words_with_a_failing_status(
    cli: Cli, make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    item = await list_item(alice, tmp_path, title="Scarce", price_cents=100, stock=2)

    code, out, err = await cli("cart", "add", str(item + 100))
    assert (code, out) == (1, "") and "no item" in err
    code, _, err = await cli("cart", "add", str(item), "0")
    assert code == 1 and "at least 1" in err
    code, _, err = await cli("checkout")
    assert code == 1 and "empty" in err

    await cli("cart", "add", str(item), "2")
    await shop.add_to_cart(await logged_in(make_session, "carol"), item, 2)
    carol = await make_session()
    await carol.login("carol", PASSWORD)
    await shop.checkout(carol, 200, shop.new_checkout_key())  # carol takes the last units
    code, out, err = await cli("checkout")
    assert code == 1
    assert f"#{item}: 'Scarce' is sold out" in err
    code, out, _ = await cli("cart")
    assert "sold out" in out


async def test_a_rerun_after_a_crash_does_not_order_twice(
    cli: Cli, make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    item = await list_item(alice, tmp_path, title="Sunset", price_cents=500, stock=5)
    await cli("cart", "add", str(item), "1")
    pending = PendingCheckout(ClientStore().root, cli.url, "bob")
    # A run that sent its checkout and crashed before the answer: the key stayed on disk and
    # the server placed the order.
    key = pending.create()
    bob = await make_session(token=ClientStore().token(cli.url))
    first = await shop.checkout(bob, 500, key)
    await shop.add_to_cart(bob, item, 1)  # and the person put something new in the cart

    code, out, _ = await cli("checkout")

    assert code == 0
    assert f"Order {first.order.id}" in out and "already gone through" in out
    assert "still holds 1 unit" in out
    assert pending.load() is None
    assert len((await shop.order_batch(bob)).orders) == 1
    # The next run buys the new line with a new key.
    code, out, _ = await cli("checkout", "--json")
    assert code == 0 and json.loads(out)["order"]["id"] != first.order.id
    assert len((await shop.order_batch(bob)).orders) == 2


async def test_the_checkout_key_is_private_and_durable(tmp_path: Path) -> None:
    pending = PendingCheckout(tmp_path, "wss://example:1", "Bob")
    assert pending.load() is None
    key = pending.create()
    assert PendingCheckout(tmp_path, "wss://example:1", "bob").load() == key
    assert PendingCheckout(tmp_path, "wss://example:2", "bob").load() is None
    assert os.stat(pending.path).st_mode & 0o777 == 0o600
    pending.path.write_text("not a key")
    assert pending.load() is None
    pending.settle()
    pending.settle()  # settling twice is harmless
    assert not pending.path.exists()
