"""A real ``pixmart-server`` SIGKILLed while sellers upload and edit and buyers check out.

Sellers upload small generated JPEGs one after another and edit one of their items after each
upload; buyers add to their carts and check out. The server is killed (SIGKILL: no shutdown, no
checkpoint) while all of them are busy, and restarted on the same port and data dir: twice in
``make test`` (small pictures), five times in the slow variant (two-chunk pictures). The same
client sessions ride over every restart by themselves and finish their work. Before each
restart the test also leaves the debris a worse-timed kill would leave (an unowned blob, a
``.tmp-`` file, a partial upload without its row) and checks the start-up sweep removed it.

After each kill, on the dead server's files, the test proves: the database file is intact;
every picture row has both its files; every upload, edit and order the clients saw acknowledged
is stored; then, after the restart, that every session reconnects by itself. At the end, after a
graceful stop, it proves: every planned upload is listed exactly once (and the client's item ids
name them); every item shows its last edit; no file in the blob store lacks a row (crash debris
was swept at start-up); no partial upload lacks its ``uploads`` row or the other way round; no
temporary file is left.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import pytest

from backend.atrest.keyring import KEYRING
from backend.config import default_master_key_file
from protocol import commerce_client as shop
from protocol.catalogue_client import edit_item, iter_items, upload_file
from protocol.client import ConnectionState, Session
from protocol.errors import BadRequest, Conflict, OutOfStock, RateLimited
from protocol.messages.catalogue import ItemMetadata, ListingFilters
from protocol.messages.commerce import Order
from tests.support import StatusRecorder
from tests.support.catalogue import jpeg, sealed_store_keys
from tests.support.commerce import ServerProcess, check_orders_database, list_item, sign_up

SELLERS: Final = 3
BUYERS: Final = 3
SHOP_ITEMS: Final = 3
START_STOCK: Final = 100_000
#: Seconds a buyer pauses after an order: keeps each connection under the server's request rate
#: limit (100/s) however long the run lasts.
BUYER_PAUSE: Final = 0.03
#: Acknowledged since the last (re)start before the next kill: the kill lands mid-stream.
UPLOADS_BEFORE_KILL: Final = 4
ORDERS_BEFORE_KILL: Final = 2
BASE_PRICE: Final = 100
_VERSION: Final = re.compile(r" v(\d+)$")
_SHA256: Final = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Plan:
    """How much work, how many kills, and how big the pictures are."""

    uploads_per_seller: int
    kills: int
    #: Width and height of the first picture (each next one is a pixel wider, so all differ).
    picture: tuple[int, int]


#: ``make test``: small one-chunk pictures, two kills, a few seconds.
QUICK: Final = Plan(uploads_per_seller=10, kills=2, picture=(96, 72))
#: ``-m slow``: 1-2 MB pictures (two 1 MiB chunks, so kills land between chunks too), five kills.
HEAVY: Final = Plan(uploads_per_seller=12, kills=5, picture=(1400, 1000))


@dataclass
class Seller:
    """One seller's plan and what the server acknowledged to it."""

    session: Session
    user_id: int
    files: list[tuple[Path, str]]
    #: sha256 -> item id, for every upload acknowledged.
    items: dict[str, int] = field(default_factory=dict)
    #: item id -> last acknowledged edit version (titles end in `` v<version>``).
    edits: dict[int, int] = field(default_factory=dict)
    versions: int = 0
    busy: bool = False


def _write_files(directory: Path, seller: int, plan: Plan) -> list[tuple[Path, str]]:
    """The seller's planned uploads: distinct JPEGs of noise, with their SHA-256."""
    directory.mkdir(parents=True, exist_ok=True)
    planned = []
    width, height = plan.picture
    for n in range(plan.uploads_per_seller):
        data = jpeg(seed=1000 * seller + n, size=(width + n, height))
        path = directory / f"seller{seller}-{n}.jpg"
        path.write_bytes(data)
        planned.append((path, hashlib.sha256(data).hexdigest()))
    return planned


async def _sell(seller: Seller, seed: int) -> None:
    """Upload every planned file; after each, edit one of the seller's items (a random one)."""
    rng = random.Random(seed)
    for path, sha256 in seller.files:
        seller.busy = True
        try:
            created = await upload_file(
                seller.session,
                path,
                ItemMetadata(title=path.stem, price_cents=BASE_PRICE, stock=3),
                sha256=sha256,
            )
            assert seller.items.setdefault(sha256, created.item.id) == created.item.id
            item_id = rng.choice(sorted(seller.items.values()))
            seller.versions += 1
            version = seller.versions
            card = await edit_item(
                seller.session,
                item_id,
                title=f"{path.stem} edit v{version}",
                price_cents=BASE_PRICE + version,
            )
            assert card.price_cents == BASE_PRICE + version
            seller.edits[item_id] = version
        finally:
            seller.busy = False


async def _buy(
    buyer: Session,
    items: list[int],
    seed: int,
    acknowledged: list[tuple[Session, Order]],
    stop: asyncio.Event,
) -> None:
    """Add to the cart and check out until ``stop``; record every order acknowledged.

    Like ``test_checkout_crash``'s shopper, but paced, so a long run stays under the rate limit.
    """
    rng = random.Random(seed)
    while not stop.is_set():
        try:
            cart = await shop.add_to_cart(buyer, rng.choice(items), rng.randint(1, 3))
            placed = await shop.checkout(buyer, cart.total_cents, shop.new_checkout_key())
        except RateLimited as exc:  # the server says when: wait that long, then go on
            await asyncio.sleep(exc.retry_after or BUYER_PAUSE)
            continue
        except (OutOfStock, Conflict):
            # A re-sent add after a kill may have doubled a line: start a new cart.
            await shop.clear_cart(buyer)
            continue
        except BadRequest:
            continue  # a re-sent checkout found its cart emptied by the first attempt
        acknowledged.append((buyer, placed.order))
        await asyncio.sleep(BUYER_PAUSE)


# -- what is on disk -------------------------------------------------------------------------


@dataclass(frozen=True)
class Disk:
    """The data dir's files next to the rows that should own them."""

    blob_files: set[str]
    temp_files: list[Path]
    #: The stored names (keyed hashes) of the files the picture rows name by SHA-256.
    referenced_blobs: set[str]
    partial_files: set[str]
    upload_rows: set[str]

    @property
    def rows_without_files(self) -> set[str]:
        """Blobs a picture row names that are not in the store."""
        return self.referenced_blobs - self.blob_files

    @property
    def files_without_rows(self) -> set[str]:
        """Blobs in the store no picture row names."""
        return self.blob_files - self.referenced_blobs


def _disk(data_dir: Path, conn: sqlite3.Connection) -> Disk:
    """Look at the blob store (``blobs/ab/cd/<keyed name>``, sealed under the key the server made
    in the test's config dir, and its keyring) and the upload area (``uploads/``)."""
    blobs = data_dir / "blobs"
    blob_files: set[str] = set()
    temp_files: list[Path] = []
    for path in blobs.rglob("*"):
        if not path.is_file() or path == blobs / KEYRING:
            continue
        name = path.name
        if _SHA256.fullmatch(name) and path.parent.parent.parent == blobs:
            assert path.parent.name == name[2:4] and path.parent.parent.name == name[0:2], path
            blob_files.add(name)
        else:
            temp_files.append(path)  # a write that never finished (.tmp-*) or a stray file
    names = sealed_store_keys(blobs, default_master_key_file())
    referenced = {
        names.storage_name(str(name))
        for row in conn.execute("SELECT sha256, clean_sha256 FROM pictures")
        for name in row
    }
    partials = {entry.name.split(".")[0] for entry in (data_dir / "uploads").iterdir()}
    rows = {str(row[0]) for row in conn.execute("SELECT id FROM uploads")}
    return Disk(blob_files, temp_files, referenced, partials, rows)


def _check_after_kill(
    server: ServerProcess,
    sellers: list[Seller],
    start_stock: dict[int, int],
    orders: list[Order],
) -> Disk:
    """On the dead server's files: intact, no row without its file, every ack stored."""
    check_orders_database(server.db_path, start_stock, orders)  # integrity_check, orders, stock
    with sqlite3.connect(server.db_path) as conn:
        disk = _disk(server.data_dir, conn)
        assert disk.rows_without_files == set()
        for seller in sellers:
            for sha256, item_id in dict(seller.items).items():
                row = conn.execute(
                    "SELECT owner_id, sha256 FROM items WHERE id = ?", (item_id,)
                ).fetchone()
                assert row == (seller.user_id, sha256), (item_id, row)
            for item_id, version in dict(seller.edits).items():
                title, price = conn.execute(
                    "SELECT title, price_cents FROM items WHERE id = ?", (item_id,)
                ).fetchone()
                # The acknowledged edit, or the seller's next one if it was in flight.
                stored = _version(title)
                assert stored >= version and price == BASE_PRICE + stored, (item_id, title, price)
    return disk


def _plant_debris(data_dir: Path, kill: int) -> list[Path]:
    """Leave what a kill at the worst moment leaves; the start-up sweep must remove all of it.

    An original moved into the blob store whose row never committed, a blob write cut short
    (``.tmp-*``), and a partial upload whose ``uploads`` row never committed.
    """
    sha256 = hashlib.sha256(f"planted by kill {kill}".encode()).hexdigest()
    name = sealed_store_keys(data_dir / "blobs", default_master_key_file()).storage_name(sha256)
    blob = data_dir / "blobs" / name[0:2] / name[2:4] / name
    blob.parent.mkdir(parents=True, exist_ok=True)
    temp = blob.parent / f".tmp-planted{kill}"
    partial = data_dir / "uploads" / f"{'P' * 31}{kill}.part"
    for path in (blob, temp, partial):
        path.write_bytes(b"debris")
    return [blob, temp, partial]


def _version(title: str) -> int:
    match = _VERSION.search(title)
    assert match is not None, title
    return int(match.group(1))


async def _until(
    predicate: Callable[[], bool], workers: list[asyncio.Task[None]], timeout: float
) -> None:
    """Wait until ``predicate()`` holds, polling the clients' progress.

    Raises:
        Exception: what a worker failed with, at once (rather than a timeout later).
    """
    async with asyncio.timeout(timeout):
        while not predicate():
            for task in workers:
                if task.done() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            await asyncio.sleep(0.01)


# -- the test --------------------------------------------------------------------------------


async def test_acknowledged_work_survives_sigkills_and_clients_finish(tmp_path: Path) -> None:
    """Two kills among small uploads, edits and checkouts (see the module docstring)."""
    await _run(tmp_path, QUICK)


@pytest.mark.slow
async def test_multi_chunk_uploads_survive_five_sigkills(tmp_path: Path) -> None:
    """Five kills among multi-chunk uploads, edits and checkouts."""
    await _run(tmp_path, HEAVY)


async def _run(tmp_path: Path, plan: Plan) -> None:
    """Run the stream, kill the server ``plan.kills`` times, check everything at every step."""
    server = ServerProcess(tmp_path / "server-data")
    await server.start()
    sessions: list[Session] = []
    recorders: list[StatusRecorder] = []
    workers: list[asyncio.Task[None]] = []
    stop_shopping = asyncio.Event()
    try:
        shop_owner = server.session()
        await shop_owner.connect()
        sessions.append(shop_owner)
        await sign_up(shop_owner, "shop")
        start_stock: dict[int, int] = {}
        for n in range(SHOP_ITEMS):
            item = await list_item(
                shop_owner,
                tmp_path / "shop",
                title=f"Print {n}",
                price_cents=150 * (n + 1),
                stock=START_STOCK,
            )
            start_stock[item] = START_STOCK

        sellers: list[Seller] = []
        for n in range(SELLERS):
            session = server.session()
            await session.connect()
            await sign_up(session, f"seller{n}")
            assert session.user is not None
            files = await asyncio.to_thread(_write_files, tmp_path / "files", n, plan)
            sellers.append(Seller(session, session.user.id, files))
        buyers = [server.session() for _ in range(BUYERS)]
        for n, buyer in enumerate(buyers):
            await buyer.connect()
            await sign_up(buyer, f"buyer{n}")
        clients = [seller.session for seller in sellers] + buyers
        sessions += clients
        recorders = [StatusRecorder(session) for session in clients]

        acknowledged: list[tuple[Session, Order]] = []
        workers = [asyncio.create_task(_sell(seller, n)) for n, seller in enumerate(sellers)]
        workers += [
            asyncio.create_task(_buy(buyer, list(start_stock), n, acknowledged, stop_shopping))
            for n, buyer in enumerate(buyers)
        ]

        def uploads() -> int:
            return sum(len(seller.items) for seller in sellers)

        debris: list[Disk] = []
        for kill in range(plan.kills):
            upload_target = uploads() + UPLOADS_BEFORE_KILL
            order_target = len(acknowledged) + ORDERS_BEFORE_KILL

            def mid_stream(
                uploads_wanted: int = upload_target, orders_wanted: int = order_target
            ) -> bool:
                return uploads() >= uploads_wanted and len(acknowledged) >= orders_wanted

            await _until(mid_stream, workers, timeout=30)
            busy = sum(seller.busy for seller in sellers)
            marks = [recorder.mark() for recorder in recorders]
            server.kill()
            assert busy > 0, "the kill must land while uploads or edits are running"
            assert uploads() < SELLERS * plan.uploads_per_seller
            orders = [order for _, order in acknowledged]
            debris.append(_check_after_kill(server, sellers, start_stock, orders))
            planted = _plant_debris(server.data_dir, kill)
            await server.start(port=server.port)
            # The sweep runs before the server listens; no client could have made these names.
            assert [path for path in planted if path.exists()] == []
            # Every session finds the server again by itself, busy or idle.
            async with asyncio.timeout(15):
                await asyncio.gather(
                    *(
                        recorder.wait_for(ConnectionState.CONNECTED, since=mark, timeout=15)
                        for recorder, mark in zip(recorders, marks, strict=True)
                    )
                )

        async with asyncio.timeout(60):
            await asyncio.gather(*workers[:SELLERS])
        await _until(
            lambda: len(acknowledged) >= (plan.kills + 1) * ORDERS_BEFORE_KILL, workers, timeout=30
        )
        stop_shopping.set()
        async with asyncio.timeout(30):
            await asyncio.gather(*workers[SELLERS:])

        # The same sessions lost their link at every kill and are connected now.
        for recorder in recorders:
            states = recorder.states()
            assert states.count(ConnectionState.RECONNECTING) >= plan.kills, states
            assert states[-1] is ConnectionState.CONNECTED
        # Every planned upload is listed exactly once, under the id its client was given.
        for seller in sellers:
            assert set(seller.items) == {sha for _, sha in seller.files}
            listed = [
                card
                async for card in iter_items(seller.session, ListingFilters(mine=True), batch=7)
            ]
            assert sorted(card.id for card in listed) == sorted(seller.items.values())
            for card in listed:
                if card.id in seller.edits:
                    assert _version(card.title) == seller.edits[card.id]
                    assert card.price_cents == BASE_PRICE + seller.edits[card.id]
        for buyer, order in acknowledged:
            assert await shop.get_order(buyer, order.id) == order
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        for session in sessions:
            await session.close()
        server.stop()

    orders = [order for _, order in acknowledged]
    final = _check_after_kill(server, sellers, start_stock, orders)
    seller_ids = [seller.user_id for seller in sellers]
    with sqlite3.connect(server.db_path) as conn:
        pairs = conn.execute(
            f"SELECT owner_id, sha256 FROM items WHERE owner_id IN ({','.join('?' * SELLERS)})",
            seller_ids,
        ).fetchall()
    planned = [(seller.user_id, sha) for seller in sellers for _, sha in seller.files]
    assert sorted(pairs) == sorted(planned)  # each exactly once, nothing else
    assert final.files_without_rows == set(), "crash debris survived the start-up sweep"
    assert final.temp_files == []
    assert final.partial_files == final.upload_rows == set()
    for n, disk in enumerate(debris, start=1):  # shown with -s or on failure: what kills left
        print(
            f"kill {n} left {len(disk.files_without_rows)} unowned blobs, "
            f"{len(disk.temp_files)} temp files, {len(disk.partial_files)} partial uploads "
            f"({len(disk.partial_files - disk.upload_rows)} without a row)"
        )
