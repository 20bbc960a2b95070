"""Two real ``pixmart-server`` instances on one PostgreSQL database, behind a real haproxy.

Both instances serve the same certificate, so a client pins one fingerprint whichever instance
haproxy picks. The tests race buyers on both instances for the last units of an item; show a
watcher on one instance the stock a checkout on the other took, live; and SIGKILL one instance
while clients page, check out and upload pictures through haproxy: every client must reconnect
through haproxy to the survivor by itself, resume its login (and its upload, from the last byte
acknowledged: the instances share one object-store prefix, where partial uploads live), and lose
nothing it saw acknowledged nor have anything applied twice.

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
from protocol.catalogue_client import (
    CatalogueWatch,
    browse,
    download_original,
    sha256_of_file,
    upload_file,
)
from protocol.client import Session
from protocol.errors import BadRequest, Conflict, OutOfStock
from protocol.messages.catalogue import (
    BeginUpload,
    ChunkAck,
    ItemCreated,
    ItemMetadata,
    UploadChunk,
    UploadState,
)
from protocol.messages.commerce import Order
from protocol.messages.live import ItemChanged
from protocol.trust import TrustPolicy
from tests.support.catalogue import png, write
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
from tests.support.s3 import ObjectStore

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
async def cluster(tmp_path: Path, pg_url: str, blobs_url: str) -> AsyncIterator[Cluster]:
    """Two instances on a fresh database and object-store prefix with one certificate, behind
    haproxy on a free port."""
    await asyncio.to_thread(ensure_haproxy)  # raises with the reason: a missing tool is a failure
    cert, key = shared_certificate(tmp_path / "shared")
    instances = [
        ClusterInstance(
            tmp_path / f"instance{n}", database=pg_url, blobs=blobs_url, cert=cert, key=key
        )
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


UPLOADERS = 3
#: The side of each uploaded noise PNG: about 3.6 MB, several of the server's 1 MiB chunks.
UPLOAD_SIDE = 1100
#: Chunks each upload has acknowledged when the instance is killed.
CHUNKS_BEFORE = 1


@dataclass
class Uploader:
    """A client uploading one picture across the kill, and what it saw."""

    session: Session
    name: str
    path: Path
    #: Bytes the instance acknowledged before the kill.
    acknowledged: int = 0
    #: Where the server said the upload stands when the client came back to it.
    resumed_at: int | None = None
    created: ItemCreated | None = None

    @property
    def metadata(self) -> ItemMetadata:
        return ItemMetadata(title=f"Upload by {self.name}", price_cents=900, stock=1)


async def _upload_across(uploader: Uploader, resume: asyncio.Event) -> None:
    """Upload the first chunks by hand, wait for ``resume``, then let the client finish it."""
    session, path = uploader.session, uploader.path
    digest = await asyncio.to_thread(sha256_of_file, path)
    data = await asyncio.to_thread(path.read_bytes)
    state = await session.request(
        BeginUpload(sha256=digest, size=len(data), metadata=uploader.metadata), UploadState
    )
    assert state.offset == 0 and state.existing is None
    assert len(data) > (CHUNKS_BEFORE + 2) * state.chunk_bytes  # chunks left after the kill
    offset = 0
    for _ in range(CHUNKS_BEFORE):
        chunk = data[offset : offset + state.chunk_bytes]
        ack = await session.request(
            UploadChunk(upload_id=state.upload_id, offset=offset, data=chunk), ChunkAck
        )
        offset = ack.offset
    uploader.acknowledged = offset
    await resume.wait()

    def progress(done: int, total: int) -> None:
        if uploader.resumed_at is None:
            uploader.resumed_at = done

    # The same user and file: the server resumes the upload the killed instance had begun.
    uploader.created = await upload_file(
        session, path, uploader.metadata, sha256=digest, progress=progress
    )


async def test_clients_move_to_the_other_instance_when_one_is_killed(
    cluster: Cluster, tmp_path: Path, object_store: ObjectStore, blobs_url: str
) -> None:
    sessions: list[Session] = []
    acknowledged: list[tuple[Session, Order]] = []
    stop = asyncio.Event()
    workers: list[asyncio.Task[None]] = []
    resume = asyncio.Event()
    uploads: list[asyncio.Task[None]] = []
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

        # One by one, noting the instance haproxy gave each: one must be on the one killed.
        uploaders: list[Uploader] = []
        placed_on: list[str] = []
        for n in range(UPLOADERS):
            session = await sign_up(await cluster.connected(), f"uploader{n}")
            sessions.append(session)
            before, spread = spread, await asyncio.to_thread(cluster.balancer.current_sessions)
            placed_on += [name for name in spread if spread[name] > before.get(name, 0)]
            picture = png(seed=n, size=(UPLOAD_SIDE, UPLOAD_SIDE))
            path = await asyncio.to_thread(write, tmp_path / "uploads", f"upload{n}.png", picture)
            uploaders.append(Uploader(session, f"uploader{n}", path))
        assert "instance0" in placed_on, placed_on
        uploads = [asyncio.create_task(_upload_across(u, resume)) for u in uploaders]

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
            lambda: (
                len(acknowledged) >= ORDERS_BEFORE
                and len(served.times) == len(clients)
                and all(uploader.acknowledged for uploader in uploaders)
            ),
            60,
        )

        cluster.instances[0].kill()
        killed_at = time.monotonic()
        resume.set()  # at once: the uploaders' next requests meet the dead connections
        await _until(lambda: len(served.first_after(killed_at)) == len(clients), 60)
        recovery = max(served.first_after(killed_at).values()) - killed_at
        print(f"\nevery client served again {recovery:.2f} s after the SIGKILL")
        assert recovery < RECOVERY_BOUND
        await asyncio.to_thread(cluster.balancer.wait_for_states, {"instance0": "DOWN"})
        async with asyncio.timeout(30):
            await asyncio.gather(*uploads)

        target = len(acknowledged) + ORDERS_AFTER
        await _until(lambda: len(acknowledged) >= target, 60)
        stop.set()
        async with asyncio.timeout(30):
            await asyncio.gather(*workers)

        # Every client still holds its own login, resumed on the survivor.
        for client in clients:
            assert (await client.whoami()).username == names[client]
        for uploader in uploaders:
            assert (await uploader.session.whoami()).username == uploader.name
        spread = await asyncio.to_thread(cluster.balancer.current_sessions)
        assert spread["instance1"] == len(sessions), spread
        # Each acknowledged order exists once, exactly as acknowledged.
        for buyer, order in acknowledged:
            assert await shop.get_order(buyer, order.id) == order
        assert len({order.id for _, order in acknowledged}) == len(acknowledged)
        # Each upload resumed where the killed instance had acknowledged, and became an item
        # whose original is the very file.
        for uploader in uploaders:
            assert uploader.resumed_at == uploader.acknowledged, uploader
            assert uploader.created is not None and not uploader.created.duplicate
            original, _ = await download_original(uploader.session, uploader.created.item.id)
            assert original == await asyncio.to_thread(uploader.path.read_bytes)
    finally:
        stop.set()
        resume.set()
        for worker in [*workers, *uploads]:
            worker.cancel()
        await asyncio.gather(*workers, *uploads, return_exceptions=True)
        await _close_all(sessions)
    await check_orders_postgres(cluster.database, start_stock, [o for _, o in acknowledged])
    # Every worker finished its last checkout: each order placed was acknowledged, once (a
    # checkout re-sent to the survivor found the order its first attempt placed).
    conn = await asyncpg.connect(cluster.database)
    try:
        assert await conn.fetchval("SELECT count(*) FROM orders") == len(acknowledged)
        # One item per uploaded file, and no upload left in progress.
        for uploader in uploaders:
            title = uploader.metadata.title
            assert await conn.fetchval("SELECT count(*) FROM items WHERE title = $1", title) == 1
        assert await conn.fetchval("SELECT count(*) FROM uploads") == 0
    finally:
        await conn.close()
    keys = await asyncio.to_thread(object_store.keys, blobs_url)
    assert [key for key in keys if key.startswith("partials/")] == [], keys
