"""Checkout-once without a server: the key is on disk before the checkout is sent, goes again with
every retry until the server answers for certain, and is forgotten only then."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest

from protocol.checkout import CheckoutOnce, PendingCheckout
from protocol.client import Session
from protocol.errors import OutOfStock, PixmartError, Unavailable
from protocol.messages.base import Reply, Request
from protocol.messages.commerce import Checkout, Order, OrderPlaced

ORDER = Order(id=9, created_at=0.0, total_cents=1250, currency="EUR", lines=[])


class ScriptedShop:
    """Answers each checkout with the next outcome of its script; notes the keys it was sent and
    what was on disk at that moment."""

    def __init__(self, pending: PendingCheckout | None, *outcomes: OrderPlaced | PixmartError):
        self.pending = pending
        self.outcomes = list(outcomes)
        self.keys: list[str] = []
        self.on_disk: list[str | None] = []

    async def request(self, request: Request, expect: type[Reply]) -> Reply:
        assert isinstance(request, Checkout) and expect is OrderPlaced
        self.keys.append(request.checkout_key)
        self.on_disk.append(self.pending.load() if self.pending is not None else None)
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, PixmartError):
            raise outcome
        return outcome

    @property
    def session(self) -> Session:
        return cast(Session, self)


def pending_in(root: Path) -> PendingCheckout:
    return PendingCheckout(root, "wss://shop.example:443", "Ada")


async def test_a_lost_answer_sends_the_same_key_again_even_from_a_new_run(tmp_path: Path) -> None:
    pending = pending_in(tmp_path)
    shop = ScriptedShop(pending, Unavailable("lost"), OrderPlaced(id=1, order=ORDER, replayed=True))
    with pytest.raises(Unavailable):
        await CheckoutOnce(pending).checkout(shop.session, 1250)
    assert shop.on_disk == shop.keys  # kept before it was sent
    assert pending.load() == shop.keys[0]  # not settled: nobody knows what happened
    # A new run (a new CheckoutOnce) finds the key and sends it again; the server replays.
    placed = await CheckoutOnce(pending).checkout(shop.session, 1250)
    assert placed.replayed and shop.keys[1] == shop.keys[0]
    assert pending.load() is None  # settled


async def test_a_definite_refusal_settles_so_the_next_purchase_gets_a_new_key(
    tmp_path: Path,
) -> None:
    pending = pending_in(tmp_path)
    shop = ScriptedShop(pending, OutOfStock("sold out"), OrderPlaced(id=1, order=ORDER))
    purchase = CheckoutOnce(pending)
    with pytest.raises(OutOfStock):
        await purchase.checkout(shop.session, 1250)
    assert pending.load() is None
    assert (await purchase.checkout(shop.session, 1250)).order == ORDER
    assert shop.keys[0] != shop.keys[1]


async def test_a_key_that_cannot_be_kept_stops_a_durable_checkout_before_it_is_sent(
    tmp_path: Path,
) -> None:
    (tmp_path / "file").write_text("not a folder")
    pending = pending_in(tmp_path / "file")
    shop = ScriptedShop(pending, OrderPlaced(id=1, order=ORDER))
    with pytest.raises(OSError):
        await CheckoutOnce(pending, durable=True).checkout(shop.session, 1250)
    assert shop.keys == []


async def test_without_a_disk_the_key_is_kept_in_memory_across_retries(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    shop = ScriptedShop(None, Unavailable("lost"), OrderPlaced(id=1, order=ORDER, replayed=True))
    purchase = CheckoutOnce(pending_in(tmp_path / "file"), durable=False)
    with pytest.raises(Unavailable):
        await purchase.checkout(shop.session, 1250)
    await purchase.checkout(shop.session, 1250)
    assert len(shop.keys) == 2 and shop.keys[0] == shop.keys[1]
