"""Provides the sales summary benchmark: one seller's dashboard summed by each engine.

A seller with 200 items has ``LINES`` order lines spread over the past year (one line per
order), beside another seller with as many; the dashboard asks for 30 days, 12 weeks, the top 5
and stock at 3 or fewer. The rows are the median time of :meth:`SalesReport.summary` (four
aggregate queries) over several runs, on SQLite and on PostgreSQL.

Run alone with ``.venv/bin/python -m tests.bench.bench_sales_summary``.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from backend.commerce.repositories import commerce_repository
from backend.commerce.sales_report import SalesReport
from backend.storage.database import Database
from backend.storage.engine import StorageEngine
from backend.storage.postgres import PostgresDatabase
from protocol.messages.sales import GetSalesSummary
from tests.support.pg import Template, postgres_server, run_sync, with_database

LINES = 100_000
ITEMS = 200
RUNS = 7
NOW = 1_796_000_000.0  # late 2026
YEAR = 365 * 86_400


def _rows(seed: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Orders and order lines: ``LINES`` for seller 1 and as many for seller 2 (buyer 3)."""
    rng = random.Random(seed)
    orders, lines = [], []
    for n in range(1, 2 * LINES + 1):
        seller = 1 + n % 2
        item = (seller - 1) * ITEMS + 1 + rng.randrange(ITEMS)
        quantity, price = 1 + rng.randrange(3), 100 + rng.randrange(5000)
        when = NOW - rng.random() * YEAR
        orders.append((n, 3, f"k{n}", quantity * price, "EUR", when))
        lines.append((n, n, item, seller, f"Item {item}", quantity, price, when))
    return orders, lines


async def _seed(db: StorageEngine) -> None:
    orders, lines = _rows(7)
    users = [(n, f"user{n}", f"user{n}", "hash", NOW, NOW) for n in (1, 2, 3)]
    pictures = [
        (f"{n:064x}", "PNG", 8, 8, 1, 64, f"{n:064x}", 64, NOW, b"t") for n in range(1, 401)
    ]
    items = [
        (n, 1 + (n - 1) // ITEMS, f"Item {n}", "", 500, n % 7, True, f"{n:064x}", NOW, NOW)
        for n in range(1, 2 * ITEMS + 1)
    ]
    statements = [
        (
            "INSERT INTO users (id, username, username_key, password_hash, created_at,"
            " password_changed_at) VALUES (?, ?, ?, ?, ?, ?)",
            users,
        ),
        (
            "INSERT INTO pictures (sha256, format, width, height, orientation, size_bytes,"
            " clean_sha256, clean_size, created_at, thumbnail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            pictures,
        ),
        (
            "INSERT INTO items (id, owner_id, title, description, price_cents, stock, public,"
            " sha256, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            items,
        ),
        (
            "INSERT INTO orders (id, user_id, checkout_key, total_cents, currency, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            orders,
        ),
        (
            "INSERT INTO order_lines (id, order_id, item_id, seller_id, title, quantity,"
            " unit_price_cents, sold_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            lines,
        ),
    ]
    if isinstance(db, Database):
        async with db.transaction() as conn:
            for sql, rows in statements:
                await conn.executemany(sql, rows)
        return
    assert isinstance(db, PostgresDatabase)
    async with db.transaction() as conn:
        for sql, rows in statements:
            await conn.executemany(_numbered(sql), rows)
        await conn.execute("ANALYZE")


def _numbered(sql: str) -> str:
    """``sql`` with its ``?`` placeholders numbered for PostgreSQL."""
    parts = sql.split("?")
    return "".join(f"{part}${n}" for n, part in enumerate(parts[:-1], start=1)) + parts[-1]


async def _time(db: StorageEngine) -> tuple[float, float, int]:
    """(median ms, spread ms, revenue) of the dashboard's summary for seller 1."""
    report = SalesReport(commerce_repository(db), currency="EUR", clock=lambda: NOW)
    request = GetSalesSummary(days=30, weeks=12, top=5, low_stock=3)
    await report.summary(1, request)  # warm
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        summary = await report.summary(1, request)
        times.append((time.perf_counter() - started) * 1000)
    revenue = summary.currencies[0].revenue_cents
    return statistics.median(times), max(times) - min(times), revenue


async def _sqlite(folder: Path) -> tuple[float, float, int]:
    db = Database(folder / "bench.sqlite3")
    await db.open()
    try:
        await _seed(db)
        return await _time(db)
    finally:
        await db.close()


async def _postgres(url: str) -> tuple[float, float, int]:
    db = PostgresDatabase(url, min_size=1, max_size=4)
    await db.open()
    try:
        await _seed(db)
        return await _time(db)
    finally:
        await db.close()


def run() -> list[dict[str, Any]]:
    """The benchmark's rows, for ``make bench``."""
    setting = f"{LINES:,} lines of the seller's over a year (+{LINES:,} of another's)"
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        median, spread, _ = asyncio.run(_sqlite(Path(folder)))
    rows.append(
        {"what": "sales summary, SQLite", "setting": setting, "median_ms": median, "spread": spread}
    )
    with postgres_server() as server_url:
        template = Template(server_url)
        run_sync(template.create())
        url = run_sync(template.copy())
        try:
            median, spread, _ = asyncio.run(_postgres(url))
        finally:
            run_sync(template.drop(url))
            run_sync(template.drop(with_database(server_url, template.name)))
    rows.append(
        {
            "what": "sales summary, PostgreSQL",
            "setting": setting,
            "median_ms": median,
            "spread": spread,
        }
    )
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
