"""Provides helpers shared by the commerce tests, the checkout fault test and its benchmark.

Items are listed through the catalogue's own client (a real upload of a tiny picture), so the
commerce tests exercise the same path a seller's client takes.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from PIL import Image

from protocol.catalogue_client import upload_file
from protocol.client import Backoff, Session
from protocol.messages.base import Event
from protocol.messages.catalogue import ItemMetadata
from protocol.messages.commerce import Order
from protocol.trust import TrustPolicy

E = TypeVar("E", bound=Event)
T = TypeVar("T")

_pictures = itertools.count(1)
PASSWORD = "password123"


def write_picture(directory: Path) -> Path:
    """Write a small PNG unlike every other one written by this process."""
    n = next(_pictures)
    path = directory / f"picture-{os.getpid()}-{n}.png"
    directory.mkdir(parents=True, exist_ok=True)
    # Distinct pixels give distinct hashes: one seller never lists the same picture twice.
    Image.new("RGB", (48, 48), (n % 251, (n // 251) % 251, (os.getpid() + n) % 251)).save(path)
    return path


async def list_item(
    session: Session,
    directory: Path,
    *,
    title: str = "Sunset",
    price_cents: int = 1250,
    stock: int = 5,
    public: bool = True,
) -> int:
    """List an item as ``session``'s user through the catalogue's upload; return its id."""
    path = write_picture(directory)
    metadata = ItemMetadata(title=title, price_cents=price_cents, stock=stock, public=public)
    created = await upload_file(session, path, metadata)
    return created.item.id


async def sign_up(session: Session, username: str) -> Session:
    """Create ``username`` and log ``session`` in as it."""
    await session.create_account(username, PASSWORD)
    await session.login(username, PASSWORD)
    return session


async def many_logged_in(
    make_session: Callable[..., Awaitable[Session]], prefix: str, count: int
) -> list[Session]:
    """``count`` sessions, each logged in as a fresh user ``<prefix><n>`` (made concurrently)."""

    async def one(n: int) -> Session:
        return await sign_up(await make_session(), f"{prefix}{n}")

    return list(await asyncio.gather(*(one(n) for n in range(count))))


class EventLog:
    """Records the events a session receives, and waits for one that matches."""

    def __init__(self, session: Session) -> None:
        self.events: list[Event] = []
        session.on_event(self.events.append)

    def of(self, kind: type[E]) -> list[E]:
        """The events of one type received so far."""
        return [event for event in self.events if isinstance(event, kind)]

    async def wait_for(
        self, kind: type[E], predicate: Callable[[E], bool] = lambda _: True, timeout: float = 5.0
    ) -> E:
        """The first event of ``kind`` that matches ``predicate``, waiting up to ``timeout``."""
        async with asyncio.timeout(timeout):
            while True:
                for event in self.of(kind):
                    if predicate(event):
                        return event
                await asyncio.sleep(0.005)


def units_sold(db_path: Path, item_id: int) -> int:
    """Units of an item in committed orders, read straight from the database file."""
    import sqlite3

    with sqlite3.connect(db_path) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(quantity), 0) FROM order_lines WHERE item_id = ?", (item_id,)
        ).fetchone()
    return int(row[0])


# -- a real server process -------------------------------------------------------------------

_LISTENING = re.compile(r"listening on wss://127\.0\.0\.1:(\d+)")
_FINGERPRINT = re.compile(r"fingerprint: ([0-9A-F:]+)")


async def read_listening(
    process: subprocess.Popen[bytes], timeout: float, what: str
) -> tuple[int, str]:
    """The port and certificate fingerprint a starting ``pixmart-server`` prints on stdout.

    Raises:
        RuntimeError: the process exited first (``what`` names it in the message).
        TimeoutError: it printed neither within ``timeout`` seconds.
    """
    stdout = process.stdout
    assert stdout is not None
    listening: int | None = None
    fingerprint: str | None = None
    async with asyncio.timeout(timeout):
        while listening is None or fingerprint is None:
            line = (await asyncio.to_thread(stdout.readline)).decode()
            if not line:
                raise RuntimeError(f"{what} exited with {process.wait()}")
            if match := _LISTENING.search(line):
                listening = int(match.group(1))
            if match := _FINGERPRINT.search(line):
                fingerprint = match.group(1)
    return listening, fingerprint
FAST_BACKOFF = Backoff(initial=0.05, factor=2.0, maximum=0.5)


def _server_command() -> str:
    """The ``pixmart-server`` script installed next to this Python."""
    script = Path(sys.executable).parent / "pixmart-server"
    if not script.exists():
        raise RuntimeError(f"{script} is missing: install the project (make test does)")
    return str(script)


@dataclass
class ServerProcess:
    """A ``pixmart-server`` subprocess on a free loopback port, without the image model."""

    data_dir: Path
    port: int = 0
    fingerprint: str = ""
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    #: Tests and benches sign many people up from 127.0.0.1, past the production limit of a
    #: few accounts per address and hour; ``None`` keeps the production limit.
    accounts_per_address: int | None = 100_000
    #: The PostgreSQL URL the shop is kept in; ``None`` for the SQLite file in the data dir.
    database: str | None = None
    #: The ``s3://`` URL of the object store the pictures are kept in; ``None`` for the data
    #: dir. Given through ``PIXMART_BLOBS`` in the environment (with the ``AWS_*`` credentials
    #: this process has), never on the command line, where ``ps`` would show it.
    blobs: str | None = None
    #: What runs instead of ``pixmart-server`` with the same arguments (e.g. the upload
    #: benchmark's server with the old picture pipeline); ``None`` for ``pixmart-server``.
    program: list[str] | None = None

    @property
    def url(self) -> str:
        """The server's ``wss://`` address."""
        return f"wss://127.0.0.1:{self.port}"

    @property
    def db_path(self) -> Path:
        """The server's database file."""
        return self.data_dir / "pixmart.sqlite3"

    async def start(self, *, port: int = 0, timeout: float = 30.0) -> None:
        """Start the process and wait until it prints its port and fingerprint.

        Args:
            port: 0 for a free port; a restart passes the old one so clients find it again.
        """
        command = [*(self.program or [_server_command()]), "--data-dir", str(self.data_dir)]
        if self.database is not None:
            command += ["--database", self.database]
        command += ["serve", *self.serve_options(port)]
        env = None if self.blobs is None else {**os.environ, "PIXMART_BLOBS": self.blobs}
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
        self.port, self.fingerprint = await read_listening(self.process, timeout, "the server")

    def serve_options(self, port: int) -> list[str]:
        """The options of ``pixmart-server serve``: the port, no image model, the sign-up limit."""
        options = ["--port", str(port), "--no-vision"]
        if self.accounts_per_address is not None:
            options += ["--accounts-per-address", str(self.accounts_per_address)]
        return options

    def kill(self) -> None:
        """SIGKILL the process: no shutdown, no checkpoint, as a power cut would."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._close_pipe()

    def stop(self) -> None:
        """SIGTERM the process (graceful shutdown) and wait for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_pipe()

    def _close_pipe(self) -> None:
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()

    def session(self, **kwargs: object) -> Session:
        """A session to this server that pins its fingerprint (not yet connected)."""
        kwargs.setdefault("backoff", FAST_BACKOFF)
        trust = TrustPolicy(fingerprint=self.fingerprint)
        return Session(self.url, trust, **kwargs)  # type: ignore[arg-type]


#: What :func:`_check_orders` reads; plain SQL both engines run alike.
_ORDERS_WITHOUT_LINES = (
    "SELECT count(*) FROM orders AS o"
    " WHERE NOT EXISTS (SELECT 1 FROM order_lines AS l WHERE l.order_id = o.id)"
)
_LINES_WITHOUT_ORDER = (
    "SELECT count(*) FROM order_lines AS l LEFT JOIN orders AS o ON o.id = l.order_id"
    " WHERE o.id IS NULL"
)
_WRONG_TOTALS = (
    "SELECT o.id FROM orders AS o JOIN order_lines AS l ON l.order_id = o.id"
    " GROUP BY o.id HAVING o.total_cents != sum(l.quantity * l.unit_price_cents)"
)
_STOCK = "SELECT id, stock FROM items"
_SOLD = "SELECT item_id, sum(quantity) FROM order_lines GROUP BY item_id"
_TOTALS = "SELECT id, total_cents FROM orders"
_ORDER_LINES = "SELECT order_id, item_id, quantity, unit_price_cents FROM order_lines ORDER BY id"
_CHECKS = (
    _ORDERS_WITHOUT_LINES,
    _LINES_WITHOUT_ORDER,
    _WRONG_TOTALS,
    _STOCK,
    _SOLD,
    _TOTALS,
    _ORDER_LINES,
)

Rows = list[tuple[Any, ...]]


def check_orders_database(
    db_path: Path, start_stock: dict[int, int], acknowledged: list[Order]
) -> None:
    """Assert that the database file is consistent and holds every acknowledged order."""
    # A fresh connection after the kill runs SQLite's WAL recovery, as a restarted server would.
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        _check_orders(
            {sql: conn.execute(sql).fetchall() for sql in _CHECKS}, start_stock, acknowledged
        )


async def check_orders_postgres(
    url: str, start_stock: dict[int, int], acknowledged: list[Order]
) -> None:
    """Assert that the PostgreSQL database is consistent and holds every acknowledged order."""
    conn = await asyncpg.connect(url)
    try:
        # One snapshot for all the reads, as the SQLite check has after the kill.
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            results = {sql: [tuple(row) for row in await conn.fetch(sql)] for sql in _CHECKS}
    finally:
        await conn.close()
    _check_orders(results, start_stock, acknowledged)


def _check_orders(
    results: dict[str, Rows], start_stock: dict[int, int], acknowledged: list[Order]
) -> None:
    """Assert on the rows of every :data:`_CHECKS` query: orders whole, stock accounted for."""
    assert (
        results[_ORDERS_WITHOUT_LINES][0][0],
        results[_LINES_WITHOUT_ORDER][0][0],
        results[_WRONG_TOTALS],
    ) == (0, 0, [])
    stock = {int(item_id): int(left) for item_id, left in results[_STOCK]}
    sold = {item_id: int(units) for item_id, units in results[_SOLD]}
    for item_id, start in start_stock.items():
        left = stock[item_id]
        assert left >= 0 and left + sold.get(item_id, 0) == start, (item_id, left, sold)
    totals = {int(order_id): int(total) for order_id, total in results[_TOTALS]}
    lines: dict[int, list[tuple[int, int, int]]] = {}
    for order_id, item_id, quantity, unit_price in results[_ORDER_LINES]:
        lines.setdefault(order_id, []).append((item_id, quantity, unit_price))
    for order in acknowledged:
        assert totals.get(order.id) == order.total_cents, order.id
        assert lines.get(order.id) == [
            (line.item_id, line.quantity, line.unit_price_cents) for line in order.lines
        ]


async def keep_shopping(
    buyer: Session,
    items: list[int],
    stop: asyncio.Event,
    acknowledged: list[tuple[T, Order]],
    tag: T,
) -> None:
    """Add a random item to the cart and check out, again and again until ``stop``.

    Every order the server acknowledges is appended to ``acknowledged`` as ``(tag, order)``;
    ``tag`` also seeds the choices. Out of stock (or a re-sent add that doubled a line past the
    stock) starts a new cart; a re-sent checkout that found its cart emptied by its first
    attempt is simply tried again.
    """
    from protocol import commerce_client as shop
    from protocol.errors import BadRequest, Conflict, OutOfStock

    rng = random.Random(str(tag))
    while not stop.is_set():
        try:
            cart = await shop.add_to_cart(buyer, rng.choice(items), rng.randint(1, 3))
            placed = await shop.checkout(buyer, cart.total_cents, shop.new_checkout_key())
        except (OutOfStock, Conflict):
            await shop.clear_cart(buyer)
            continue
        except BadRequest:
            continue
        acknowledged.append((tag, placed.order))
