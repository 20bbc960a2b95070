"""Two real ``pixmart-server`` instances on one PostgreSQL database, behind a real haproxy.

Both instances serve the same certificate, so a client pins one fingerprint whichever instance
haproxy picks. The tests race buyers on both instances for the last units of an item; show a
watcher on one instance the stock a checkout on the other took, live; and SIGKILL one instance
while clients page and check out through haproxy: every client must reconnect through haproxy
to the survivor by itself, resume its login, and lose nothing it saw acknowledged nor have
anything applied twice.

haproxy comes from the Debian package; the fixture installs it with apt when it is missing and
fails (never skips) with the reason when it cannot.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from backend import tls
from protocol import commerce_client as shop
from protocol.catalogue_client import CatalogueWatch, browse
from protocol.client import Session
from protocol.errors import BadRequest, Conflict, OutOfStock
from protocol.messages.commerce import Order
from protocol.messages.live import ItemChanged
from protocol.trust import TrustPolicy
from tests.support.cluster import shared_certificate
from tests.support.commerce import (
    FAST_BACKOFF,
    EventLog,
    ServerProcess,
    check_orders_postgres,
    list_item,
    sign_up,
)
from tests.support.haproxy import Haproxy, ensure_haproxy

#: Generous: installing haproxy on a fresh machine, two server starts, and the kill test.
pytestmark = pytest.mark.timeout(240)

#: From the kill to every client served again; the issue's target is 5 s.
RECOVERY_BOUND = 15.0


@dataclass
class ClusterInstance(ServerProcess):
    """A server process that serves the cluster's shared certificate instead of its own."""

    cert: Path | None = None
    key: Path | None = None

    def serve_options(self, port: int) -> list[str]:
        options = super().serve_options(port)
        if self.cert is not None and self.key is not None:
            options += ["--cert", str(self.cert), "--key", str(self.key)]
        return options


@dataclass
class Cluster:
    """Two instances and the haproxy in front of them."""

    instances: list[ClusterInstance]
    balancer: Haproxy
    fingerprint: str
    database: str

    def session(self, instance: ClusterInstance | None = None) -> Session:
        """A session through haproxy, or straight to ``instance`` (not yet connected)."""
        url = self.balancer.url if instance is None else instance.url
        return Session(url, TrustPolicy(fingerprint=self.fingerprint), backoff=FAST_BACKOFF)

    async def connected(self, instance: ClusterInstance | None = None) -> Session:
        session = self.session(instance)
        await session.connect()
        return session


@pytest.fixture
async def cluster(tmp_path: Path, pg_url: str) -> AsyncIterator[Cluster]:
    """Two instances on a fresh database with one certificate, behind haproxy on a free port."""
    await asyncio.to_thread(ensure_haproxy)  # raises with the reason: a missing tool is a failure
    cert, key = shared_certificate(tmp_path / "shared")
    instances = [
        ClusterInstance(tmp_path / f"instance{n}", database=pg_url, cert=cert, key=key)
        for n in range(2)
    ]
    # haproxy's admin socket path must stay short (108 bytes): not under pytest's tmp_path.
    lb_dir = Path(tempfile.mkdtemp(prefix="pixmart-lb-"))
    balancer = Haproxy(lb_dir)
    try:
        await asyncio.gather(*(instance.start() for instance in instances))
        await asyncio.to_thread(balancer.up, [instance.port for instance in instances])
        await asyncio.to_thread(balancer.wait_for_states, {"instance0": "UP", "instance1": "UP"})
        fingerprint = tls.fingerprint_of_pem_file(cert)
        assert {instance.fingerprint for instance in instances} == {fingerprint}
        yield Cluster(instances, balancer, fingerprint, pg_url)
    finally:
        balancer.down()
        # Side by side: each graceful stop waits out its own shutdown.
        await asyncio.gather(*(asyncio.to_thread(instance.stop) for instance in instances))
        shutil.rmtree(lb_dir, ignore_errors=True)


async def _close_all(sessions: list[Session]) -> None:
    await asyncio.gather(*(session.close() for session in sessions))


async def test_buyers_on_both_instances_race_for_the_last_units(
    cluster: Cluster, tmp_path: Path
) -> None:
    sessions: list[Session] = []
    try:
        seller = await cluster.connected()
        sessions.append(seller)
        await sign_up(seller, "seller")
        item = await list_item(seller, tmp_path / "pictures", stock=5)
        # One by one through haproxy: least-connections puts every other one on each instance.
        buyers = []
        for _ in range(12):
            buyers.append(await cluster.connected())
        sessions += buyers
        spread = await asyncio.to_thread(cluster.balancer.current_sessions)
        assert sorted(spread.values()) == [6, 7], spread  # 13 sessions: 7 and 6
        await asyncio.gather(*(sign_up(buyer, f"buyer{n}") for n, buyer in enumerate(buyers)))
        carts = await asyncio.gather(*(shop.add_to_cart(buyer, item, 1) for buyer in buyers))

        async def checkout(buyer: Session, total: int) -> Order | None:
            try:
                return (await shop.checkout(buyer, total, shop.new_checkout_key())).order
            except OutOfStock:
                return None

        results = await asyncio.gather(
            *(checkout(buyer, cart.total_cents) for buyer, cart in zip(buyers, carts, strict=True))
        )
        placed = [order for order in results if order is not None]
        assert len(placed) == 5
    finally:
        await _close_all(sessions)
    conn = await asyncpg.connect(cluster.database)
    try:
        assert await conn.fetchval("SELECT count(*) FROM orders") == 5
        assert await conn.fetchval("SELECT stock FROM items WHERE id = $1", item) == 0
    finally:
        await conn.close()
    await check_orders_postgres(cluster.database, {item: 5}, placed)


async def test_a_buyer_on_one_instance_sees_live_the_stock_a_checkout_on_the_other_took(
    cluster: Cluster, tmp_path: Path
) -> None:
    first, second = cluster.instances
    sessions: list[Session] = []
    try:
        seller = await cluster.connected(second)
        buyer = await cluster.connected(second)
        watcher = await cluster.connected(first)
        sessions += [seller, buyer, watcher]
        for session, name in ((seller, "seller"), (buyer, "buyer"), (watcher, "watcher")):
            await sign_up(session, name)
        item = await list_item(seller, tmp_path / "pictures", price_cents=700, stock=5)
        heard = EventLog(watcher)
        assert await CatalogueWatch(watcher).watch_items([item]) == [item]

        cart = await shop.add_to_cart(buyer, item, 2)
        await shop.checkout(buyer, cart.total_cents, shop.new_checkout_key())
        # Generous: the target is 200 ms; tests/integration/test_cluster_events.py
        # measures the delivery time.
        changed = await heard.wait_for(
            ItemChanged, lambda event: event.item_id == item and event.stock == 3, timeout=5.0
        )
        assert changed.price_cents == 700
    finally:
        await _close_all(sessions)


BUYERS = 8
PAGERS = 4
START_STOCK = 100_000
#: Orders acknowledged before the kill, and after the recovery before the test stops.
ORDERS_BEFORE = 16
ORDERS_AFTER = 16


class Served:
    """When each client last had a request answered, and when first after a given moment."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {}

    def mark(self, client: str) -> None:
        self.times.setdefault(client, []).append(time.monotonic())

    def first_after(self, moment: float) -> dict[str, float]:
        """Each client's first answer after ``moment`` (clients not yet answered are missing)."""
        found = {}
        for client, times in self.times.items():
            after = [t for t in times if t > moment]
            if after:
                found[client] = after[0]
        return found


async def _shop(
    buyer: Session,
    name: str,
    items: list[int],
    stop: asyncio.Event,
    acknowledged: list[tuple[Session, Order]],
    served: Served,
) -> None:
    """Add an item and check out, again and again, noting every acknowledged order."""
    rng = random.Random(name)
    while not stop.is_set():
        try:
            cart = await shop.add_to_cart(buyer, rng.choice(items), rng.randint(1, 3))
            served.mark(name)
            placed = await shop.checkout(buyer, cart.total_cents, shop.new_checkout_key())
        except (OutOfStock, Conflict):
            await shop.clear_cart(buyer)
            continue
        except BadRequest:  # a re-sent checkout whose cart its first attempt emptied
            continue
        served.mark(name)
        acknowledged.append((buyer, placed.order))


async def _page(pager: Session, name: str, stop: asyncio.Event, served: Served) -> None:
    """Page through the whole listing two items at a time, again and again."""
    while not stop.is_set():
        cursor: str | None = None
        seen: list[int] = []
        while True:
            batch = await browse(pager, limit=2, cursor=cursor)
            served.mark(name)
            seen += [card.id for card in batch.items]
            cursor = batch.cursor
            if cursor is None:
                break
        assert len(seen) == len(set(seen)), seen  # a page never repeats one across instances


async def _until(predicate: object, timeout: float) -> None:
    assert callable(predicate)
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_clients_move_to_the_other_instance_when_one_is_killed(
    cluster: Cluster, tmp_path: Path
) -> None:
    sessions: list[Session] = []
    acknowledged: list[tuple[Session, Order]] = []
    stop = asyncio.Event()
    workers: list[asyncio.Task[None]] = []
    try:
        seller = await cluster.connected()
        sessions.append(seller)
        await sign_up(seller, "seller")
        start_stock = {}
        for n in range(5):
            item = await list_item(
                seller, tmp_path / "pictures", title=f"Print {n}", stock=START_STOCK
            )
            start_stock[item] = START_STOCK
        clients = [await cluster.connected() for _ in range(BUYERS + PAGERS)]
        sessions += clients
        await asyncio.gather(*(sign_up(client, f"client{n}") for n, client in enumerate(clients)))
        names = {client: f"client{n}" for n, client in enumerate(clients)}
        spread = await asyncio.to_thread(cluster.balancer.current_sessions)
        assert min(spread.values()) >= 5, spread  # both instances serve clients

        served = Served()
        for client in clients[:BUYERS]:
            workers.append(
                asyncio.create_task(
                    _shop(client, names[client], list(start_stock), stop, acknowledged, served)
                )
            )
        for client in clients[BUYERS:]:
            workers.append(asyncio.create_task(_page(client, names[client], stop, served)))
        await _until(
            lambda: len(acknowledged) >= ORDERS_BEFORE and len(served.times) == len(clients), 60
        )

        cluster.instances[0].kill()
        killed_at = time.monotonic()
        await _until(lambda: len(served.first_after(killed_at)) == len(clients), 60)
        recovery = max(served.first_after(killed_at).values()) - killed_at
        print(f"\nevery client served again {recovery:.2f} s after the SIGKILL")
        assert recovery < RECOVERY_BOUND
        await asyncio.to_thread(cluster.balancer.wait_for_states, {"instance0": "DOWN"})

        target = len(acknowledged) + ORDERS_AFTER
        await _until(lambda: len(acknowledged) >= target, 60)
        stop.set()
        async with asyncio.timeout(30):
            await asyncio.gather(*workers)

        # Every client still holds its own login, resumed on the survivor.
        for client in clients:
            assert (await client.whoami()).username == names[client]
        spread = await asyncio.to_thread(cluster.balancer.current_sessions)
        assert spread["instance1"] == len(sessions), spread
        # Each acknowledged order exists once, exactly as acknowledged.
        for buyer, order in acknowledged:
            assert await shop.get_order(buyer, order.id) == order
        assert len({order.id for _, order in acknowledged}) == len(acknowledged)
    finally:
        stop.set()
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        await _close_all(sessions)
    await check_orders_postgres(cluster.database, start_stock, [o for _, o in acknowledged])
    # Every worker finished its last checkout: each order placed was acknowledged, once (a
    # checkout re-sent to the survivor found the order its first attempt placed).
    conn = await asyncpg.connect(cluster.database)
    try:
        assert await conn.fetchval("SELECT count(*) FROM orders") == len(acknowledged)
    finally:
        await conn.close()
