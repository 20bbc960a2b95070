"""Provides the storage benchmark of issue #14: SQLite against PostgreSQL + pgvector, side by side.

Each engine gets shops of 10,000 and 100,000 items, seeded straight through the storage layer by
:func:`tests.support.load.seed_items` (the same rows on both: SQLite with ``executemany``,
PostgreSQL with ``COPY``; 5 sellers, 90% public, two starter tags each, six shared real ~12 KB
WebP thumbnails from ``bench_catalogue``), then ``VACUUM (ANALYZE)`` on PostgreSQL, the steady
state autovacuum would otherwise reach in the middle of a measurement. SQLite is left as the
product runs it (no ``ANALYZE``: the server never runs one). The PostgreSQL databases are fresh
copies of a migrated template on the checkout's server (``tests.support.pg``), dropped
afterwards. Every server is ``PixmartServer(ServerConfig(database=...))`` without the image
model, in a process of its own (:class:`EngineServer`), with the limits of the test suite's
servers (many sign-ups and connections from one loopback address); clients talk the real
protocol over loopback TLS.

1. Listing batch latency at 10k and 100k items: a logged-in seller asks for batches of 24 cards
   with thumbnails, as the client does: the first batch (with the listing's total count) and a
   batch by keyset cursor at about item 4,800. Both engines' servers run at once and the
   requests alternate between them, so changes in the machine's load hit both alike; p50 and
   p99 of 150 requests each (after 10 untimed rounds), and the CPU time per batch of the server
   process and, for PostgreSQL, of the database backends serving it (read from ``/proc``, so
   only for a server on this machine). Target: PostgreSQL's p50 within 2x of SQLite's.
2. Checkout with 20 concurrent buyers on the 10k shops: each buyer loops "add one unit, check
   out" (``bench_checkout``'s loop) on 5 items listed through a real upload with stock to spare;
   orders per second and median checkout latency, runs alternating between the engines.
3. Similar-image top-24 at 100,000 embeddings, through the similarity index the server uses
   (``backend.vision.repositories.similarity_index``): SQLite's in-memory exact index against
   pgvector's HNSW, per query p50, and recall@24 of each against an exact numpy ranking of the
   same stored float16 rows with the same visibility (viewer: a seller, who sees the public
   items and their own). The vectors are clustered like a CNN's pooled features, not uniform
   noise (on which HNSW is atypically weak): non-negative, log-normal variations of one base
   profile per topic (400 topics, Zipf-sized), per series (5 a topic) and per picture; random
   pairs have cosine ~0.5, pictures of one series ~0.9. The 40 queries are new pictures drawn
   the same way, not rows of the index. A hit counts for recall if it is in the exact top 24
   or tied with its last within 1e-5 (rounding). Target: pgvector under 20 ms with recall@24
   >= 0.95.
4. 200 paging clients at once on the 100k shops, flat out (``bench_load``'s clients, in two
   processes of their own, each first fetching a first batch untimed): errors, batches per
   second, p50 and p99, and the server process's CPU time per batch.

Also reported: the seeding time of each 100k shop and the HNSW index build (built once after the
rows, with ``maintenance_work_mem`` raised so the graph fits in memory).

Run alone with ``.venv/bin/python -m tests.bench.run bench_storage``; ``make bench`` collects
``run()``. The machine is shared (2 cores, and the PostgreSQL server runs on it too), so
figures vary from run to run; compare the engines within one run.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import asyncpg
import numpy as np
from numpy.typing import NDArray

from backend.config import Limits, ServerConfig, SessionPolicy
from backend.server import PixmartServer
from backend.storage.database import Database
from backend.storage.engine import StorageEngine
from backend.storage.postgres import PostgresDatabase
from backend.vision.index import DEFAULT_DIM, as_unit_query
from backend.vision.repositories import similarity_index
from protocol.catalogue_client import browse
from protocol.client import Session
from tests.bench.bench_catalogue import small_webp
from tests.bench.bench_checkout import _one_run as checkout_run
from tests.bench.bench_load import Setting, _Run
from tests.bench.bench_load import _one_run as paging_run
from tests.bench.bench_load import _tokens as seller_tokens
from tests.support.catalogue import catalogue as catalogue_of
from tests.support.commerce import (
    PASSWORD,
    ServerProcess,
    list_item,
    read_listening,
    sign_up,
)
from tests.support.load import cpu_seconds, percentile, seed_items, summary
from tests.support.pg import Template, postgres_server, with_database

ROOT: Final = Path(__file__).resolve().parents[2]
#: The variable ``ServerConfig`` reads its database from (unset: SQLite in the data dir).
DATABASE_VARIABLE: Final = "PIXMART_DATABASE"
SQLITE: Final = "SQLite"
POSTGRES: Final = "PostgreSQL"
ENGINES: Final = (SQLITE, POSTGRES)

SIZES: Final = (10_000, 100_000)
#: ``bench_load``'s clients log in as ``seller0`` to ``seller4``.
SELLERS: Final = 5
BATCH: Final = 24
LISTING_SAMPLES: Final = 150
#: Untimed rounds of listing requests first: caches, prepared statements, pooled connections.
WARM_UP: Final = 10
#: Batches of 100 paged through before the keyset batch: it starts near item 4,800.
DEEP_PAGES: Final = 48
#: Untimed pause after each round of listing requests: stays under the per-connection rate limit.
LISTING_PAUSE: Final = 0.01
BUYERS: Final = 20
ORDERS_PER_BUYER: Final = 15
CHECKOUT_ITEMS: Final = 5
CHECKOUT_RUNS: Final = 3
K: Final = 24
QUERIES: Final = 40
MODEL_VERSION: Final = "bench-clustered"
PAGING: Final = Setting(200, 10)
PAGING_RUNS: Final = 2
#: Memory for the HNSW build: 100k halfvec(1280) rows need ~300 MB, over the 64 MB default.
INDEX_BUILD_MEMORY: Final = "1GB"
START_TIMEOUT: Final = 60.0

TARGET_LISTING_RATIO: Final = 2.0
TARGET_SIMILAR_MS: Final = 20.0
TARGET_RECALL: Final = 0.95
#: Score differences below this are rounding (both engines score float16 rows in float32).
SCORE_TIE: Final = 1e-5


# -- servers -------------------------------------------------------------------------------


def server_config(data_dir: Path, database: str | None) -> ServerConfig:
    """A server on a free loopback port with the test suite's limits, without the image model.

    Many clients connect and sign up from one loopback address: the per-address caps on
    connections not logged in and on sign-ups are raised, as in ``tests/conftest.py``.
    """
    return ServerConfig(
        database=database,
        data_dir=data_dir,
        port=0,
        enable_vision=False,
        limits=Limits(max_unauthenticated_per_address=1_000),
        sessions=SessionPolicy(max_accounts_per_address=10_000, max_accounts_total=10_000),
    )


@dataclass
class EngineServer(ServerProcess):
    """A :class:`ServerProcess` running :func:`server_config` on one engine's shop.

    The process is this module's ``serve`` entry point, so the limits are the test suite's; the
    database travels in the environment, never on a command line.
    """

    engine: str = SQLITE
    database: str | None = None

    async def start(self, *, port: int = 0, timeout: float = START_TIMEOUT) -> None:
        """Start the process and wait until it prints its port and fingerprint."""
        env = {key: value for key, value in os.environ.items() if key != DATABASE_VARIABLE}
        if self.database is not None:
            env[DATABASE_VARIABLE] = self.database
        with open(self.data_dir / "bench-server.log", "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", __name__, "serve", str(self.data_dir)],
                stdout=subprocess.PIPE,
                stderr=log,
                env=env,
                cwd=ROOT,
                start_new_session=True,
            )
        log_path = self.data_dir / "bench-server.log"
        self.port, self.fingerprint = await read_listening(
            self.process, timeout, f"the {self.engine} server (see {log_path})"
        )


def serve(data_dir: Path) -> None:
    """The entry point of an :class:`EngineServer` process: serve until SIGTERM."""
    config = server_config(data_dir, os.environ.get(DATABASE_VARIABLE))
    asyncio.run(PixmartServer(config).serve_forever())


@contextlib.asynccontextmanager
async def serving(shops: dict[str, Shop]) -> AsyncIterator[dict[str, EngineServer]]:
    """A running server per engine's shop, stopped when the block ends."""
    servers: dict[str, EngineServer] = {}
    try:
        for engine, shop in shops.items():
            servers[engine] = EngineServer(shop.data_dir, engine=engine, database=shop.database)
            await servers[engine].start()
        yield servers
    finally:
        for server in servers.values():
            server.stop()


@contextlib.asynccontextmanager
async def logged_in(
    servers: dict[str, EngineServer], username: str = "seller0"
) -> AsyncIterator[dict[str, Session]]:
    """A session per server, logged in as ``username``, closed when the block ends."""
    sessions: dict[str, Session] = {}
    try:
        for engine, server in servers.items():
            sessions[engine] = server.session()
            await sessions[engine].connect()
            await sessions[engine].login(username, PASSWORD)
        yield sessions
    finally:
        for session in sessions.values():
            await session.close()


async def database_cpu(url: str | None) -> dict[int, float] | None:
    """CPU seconds used so far by each PostgreSQL backend on ``url``'s database, by pid.

    ``None`` for SQLite, or when the database server runs on another machine (its pids are
    not this machine's).
    """
    if url is None or urlsplit(url).hostname not in ("127.0.0.1", "localhost", "::1"):
        return None
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    used: dict[int, float] = {}
    for row in rows:
        with contextlib.suppress(OSError):  # a backend that has just ended
            used[int(row[0])] = cpu_seconds(int(row[0]))
    return used


CpuUsed = tuple[float, dict[int, float] | None]


async def cpu_used(server: EngineServer) -> CpuUsed:
    """CPU seconds so far of ``server``'s process, and of its database's backends."""
    assert server.process is not None
    return cpu_seconds(server.process.pid), await database_cpu(server.database)


def cpu_between(before: CpuUsed, after: CpuUsed) -> tuple[float, float | None]:
    """CPU seconds the server process and the database backends used between two readings.

    Backends that started in between count from zero (connections the pool opened).
    """
    server = after[0] - before[0]
    if before[1] is None or after[1] is None:
        return server, None
    start = before[1]
    return server, sum(seconds - start.get(pid, 0.0) for pid, seconds in after[1].items())


# -- seeding -------------------------------------------------------------------------------


def clustered_unit_vectors(count: int, seed: int) -> NDArray[np.float16]:
    """``count`` unit vectors shaped like a CNN's pooled image features, as stored (float16).

    Non-negative (ReLU features averaged over the picture) and far from orthogonal: each is a
    base profile times log-normal factors of its topic (400, Zipf-sized), its series (5 per
    topic: shots of one thing) and its own. Random pairs have cosine ~0.5, one topic ~0.8, one
    series ~0.9, so near neighbours stand out as in real embeddings.
    """
    rng = np.random.default_rng(seed)
    topics, series = 400, 5
    base = rng.gamma(0.8, 1.0, DEFAULT_DIM).astype(np.float32)
    topic_factors = np.exp(0.7 * rng.standard_normal((topics, DEFAULT_DIM), dtype=np.float32))
    series_factors = np.exp(
        0.4 * rng.standard_normal((topics * series, DEFAULT_DIM), dtype=np.float32)
    )
    weights = 1 / np.arange(1, topics + 1) ** 0.8
    topic = rng.choice(topics, count, p=weights / weights.sum())
    group = topic * series + rng.integers(0, series, count)
    vectors = np.empty((count, DEFAULT_DIM), np.float16)
    for start in range(0, count, 8192):  # chunked: bounded float32 scratch
        end = min(count, start + 8192)
        own = np.exp(0.3 * rng.standard_normal((end - start, DEFAULT_DIM), dtype=np.float32))
        block = base * topic_factors[topic[start:end]] * series_factors[group[start:end]] * own
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        vectors[start:end] = block
    return vectors


@dataclass
class Shop:
    """One engine's shop of one size: where it lives and what was seeded into it."""

    engine: str
    size: int
    data_dir: Path
    database: str | None = None
    #: Seconds from the first row to a shop ready to serve; PostgreSQL's HNSW build (seconds,
    #: definition).
    seed_s: float = 0.0
    index_build_s: float = 0.0
    index_definition: str = ""
    #: Item ids in id order, their owners and visibility; the viewer of the searches.
    item_ids: NDArray[np.int64] = field(default_factory=lambda: np.empty(0, np.int64))
    owners: NDArray[np.int64] = field(default_factory=lambda: np.empty(0, np.int64))
    public: NDArray[np.bool_] = field(default_factory=lambda: np.empty(0, np.bool_))
    viewer_id: int = 0


@dataclass(frozen=True)
class Pictures:
    """The shared thumbnails and preview every seeded item shows."""

    thumbnails: list[bytes]
    preview: bytes

    @classmethod
    def make(cls) -> Pictures:
        """``bench_catalogue``'s listing pictures: six 256 px thumbnails, one small preview."""
        return cls([small_webp(seed, (256, 171)) for seed in range(6)], small_webp(99, (128, 85)))


async def seed_shop(shop: Shop, pictures: Pictures, vectors: NDArray[np.float16] | None) -> None:
    """Fill ``shop``: sellers, items (and the items' embeddings if ``vectors`` is given)."""
    server = PixmartServer(server_config(shop.data_dir, shop.database))
    with contextlib.redirect_stdout(io.StringIO()):  # the start-up banner
        await server.start()
    try:
        owners = [
            (await server.accounts.create_account(f"seller{n}", PASSWORD)).id
            for n in range(SELLERS)
        ]
        started = time.perf_counter()
        await seed_items(
            server.db,
            owners,
            shop.size,
            thumbnails=pictures.thumbnails,
            preview=pictures.preview,
            prefix="storage",
            derivatives=catalogue_of(server).derivatives,
        )
        rows = await server.db.fetchall(
            "SELECT id, owner_id, public, sha256 FROM items ORDER BY id"
        )
        shop.item_ids = np.array([row[0] for row in rows], np.int64)
        shop.owners = np.array([row[1] for row in rows], np.int64)
        shop.public = np.array([bool(row[2]) for row in rows], np.bool_)
        shop.viewer_id = owners[0]
        if vectors is not None:
            shas = [str(row[3]) for row in rows]
            shop.index_build_s, shop.index_definition = await seed_embeddings(
                server.db, shas, vectors[: len(shas)]
            )
        if isinstance(server.db, PostgresDatabase):
            await server.db.execute("VACUUM (ANALYZE)")
        shop.seed_s = time.perf_counter() - started
    finally:
        await server.stop()


async def seed_embeddings(
    db: StorageEngine, shas: Sequence[str], vectors: NDArray[np.float16]
) -> tuple[float, str]:
    """Store ``vectors[n]`` as the embedding of picture ``shas[n]``.

    PostgreSQL's HNSW index is dropped, the rows copied in, and the index built again over all
    of them at once (much faster than growing it row by row), with the same definition.

    Returns:
        The seconds the HNSW build took and its definition (``0.0, ""`` for SQLite).
    """
    if isinstance(db, Database):
        await _insert_embeddings(db, shas, vectors)
        return 0.0, ""
    return await _copy_embeddings(db, shas, vectors)


async def _insert_embeddings(
    db: Database, shas: Sequence[str], vectors: NDArray[np.float16]
) -> None:
    """SQLite: float16 little-endian blobs, ``executemany`` a chunk per transaction."""
    now = time.time()
    for start in range(0, len(shas), 10_000):  # bounded transactions
        async with db.transaction() as conn:
            await conn.executemany(
                "INSERT INTO embeddings (sha256, model_version, vector, created_at)"
                " VALUES (?, ?, ?, ?)",
                [
                    (sha, MODEL_VERSION, vectors[n].astype("<f2").tobytes(), now)
                    for n, sha in enumerate(shas[start : start + 10_000], start)
                ],
            )


async def _copy_embeddings(
    db: PostgresDatabase, shas: Sequence[str], vectors: NDArray[np.float16]
) -> tuple[float, str]:
    """PostgreSQL: ``COPY`` of binary ``halfvec`` values, then the HNSW build (timed)."""
    now = time.time()
    conn: asyncpg.Connection[Any] = await asyncpg.connect(db.url)
    try:
        await conn.set_type_codec(
            "halfvec", schema="public", encoder=_halfvec, decoder=bytes, format="binary"
        )
        definition = await conn.fetchval(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'embeddings_hnsw'"
        )
        await conn.execute("DROP INDEX embeddings_hnsw")
        await conn.copy_records_to_table(
            "embeddings",
            records=((sha, MODEL_VERSION, vectors[n], now) for n, sha in enumerate(shas)),
            columns=("sha256", "model_version", "vector", "created_at"),
        )
        await conn.execute(f"SET maintenance_work_mem = '{INDEX_BUILD_MEMORY}'")
        started = time.perf_counter()
        await conn.execute(definition)
        return time.perf_counter() - started, str(definition)
    finally:
        await conn.close()


def _halfvec(vector: NDArray[np.float16]) -> bytes:
    """pgvector's binary ``halfvec``: dimensions, a reserved zero, big-endian float16 values."""
    return struct.pack(">hh", vector.size, 0) + vector.astype(">f2").tobytes()


# -- figures -------------------------------------------------------------------------------


def _row(what: str, setting: str, median: float, unit: str, spread: str = "") -> dict[str, Any]:
    return {"what": what, "setting": setting, "median": median, "unit": unit, "spread": spread}


def _compare(row: dict[str, Any], baseline: float, target: str) -> dict[str, Any]:
    """``row`` with its ratio to SQLite's figure, and the target it is held to."""
    row["comparison"] = f"vs SQLite{f' ({target})' if target else ''}"
    row["ratio"] = row["median"] / baseline if baseline else ""
    return row


def _deciles(samples: Sequence[float]) -> str:
    ordered = sorted(samples)
    deciles = statistics.quantiles(ordered, n=10, method="inclusive")
    return f"p10 {deciles[0]:.3g} - p90 {deciles[8]:.3g}"


# -- 1. listing ----------------------------------------------------------------------------


async def measure_listing(
    size: int, servers: dict[str, EngineServer], labels: dict[str, str]
) -> list[dict[str, Any]]:
    """First batch and a keyset batch, requests alternating between the engines."""
    rows: list[dict[str, Any]] = []
    async with logged_in(servers) as sessions:
        deep, kilobytes = await _deep_cursors(sessions)
        setting = f"{size:,} items, batches of {BATCH} with thumbnails (~{kilobytes:.0f} KB)"
        kinds: tuple[tuple[str, dict[str, str | None]], ...] = (
            ("first batch + total count", dict.fromkeys(ENGINES)),
            (f"batch by keyset cursor at item ~{DEEP_PAGES * 100:,}", deep),
        )
        for kind, cursors in kinds:
            for _ in range(WARM_UP):
                await _listing_round(sessions, cursors)
            before = {engine: await cpu_used(servers[engine]) for engine in ENGINES}
            samples: dict[str, list[float]] = {engine: [] for engine in ENGINES}
            for _ in range(LISTING_SAMPLES):
                for engine, ms in (await _listing_round(sessions, cursors)).items():
                    samples[engine].append(ms)
            cpu = {
                engine: cpu_between(before[engine], await cpu_used(servers[engine]))
                for engine in ENGINES
            }
            described = f"{setting}, {kind}, {LISTING_SAMPLES} requests"
            rows += _latency_rows(described, samples, labels)
            rows += _cpu_rows(described, cpu, labels)
    return rows


async def _deep_cursors(sessions: dict[str, Session]) -> tuple[dict[str, str | None], float]:
    """Each engine's cursor ``DEEP_PAGES`` batches of 100 in, and the first batch's KB.

    Both engines must list the same items in the same order, or comparing them means nothing.
    """
    firsts = {engine: await browse(s, limit=BATCH) for engine, s in sessions.items()}
    deep: dict[str, str | None] = {}
    for engine, session in sessions.items():
        cursor = firsts[engine].cursor
        for _ in range(DEEP_PAGES):
            cursor = (await browse(session, limit=100, cursor=cursor)).cursor
            await asyncio.sleep(LISTING_PAUSE)
        deep[engine] = cursor
    for batches in (
        {engine: batch.items for engine, batch in firsts.items()},
        {e: (await browse(s, limit=BATCH, cursor=deep[e])).items for e, s in sessions.items()},
    ):
        ids = {engine: [card.id for card in cards] for engine, cards in batches.items()}
        assert ids[SQLITE] == ids[POSTGRES], "the engines list different items"
    return deep, sum(len(card.thumbnail or b"") for card in firsts[SQLITE].items) / 1024


async def _listing_round(
    sessions: dict[str, Session], cursors: dict[str, str | None]
) -> dict[str, float]:
    """One batch from each engine in turn; the milliseconds each took."""
    took: dict[str, float] = {}
    for engine in ENGINES:
        started = time.perf_counter()
        await browse(sessions[engine], limit=BATCH, cursor=cursors[engine])
        took[engine] = (time.perf_counter() - started) * 1000
    await asyncio.sleep(LISTING_PAUSE)
    return took


def _latency_rows(
    setting: str, samples: dict[str, list[float]], labels: dict[str, str]
) -> list[dict[str, Any]]:
    """p50 and p99 of each engine, PostgreSQL's compared with SQLite's."""
    rows: list[dict[str, Any]] = []
    for quantile in (50, 99):
        figures = {engine: percentile(samples[engine], quantile) for engine in ENGINES}
        for engine in ENGINES:
            row = _row(
                f"listing batch latency p{quantile}",
                f"{setting}, {labels[engine]}",
                figures[engine],
                "ms",
                _deciles(samples[engine]) if quantile == 50 else f"max {max(samples[engine]):.3g}",
            )
            if engine == POSTGRES:
                target = f"target < {TARGET_LISTING_RATIO:g}x" if quantile == 50 else ""
                _compare(row, figures[SQLITE], target)
            rows.append(row)
    return rows


def _cpu_rows(
    setting: str, cpu: dict[str, tuple[float, float | None]], labels: dict[str, str]
) -> list[dict[str, Any]]:
    """CPU milliseconds per batch: the server process, plus PostgreSQL's backends."""
    per_batch = {
        engine: (server * 1000 / LISTING_SAMPLES, (backends or 0.0) * 1000 / LISTING_SAMPLES)
        for engine, (server, backends) in cpu.items()
    }
    rows: list[dict[str, Any]] = []
    for engine in ENGINES:
        server_ms, backends_ms = per_batch[engine]
        spread = f"server process {server_ms:.2g}"
        if cpu[engine][1] is not None:
            spread += f" + database backends {backends_ms:.2g}"
        row = _row(
            "listing CPU per batch",
            f"{setting}, {labels[engine]}",
            server_ms + backends_ms,
            "ms",
            spread,
        )
        if engine == POSTGRES:
            _compare(row, sum(per_batch[SQLITE]), "")
        rows.append(row)
    return rows


# -- 2. checkout ---------------------------------------------------------------------------


async def measure_checkout(
    servers: dict[str, EngineServer], labels: dict[str, str], pictures_dir: Path
) -> list[dict[str, Any]]:
    """20 buyers' add-and-check-out loops, runs alternating between the engines."""
    buyers: dict[str, list[Session]] = {engine: [] for engine in ENGINES}
    items: dict[str, list[int]] = {}
    try:
        async with logged_in(servers) as sellers:
            for engine, seller in sellers.items():
                items[engine] = [
                    await list_item(seller, pictures_dir, price_cents=100 + n, stock=10**8)
                    for n in range(CHECKOUT_ITEMS)
                ]
        for engine, server in servers.items():
            for n in range(BUYERS):
                buyer = server.session()
                buyers[engine].append(buyer)
                await buyer.connect()
                await sign_up(buyer, f"buyer{n}")
        for engine in ENGINES:  # warm-up: connections, caches, prepared statements
            await checkout_run(buyers[engine], items[engine], 2, seed=0)
        runs: dict[str, list[tuple[float, float]]] = {engine: [] for engine in ENGINES}
        for run in range(1, CHECKOUT_RUNS + 1):
            for engine in ENGINES:
                runs[engine].append(
                    await checkout_run(buyers[engine], items[engine], ORDERS_PER_BUYER, seed=run)
                )
    finally:
        for session in (s for sessions in buyers.values() for s in sessions):
            await session.close()
    setting = (
        f"{BUYERS} buyers, add 1 unit + check out loops, {ORDERS_PER_BUYER} orders each, "
        f"{CHECKOUT_RUNS} runs, {min(SIZES):,} items"
    )
    rows: list[dict[str, Any]] = []
    for index, (what, unit) in enumerate(
        (("checkout throughput", "orders/s"), ("checkout latency p50", "ms"))
    ):
        figures = {engine: [run[index] for run in runs[engine]] for engine in ENGINES}
        medians = {engine: statistics.median(figures[engine]) for engine in ENGINES}
        for engine in ENGINES:
            row = _row(
                what,
                f"{setting}, {labels[engine]}",
                medians[engine],
                unit,
                summary(figures[engine]),
            )
            if engine == POSTGRES:
                _compare(row, medians[SQLITE], "")
            rows.append(row)
    return rows


# -- 3. similar pictures -------------------------------------------------------------------


def true_neighbours(
    stored: NDArray[np.float64], shop: Shop, query: NDArray[np.float64], k: int
) -> set[int]:
    """The items of a brute-force top ``k`` for the shop's viewer, with any tied for k-th place.

    Items within :data:`SCORE_TIE` of the k-th best score count as found: which of those an
    index returns is down to arithmetic rounding, not to the quality of its ranking.
    """
    visible = shop.public | (shop.owners == shop.viewer_id)
    scores = np.where(visible, stored @ query, -np.inf)
    kth = np.partition(scores, -k)[-k]
    return {int(item_id) for item_id in shop.item_ids[scores >= kth - SCORE_TIE]}


async def measure_similar(
    shops: dict[str, Shop],
    vectors: NDArray[np.float16],
    queries: NDArray[np.float16],
    labels: dict[str, str],
) -> list[dict[str, Any]]:
    """Top-24 latency and recall@24 of each engine's similarity index, queries alternating."""
    reference = shops[SQLITE]
    stored = vectors[: reference.size].astype(np.float64)
    truths = [true_neighbours(stored, reference, as_unit_query(q, DEFAULT_DIM), K) for q in queries]
    del stored
    databases: dict[str, StorageEngine] = {
        SQLITE: Database(server_config(reference.data_dir, None).db_path),
        POSTGRES: PostgresDatabase(str(shops[POSTGRES].database), min_size=1, max_size=2),
    }
    samples: dict[str, list[float]] = {engine: [] for engine in ENGINES}
    recalls: dict[str, list[float]] = {engine: [] for engine in ENGINES}
    load_s: dict[str, float] = {}
    try:
        indexes = {}
        for engine, db in databases.items():
            await db.open()
            indexes[engine] = similarity_index(db, MODEL_VERSION)
            started = time.perf_counter()
            assert await indexes[engine].load() == reference.size
            load_s[engine] = time.perf_counter() - started
        viewer = reference.viewer_id
        for engine in ENGINES:  # warm-up: SQLite's first search compiles its XLA pass
            await indexes[engine].search(queries[0].astype(np.float32), K, viewer_id=viewer)
        for query, truth in zip(queries, truths, strict=True):
            for engine in ENGINES:
                started = time.perf_counter()
                hits = await indexes[engine].search(query.astype(np.float32), K, viewer_id=viewer)
                samples[engine].append((time.perf_counter() - started) * 1000)
                recalls[engine].append(len({hit.item_id for hit in hits} & truth) / K)
    finally:
        for db in databases.values():
            await db.close()
    setting = (
        f"{reference.size:,} x {DEFAULT_DIM} clustered unit vectors (float16), top-{K} for a "
        f"seller, {QUERIES} new pictures, through the similarity index"
    )
    medians = {engine: statistics.median(samples[engine]) for engine in ENGINES}
    rows: list[dict[str, Any]] = []
    for engine in ENGINES:
        row = _row(
            "similar pictures top-24 latency",
            f"{setting}, {labels[engine]}",
            medians[engine],
            "ms",
            _deciles(samples[engine]),
        )
        if engine == POSTGRES:
            row["comparison"] = f"target < {TARGET_SIMILAR_MS:g} ms"
            row["ratio"] = medians[engine] / TARGET_SIMILAR_MS
        rows.append(row)
    for engine in ENGINES:
        row = _row(
            "similar pictures recall@24",
            f"{setting}, {labels[engine]}, against an exact ranking of the same rows",
            statistics.mean(recalls[engine]),
            "",
            f"min {min(recalls[engine]):.3g}",
        )
        if engine == POSTGRES:
            row["comparison"] = f"target >= {TARGET_RECALL:g}"
        rows.append(row)
    rows.append(
        _row(
            "similarity index load",
            f"{reference.size:,} embeddings, {labels[SQLITE]} "
            "(read into memory at start; PostgreSQL: nothing to load)",
            load_s[SQLITE],
            "s",
            "single run",
        )
    )
    return rows


# -- 4. many paging clients ----------------------------------------------------------------


async def measure_paging(
    size: int, servers: dict[str, EngineServer], labels: dict[str, str]
) -> list[dict[str, Any]]:
    """200 clients paging flat out, runs alternating between the engines."""
    tokens = {engine: await seller_tokens(server) for engine, server in servers.items()}
    for engine in ENGINES:  # warm-up: the servers' connections and caches
        await asyncio.to_thread(paging_run, servers[engine], tokens[engine], Setting(20, 5))
    runs: dict[str, list[_Run]] = {engine: [] for engine in ENGINES}
    for _ in range(PAGING_RUNS):
        for engine in ENGINES:
            runs[engine].append(
                await asyncio.to_thread(paging_run, servers[engine], tokens[engine], PAGING)
            )
    figures: dict[tuple[str, str], dict[str, list[float]]] = {
        ("paging batch latency p50", "ms"): {
            engine: [percentile(run.latencies_ms, 50) for run in runs[engine]] for engine in ENGINES
        },
        ("paging batch latency p99", "ms"): {
            engine: [percentile(run.latencies_ms, 99) for run in runs[engine]] for engine in ENGINES
        },
        ("paging batches served", "batches/s"): {
            engine: [run.batches_per_s for run in runs[engine]] for engine in ENGINES
        },
        # Both over about the same wall time: the server process's CPU seconds per batch.
        ("paging CPU per batch, server process", "ms"): {
            engine: [run.server_cpu / run.batches_per_s * 1000 for run in runs[engine]]
            for engine in ENGINES
        },
    }
    settings: dict[str, str] = {}
    error_rows: list[dict[str, Any]] = []
    for engine in ENGINES:
        errors = [error for run in runs[engine] for error in run.errors]
        requests = sum(run.requests for run in runs[engine])
        settings[engine] = f"{size:,} items, {PAGING.describe()}, {PAGING_RUNS} runs"
        settings[engine] += f", {labels[engine]}"
        if errors:
            settings[engine] += f"; ERRORS: {len(errors)} of {requests} requests, e.g. {errors[0]}"
        error_rows.append(
            _row("paging errors", settings[engine], len(errors), "errors", f"of {requests}")
        )
    rows: list[dict[str, Any]] = []
    for (what, unit), values in figures.items():
        medians = {engine: statistics.median(values[engine]) for engine in ENGINES}
        for engine in ENGINES:
            row = _row(what, settings[engine], medians[engine], unit, summary(values[engine]))
            if engine == POSTGRES:
                _compare(row, medians[SQLITE], "")
            rows.append(row)
    return rows + error_rows


# -- the run -------------------------------------------------------------------------------


async def engine_labels(url: str) -> dict[str, str]:
    """How the rows name the engines, PostgreSQL's and pgvector's versions included."""
    conn = await asyncpg.connect(url)
    try:
        version = await conn.fetchval("SHOW server_version")
        pgvector = await conn.fetchval(
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
        )
    finally:
        await conn.close()
    return {
        SQLITE: "SQLite (WAL) + in-memory vector index",
        POSTGRES: f"PostgreSQL {str(version).split()[0]} + pgvector {pgvector}",
    }


def _seeding_rows(shops: dict[str, Shop], labels: dict[str, str]) -> list[dict[str, Any]]:
    """How long each engine took to seed its shop, and PostgreSQL's HNSW build."""
    rows = [
        _row(
            "seeding a shop",
            f"{shop.size:,} items with thumbnails and embeddings, {labels[engine]}"
            + (", HNSW build and VACUUM (ANALYZE) included" if engine == POSTGRES else ""),
            shop.seed_s,
            "s",
            "single run",
        )
        for engine, shop in shops.items()
    ]
    postgres = shops[POSTGRES]
    index = postgres.index_definition.partition(" USING ")[2]
    rows.append(
        _row(
            "HNSW index build",
            f"{postgres.size:,} x {DEFAULT_DIM} halfvec, {index}, maintenance_work_mem "
            f"{INDEX_BUILD_MEMORY}",
            postgres.index_build_s,
            "s",
            "single run",
        )
    )
    return rows


async def _measure(root: Path, server_url: str) -> list[dict[str, Any]]:
    template = Template(server_url)
    await template.create()
    databases: list[str] = []
    rows: list[dict[str, Any]] = []
    try:
        pictures = Pictures.make()
        everything = clustered_unit_vectors(max(SIZES) + QUERIES, seed=14)
        vectors, queries = everything[: max(SIZES)], everything[max(SIZES) :]
        for size in SIZES:
            databases.append(await template.copy())
            shops = {
                SQLITE: Shop(SQLITE, size, root / f"sqlite-{size}"),
                POSTGRES: Shop(POSTGRES, size, root / f"postgres-{size}", databases[-1]),
            }
            labels = await engine_labels(databases[-1])
            for shop in shops.values():
                await seed_shop(shop, pictures, vectors if size == max(SIZES) else None)
            sqlite, postgres = shops[SQLITE], shops[POSTGRES]
            for column in ("item_ids", "owners", "public"):  # the same rows, or no comparison
                assert np.array_equal(getattr(sqlite, column), getattr(postgres, column)), column
            async with serving(shops) as servers:
                rows += await measure_listing(size, servers, labels)
                if size == min(SIZES):
                    rows += await measure_checkout(servers, labels, root / "pictures")
                else:
                    rows += await measure_paging(size, servers, labels)
            if size == max(SIZES):
                rows += await measure_similar(shops, vectors, queries, labels)
                rows += _seeding_rows(shops, labels)
    finally:
        for url in databases:
            await template.drop(url)
        await template.drop(with_database(server_url, template.name))
    return rows


def run() -> list[dict[str, Any]]:
    """Run the benchmark; one row per figure (see ``tests/bench/run.py``)."""
    with (
        tempfile.TemporaryDirectory(prefix="pixmart-bench-storage-") as tmp,
        postgres_server() as server_url,
    ):
        return asyncio.run(_measure(Path(tmp), server_url))


def main() -> None:
    """Print the figures, or (``serve DATA_DIR``) be an :class:`EngineServer` process."""
    if sys.argv[1:2] == ["serve"]:
        serve(Path(sys.argv[2]))
        return
    for row in run():
        extra = f"  [{row['comparison']}: x{row['ratio']:.2f}]" if row.get("ratio") else ""
        print(
            f"{row['what']:<34} {row['median']:>9.4g} {row['unit']:<12} ({row['spread']})"
            f"{extra}\n    {row['setting']}"
        )


if __name__ == "__main__":
    main()
