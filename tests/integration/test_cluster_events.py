"""Live events across server instances: two servers in one process on one PostgreSQL database.

Proves that what happens on instance B (a listing, a price edit, a checkout's stock change, a
deletion, a cart change) reaches the watchers connected to instance A, with A applying the same
visibility rules (a private item's events reach only its owner); that a session ended on B
(logout, password change, an administrator) ends at once on A's connections and no longer
resumes there; that the listening connection comes back after PostgreSQL drops it; and how long
delivery from B to A takes (the median is printed; the bound asserted is generous, not a
benchmark).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import asyncpg
import pytest

from backend.pg_eventbus import PostgresEventBus
from protocol import commerce_client as shop
from protocol.catalogue_client import CatalogueWatch, delete_items, edit_item
from protocol.client import Session
from protocol.errors import Unauthenticated
from protocol.messages.accounts import Resume, Resumed, SessionEnded, SessionEndReason
from protocol.messages.base import Event
from protocol.messages.commerce import CartChanged
from protocol.messages.live import ItemAdded, ItemChanged, ItemRemoved
from tests.support.commerce import PASSWORD, list_item
from tests.support.two_instances import Cluster

E = TypeVar("E", bound=Event)

#: Generous, so a loaded test machine never fails it; the issue's target is 200 ms.
DELIVERY_BOUND = 2.0
#: Price edits timed for the latency figure.
TIMED_EDITS = 30


class Heard:
    """The events a session receives, each with the monotonic time it arrived."""

    def __init__(self, session: Session) -> None:
        self.events: list[tuple[float, Event]] = []
        self._arrived = asyncio.Event()
        session.on_event(self._record)

    def _record(self, event: Event) -> None:
        self.events.append((time.monotonic(), event))
        self._arrived.set()

    def of(self, kind: type[E]) -> list[E]:
        """The events of ``kind`` received so far."""
        return [event for _, event in self.events if isinstance(event, kind)]

    def about(self, item_id: int) -> list[Event]:
        """Every item event received about ``item_id``."""
        return [
            event
            for _, event in self.events
            if isinstance(event, ItemAdded | ItemChanged | ItemRemoved) and event.item_id == item_id
        ]

    async def wait_for(
        self, kind: type[E], match: Callable[[E], bool] = lambda _: True, timeout: float = 5.0
    ) -> tuple[float, E]:
        """The arrival time and the first event of ``kind`` that matches, waiting if need be."""
        async with asyncio.timeout(timeout):
            while True:
                for at, event in self.events:
                    if isinstance(event, kind) and match(event):
                        return at, event
                self._arrived.clear()
                await self._arrived.wait()


async def watching(session: Session) -> Heard:
    """Subscribe ``session`` to the catalogue and record what it hears."""
    await CatalogueWatch(session).watch_catalogue()
    return Heard(session)


async def test_a_watcher_on_one_instance_hears_what_happens_on_the_other(
    cluster: Cluster, tmp_path: Path
) -> None:
    watcher = await watching(await cluster.user(cluster.a, "watcher"))
    seller = await cluster.user(cluster.b, "seller")
    buyer = await cluster.user(cluster.b, "buyer")

    item = await list_item(seller, tmp_path, price_cents=800, stock=4)
    _, added = await watcher.wait_for(ItemAdded, lambda e: e.item_id == item)
    assert added.owner_id == seller.user.id  # type: ignore[union-attr]

    await edit_item(seller, item, price_cents=900)
    await watcher.wait_for(ItemChanged, lambda e: e.item_id == item and e.price_cents == 900)

    await shop.add_to_cart(buyer, item, 3)
    await shop.checkout(buyer, 2700, shop.new_checkout_key())
    _, sold = await watcher.wait_for(ItemChanged, lambda e: e.item_id == item and e.stock == 1)
    assert sold.price_cents == 900

    await delete_items(seller, [item])
    await watcher.wait_for(ItemRemoved, lambda e: e.item_id == item)


async def test_a_private_items_events_reach_only_its_owner_on_the_other_instance(
    cluster: Cluster, tmp_path: Path
) -> None:
    stranger = await watching(await cluster.user(cluster.a, "stranger"))
    seller = await cluster.user(cluster.b, "seller")
    owners_phone = await watching(await cluster.user(cluster.a, "seller", new=False))

    secret = await list_item(seller, tmp_path, title="Draft", public=False)
    await edit_item(seller, secret, title="Draft, retitled")
    await owners_phone.wait_for(ItemChanged, lambda e: e.item_id == secret)
    shown = await list_item(seller, tmp_path, title="Shown")
    await edit_item(seller, shown, public=False)  # public, then private: others hear "removed"
    await delete_items(seller, [secret])
    marker = await list_item(seller, tmp_path, title="Marker")

    # One instance's facts arrive in order: once the marker is heard, all before it were too.
    await stranger.wait_for(ItemAdded, lambda e: e.item_id == marker)
    await owners_phone.wait_for(ItemAdded, lambda e: e.item_id == marker)
    assert stranger.about(secret) == []
    assert [type(event) for event in stranger.about(shown)] == [ItemAdded, ItemRemoved]
    assert [type(event) for event in owners_phone.about(secret)] == [
        ItemAdded,
        ItemChanged,
        ItemRemoved,
    ]
    assert [type(event) for event in owners_phone.about(shown)] == [ItemAdded, ItemChanged]


async def test_a_cart_changed_on_one_instance_reaches_the_users_devices_on_the_other(
    cluster: Cluster, tmp_path: Path
) -> None:
    seller = await cluster.user(cluster.a, "seller")
    item = await list_item(seller, tmp_path, price_cents=800, stock=4)
    laptop = await cluster.user(cluster.b, "buyer")
    phone = await cluster.session(cluster.a, token=laptop.token)
    await shop.get_cart(phone)
    phones = Heard(phone)

    await shop.add_to_cart(laptop, item, 2)
    _, changed = await phones.wait_for(CartChanged, lambda e: e.cart.units == 2)
    assert [line.item_id for line in changed.cart.lines] == [item]


async def _ended_on_a(cluster: Cluster, phone: Session, heard: Heard) -> SessionEndReason:
    _, ended = await heard.wait_for(SessionEnded)
    assert phone.user is None
    return ended.reason


async def test_a_logout_on_one_instance_ends_the_session_on_the_other(cluster: Cluster) -> None:
    laptop = await cluster.user(cluster.b, "owner")
    token = laptop.token
    assert token is not None
    phone = await cluster.session(cluster.a, token=token)
    heard = await watching(phone)

    await laptop.logout()

    assert await _ended_on_a(cluster, phone, heard) is SessionEndReason.LOGGED_OUT
    # Forgotten on A too: the token no longer resumes there.
    other = await cluster.session(cluster.a)
    with pytest.raises(Unauthenticated):
        await other.request(Resume(token=token), Resumed)


async def test_a_password_change_on_one_instance_ends_the_sessions_on_the_other(
    cluster: Cluster,
) -> None:
    laptop = await cluster.user(cluster.b, "owner")
    phone = await cluster.user(cluster.a, "owner", new=False)
    heard = await watching(phone)

    await laptop.change_password(PASSWORD, "a new password 123")

    assert await _ended_on_a(cluster, phone, heard) is SessionEndReason.PASSWORD_CHANGED
    # The session the change opened carries on, on either instance.
    tablet = await cluster.session(cluster.a, token=laptop.token)
    assert tablet.user is not None


async def test_an_administrator_ending_a_users_sessions_ends_them_on_the_other_instance(
    cluster: Cluster,
) -> None:
    phone = await cluster.user(cluster.a, "owner")
    heard = await watching(phone)
    await cluster.b.accounts.set_admin("owner", True)

    await cluster.b.accounts.set_admin("owner", False)  # taking the role away ends them

    assert await _ended_on_a(cluster, phone, heard) is SessionEndReason.REVOKED


async def test_the_listener_reconnects_after_postgresql_drops_it(
    cluster: Cluster, pg_url: str, tmp_path: Path
) -> None:
    watcher = await watching(await cluster.user(cluster.a, "watcher"))
    seller = await cluster.user(cluster.b, "seller")
    bus = cluster.a.bus
    assert isinstance(bus, PostgresEventBus)
    dropped = bus.listener_pid
    conn = await asyncpg.connect(pg_url)
    try:
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", dropped)
    finally:
        await conn.close()

    async with asyncio.timeout(10):
        while bus.listener_pid in (None, dropped):
            await asyncio.sleep(0.01)
    item = await list_item(seller, tmp_path)
    await watcher.wait_for(ItemAdded, lambda e: e.item_id == item)


def _priced(price_cents: int) -> Callable[[ItemChanged], bool]:
    return lambda event: event.price_cents == price_cents


async def test_delivery_from_one_instance_to_the_other_is_quick(
    cluster: Cluster, tmp_path: Path
) -> None:
    seller = await cluster.user(cluster.b, "seller")
    on_a = await watching(await cluster.user(cluster.a, "watcher-a"))
    on_b = await watching(await cluster.user(cluster.b, "watcher-b"))
    item = await list_item(seller, tmp_path, price_cents=100)

    extra: list[float] = []  # arrival on A after arrival on B, the instance it happened on
    total: list[float] = []  # arrival on A after the edit was sent to B
    for n in range(1, TIMED_EDITS + 1):
        price = 100 + n
        sent = time.monotonic()
        await edit_item(seller, item, price_cents=price)
        at_a, _ = await on_a.wait_for(ItemChanged, _priced(price))
        at_b, _ = await on_b.wait_for(ItemChanged, _priced(price))
        extra.append(at_a - at_b)
        total.append(at_a - sent)

    print(
        f"\ncross-instance delivery over {TIMED_EDITS} edits: "
        f"median {statistics.median(extra) * 1000:.2f} ms after the origin's own watcher "
        f"(max {max(extra) * 1000:.2f} ms); "
        f"median {statistics.median(total) * 1000:.2f} ms from the request "
        f"(max {max(total) * 1000:.2f} ms)"
    )
    assert max(total) < DELIVERY_BOUND


async def test_the_admin_command_ends_the_sessions_on_running_instances_at_once(
    cluster: Cluster, pg_url: str, tmp_path: Path
) -> None:
    phone = await cluster.user(cluster.a, "owner")
    heard = await watching(phone)
    await cluster.b.accounts.set_admin("owner", True)
    command = [
        *("-c", "import sys; from backend.cli import main; sys.exit(main())"),
        *("--data-dir", str(tmp_path / "command"), "admin", "remove", "owner"),
    ]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *command,
        env={**os.environ, "PIXMART_DATABASE": pg_url},  # not in argv, which others can read
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert b"no longer an administrator" in out

    # The instances do not sweep during the test: the command's own fact ended it.
    assert await _ended_on_a(cluster, phone, heard) is SessionEndReason.REVOKED
