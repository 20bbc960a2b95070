"""Provides the saved-search benchmark: what matching costs an upload at 10,000 saved searches.

Two measurements, each at 10,000 saved searches of 100 users, a third of them by picture
(1,280-d examples, 80% least similarity), the rest words, tags, price ranges and stock:

* **Matching cost per new item**, in-process on a migrated shop (SQLite, then PostgreSQL): the
  whole of :meth:`backend.alerts.matching.AlertMatcher.match` for one item (read the item, one
  matrix product over the picture searches, and one transaction: the indexed statement that
  finds and records the new (search, item) pairs and the inbox notices of its alerts), median
  over many items; the same from the backlog (:meth:`AlertMatcher.match_entry`, the entry
  claimed and deleted in that transaction); and the matrix product alone.
* **Upload throughput** of a real ``pixmart-server`` process (no image model: its embedding would
  dominate and hide everything else), four sellers uploading small pictures at once, without
  saved searches and then with the 10,000 of them seeded into its database. The matching runs in
  the server's background task, off the request path, so the two should not differ.

Run alone with ``.venv/bin/python -m tests.bench.bench_alerts``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import re
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from backend.alerts.criteria import word_tokens
from backend.alerts.matching import AlertMatcher
from backend.alerts.pictures import PictureMatcher
from backend.alerts.repositories import alert_repository
from backend.alerts.rows import vector_bytes
from backend.events import EventHub
from backend.inbox.repositories import inbox_repository
from backend.inbox.service import InboxService
from backend.storage.database import Database
from backend.storage.engine import StorageEngine
from backend.storage.postgres import PostgresDatabase
from backend.vision.service import VisionService
from protocol.catalogue_client import upload_file
from protocol.client import Session
from protocol.messages.catalogue import ItemMetadata
from protocol.trust import TrustPolicy
from tests.support.commerce import ServerProcess, sign_up, write_picture
from tests.support.pg import Template, postgres_server, with_database

SEARCHES = 10_000
USERS = 100
DIMENSIONS = 1280
MODEL = "bench-model"
#: Items matched one after another; the median is taken over them.
ITEMS = 400
SELLERS = 4
UPLOADS_PER_SELLER = 15
RUNS = 3

#: A shop's vocabulary: 1,200 words, 400 tags.
_WORDS = [
    f"{a}{b}{c}"
    for a in ("sun", "sea", "red", "old", "cat", "fox", "owl", "sky", "ice", "oak")
    for b in ("set", "rise", "light", "house", "field", "stone", "wood", "glass", "line", "fall")
    for c in ("", "s", "er", "y", "ish", "ing", "ed", "en", "ly", "ful", "less", "ward")
]
_TAGS = [f"tag{n}" for n in range(400)]


def _unit(rng: np.random.Generator) -> NDArray[np.float32]:
    vector = rng.normal(size=DIMENSIONS).astype(np.float32)
    return vector / np.linalg.norm(vector)


class _Vectors:
    """Stands in for the vision service: items' embeddings, as its index would give them."""

    def __init__(self) -> None:
        self.model_version = MODEL
        self.state = "ready"
        self.index = self
        self.vectors: dict[int, NDArray[np.float32]] = {}

    async def vector_of(self, item_id: int) -> NDArray[np.float32] | None:
        return self.vectors.get(item_id)

    async def wait_ready(self) -> str:
        return "ready"


def _numbered(sql: str) -> str:
    """``sql`` with its ``?`` placeholders numbered for PostgreSQL."""
    numbers = itertools.count(1)
    return re.sub(r"\?", lambda _: f"${next(numbers)}", sql)


class _Writer:
    """The statements of one write transaction, ``?`` placeholders, on either engine."""

    def __init__(self, conn: Any, postgres: bool) -> None:
        self._conn = conn
        self._postgres = postgres

    async def value(self, sql: str, *args: Any) -> Any:
        """Run ``sql``; the first column of its first row."""
        if self._postgres:
            return await self._conn.fetchval(_numbered(sql), *args)
        cursor = await self._conn.execute(sql, args)
        row = await cursor.fetchone()
        return row[0] if row is not None else None

    async def many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """Run ``sql`` once per row."""
        if self._postgres:
            await self._conn.executemany(_numbered(sql), rows)
        else:
            await self._conn.executemany(sql, rows)


@asynccontextmanager
async def _writing(db: StorageEngine) -> AsyncIterator[_Writer]:
    async with db.transaction() as conn:
        yield _Writer(conn, isinstance(db, PostgresDatabase))


async def _seed(db: StorageEngine, rng: random.Random, nprng: np.random.Generator) -> list[int]:
    """100 users and 10,000 saved searches (a third by picture); returns the user ids."""
    async with _writing(db) as conn:
        users = []
        for n in range(USERS):
            user = await conn.value(
                "INSERT INTO users (username, username_key, password_hash, created_at,"
                " password_changed_at) VALUES (?, ?, 'x', 0, 0) RETURNING id",
                f"searcher{n}",
                f"searcher{n}",
            )
            users.append(int(user))
        for search_id in range(1, SEARCHES + 1):
            user = users[search_id % USERS]
            picture = search_id % 3 == 0
            # Searches people save are specific: two words, a word and a tag, two tags; a
            # tenth one word alone. Picture searches, a third, have no other filter.
            words_and_tags = rng.choice(((1, 0), (2, 0), (2, 0), (2, 0), (1, 1), (1, 1), (0, 2)))
            if search_id % 10 == 1:
                words_and_tags = (1, 0)
            n_words, n_tags = (0, 0) if picture else words_and_tags
            text = " ".join(rng.sample(_WORDS, n_words))
            tags = sorted(rng.sample(_TAGS, n_tags))
            high = rng.choice((None, None, 1000, 5000))
            in_stock = rng.random() < 0.2
            words = word_tokens(text)
            filters = {"text": text, "tags": tags, "max_price_cents": high, "in_stock": in_stock}
            await conn.value(
                "INSERT INTO saved_searches (id, user_id, filters, max_price_cents, in_stock,"
                " tag_count, word_count, like_label, like_vector, like_model, min_similarity,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
                search_id,
                user,
                json.dumps(filters),
                high,
                in_stock,
                len(tags),
                len(words),
                "example.jpg" if picture else None,
                vector_bytes(_unit(nprng)) if picture else None,
                MODEL if picture else None,
                80 if picture else None,
            )
            await conn.many(
                "INSERT INTO saved_search_tags (tag, search_id) VALUES (?, ?)",
                [(tag, search_id) for tag in tags],
            )
            await conn.many(
                "INSERT INTO saved_search_words (word, search_id, prefix) VALUES (?, ?, ?)",
                [(w.word, search_id, w.prefix) for w in words],
            )
    return users


async def _items(db: StorageEngine, owner: int, rng: random.Random) -> list[int]:
    """``ITEMS`` public items with words and tags from the searches' vocabulary."""
    ids = []
    async with _writing(db) as conn:
        tag_ids = {}
        for tag in _TAGS:
            tag_ids[tag] = int(
                await conn.value("INSERT INTO tags (name) VALUES (?) RETURNING id", tag)
            )
        for n in range(ITEMS):
            sha = f"{n + 1:064x}"
            await conn.value(
                "INSERT INTO pictures (sha256, format, width, height, orientation, size_bytes,"
                " clean_sha256, clean_size, created_at, thumbnail)"
                " VALUES (?, 'PNG', 8, 8, 1, 64, ?, 64, 0, ?)",
                sha,
                sha,
                b"\x00",
            )
            tags = rng.sample(_TAGS, 3)
            item = await conn.value(
                "INSERT INTO items (owner_id, title, description, price_cents, stock, public,"
                " sha256, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0, 0) RETURNING id",
                owner,
                " ".join(rng.sample(_WORDS, 3)).title(),
                " ".join(rng.sample(_WORDS, 4)),
                rng.randrange(100, 9000),
                rng.choice((0, 1, 5)),
                True,
                sha,
            )
            ids.append(int(item))
            await conn.many(
                "INSERT INTO item_tags (item_id, tag_id) VALUES (?, ?)",
                [(ids[-1], tag_ids[tag]) for tag in tags],
            )
    return ids


async def _matching_cost(db: StorageEngine, engine: str) -> list[dict[str, Any]]:
    """The matching rows of one open, migrated, empty shop."""
    rng = random.Random(20)
    nprng = np.random.default_rng(20)
    users = await _seed(db, rng, nprng)
    items = await _items(db, users[0], rng)
    # The items' own inserts queued them; the passes below match them on purpose instead.
    await db.execute("DELETE FROM alert_backlog")
    if isinstance(db, PostgresDatabase):
        # The statistics autovacuum gathers after such a fill; without them the planner
        # guesses a few rows per table.
        await db.execute("ANALYZE")
    repository = alert_repository(db)
    vectors = _Vectors()
    inbox = InboxService(inbox_repository(db), EventHub(), _secret, batch_default=24, batch_max=100)
    matcher = AlertMatcher(repository, inbox, lambda: cast(VisionService, vectors), currency="EUR")
    await matcher.start()
    while len(matcher.pictures) == 0:
        await asyncio.sleep(0.01)
    pictures = await repository.picture_searches(MODEL)
    # A tenth of the items look like one of the examples, as new matches would.
    for n, item in enumerate(items):
        vector = _unit(nprng)
        if n % 10 == 0:
            example = pictures[n % len(pictures)].vector
            vector = example + 0.3 * vector
            vector = (vector / np.linalg.norm(vector)).astype(np.float32)
        vectors.vectors[item] = vector
    timings: dict[str, list[float]] = {"deliver": [], "backlog": []}
    cpu: dict[str, list[float]] = {"deliver": [], "backlog": []}
    alerts = 0
    for item in items:
        started, used = time.perf_counter(), time.process_time()
        found = await matcher.match(item)
        timings["deliver"].append((time.perf_counter() - started) * 1000)
        cpu["deliver"].append((time.process_time() - used) * 1000)
        alerts += len(found)
    # Again from the backlog (the drain stopped, so this pass alone takes the entries): each
    # entry matched and deleted in the transaction that stores its notices.
    await matcher.backlog.stop()
    await db.execute("DELETE FROM alert_matches")
    await db.execute(
        "INSERT INTO alert_backlog (item_id, version, queued_at, not_before, attempts)"
        " SELECT id, 1, 0, 0, 0 FROM items"
    )
    while entries := await repository.due(100):
        for entry in entries:
            started, used = time.perf_counter(), time.process_time()
            assert await matcher.match_entry(entry)
            timings["backlog"].append((time.perf_counter() - started) * 1000)
            cpu["backlog"].append((time.process_time() - used) * 1000)
    product = _product_ms(matcher.pictures, list(vectors.vectors.values()))
    await matcher.stop()
    setting = f"{engine}, {SEARCHES:,} searches ({len(pictures):,} by picture), {ITEMS} items"
    return [
        {
            "what": "alerts: matching plus inbox delivery per new item",
            "setting": setting,
            "median_ms": statistics.median(timings["deliver"]),
            "spread": f"p90 {np.percentile(timings['deliver'], 90):.2f} ms; CPU median "
            f"{statistics.median(cpu['deliver']):.2f} ms; {alerts / ITEMS:.1f} alerts per item "
            "(the pairs and their notices in one transaction)",
        },
        {
            "what": "alerts: matching from the backlog per item (read, matched, settled)",
            "setting": setting,
            "median_ms": statistics.median(timings["backlog"]),
            "spread": f"p90 {np.percentile(timings['backlog'], 90):.2f} ms; CPU median "
            f"{statistics.median(cpu['backlog']):.2f} ms; the entry deleted in the same "
            "transaction",
        },
        {
            "what": "alerts: picture-search matrix product",
            "setting": f"{engine}, {len(pictures):,} x {DIMENSIONS} float32",
            "median_ms": product,
        },
    ]


async def _sqlite_matching() -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="pixmart-bench-alerts-") as tmp:
        db = Database(Path(tmp) / "shop.sqlite3")
        await db.open()
        try:
            return await _matching_cost(db, "SQLite")
        finally:
            await db.close()


async def _postgres_matching(server_url: str) -> list[dict[str, Any]]:
    """On PostgreSQL (CPU figures are this process's; the database's own CPU is apart)."""
    template = Template(server_url)
    await template.create()
    try:
        db = PostgresDatabase(with_database(server_url, template.name), min_size=1, max_size=4)
        await db.open()
        try:
            return await _matching_cost(db, "PostgreSQL")
        finally:
            await db.close()
    finally:
        await template.drop(with_database(server_url, template.name))


async def _secret() -> bytes:
    return b"\x00" * 32


def _product_ms(pictures: PictureMatcher, vectors: list[NDArray[np.float32]]) -> float:
    timings = []
    for vector in vectors:
        started = time.perf_counter()
        pictures.matching(vector)
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


async def _upload_run(sellers: list[Session], directory: Path) -> tuple[float, float]:
    """Every seller uploads its share at once; (uploads per second, median latency ms)."""
    latencies: list[float] = []

    async def uploads(seller: Session, n: int) -> None:
        for k in range(UPLOADS_PER_SELLER):
            path = write_picture(directory / f"s{n}")
            started = time.perf_counter()
            await upload_file(seller, path, ItemMetadata(title=f"{rng_word(k)} print {n}"))
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(uploads(seller, n) for n, seller in enumerate(sellers)))
    elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, statistics.median(latencies)


def rng_word(k: int) -> str:
    """A word of the searches' vocabulary, so uploads match some of them."""
    return _WORDS[(k * 7) % len(_WORDS)].title()


async def _throughput() -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="pixmart-bench-alerts-") as tmp:
        server = ServerProcess(Path(tmp) / "data")
        await server.start()
        results: dict[str, tuple[list[float], list[float]]] = {}
        try:
            for phase in ("without", "with"):
                if phase == "with":
                    server.stop()
                    db = Database(server.db_path)
                    await db.open()
                    try:
                        await _seed(db, random.Random(21), np.random.default_rng(21))
                    finally:
                        await db.close()
                    await server.start(port=server.port)
                sellers = []
                for n in range(SELLERS):
                    session = Session(server.url, TrustPolicy(fingerprint=server.fingerprint))
                    await session.connect()
                    sellers.append(await sign_up(session, f"{phase}seller{n}"))
                rates, latencies = [], []
                for run in range(RUNS):
                    rate, latency = await _upload_run(sellers, Path(tmp) / f"{phase}{run}")
                    rates.append(rate)
                    latencies.append(latency)
                results[phase] = (rates, latencies)
                for seller in sellers:
                    await seller.close()
        finally:
            server.stop()
    base = statistics.median(results["without"][0])
    for phase, (rates, latencies) in results.items():
        setting = f"{SELLERS} sellers, small PNGs, no image model, {phase} {SEARCHES:,} searches"
        rows.append(
            {
                "what": "alerts: upload throughput",
                "setting": setting,
                "median": statistics.median(rates),
                "unit": "uploads/s",
                "spread": f"{min(rates):.1f}-{max(rates):.1f}; median latency "
                f"{statistics.median(latencies):.1f} ms",
                "comparison": "vs without" if phase == "with" else "",
                "ratio": statistics.median(rates) / base if phase == "with" else "",
            }
        )
    return rows


def run() -> list[dict[str, Any]]:
    """Both measurements, as rows for ``make bench``."""

    rows = asyncio.run(_sqlite_matching())
    with postgres_server() as server_url:
        rows += asyncio.run(_postgres_matching(server_url))
    return rows + asyncio.run(_throughput())


if __name__ == "__main__":
    for row in run():
        print(row)
