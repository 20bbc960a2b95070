"""Provides the inbox and favourites benchmark: what a notice and a favourite's news cost.

In-process on a migrated SQLite shop (the server's own repositories and services, an event hub
without connections), three figures:

* **deliver**: one :meth:`InboxService.deliver` into an inbox already holding its 500 notices
  (the insert with its visibility check, the trim to the newest 500, the unread count), median
  over many deliveries;
* **list**: the first batch of 50 of a full inbox, each notice joined with its item and judged
  for visibility again;
* **price drop to 1,000 keepers**: :meth:`FavouriteNotifier.item_changed` for an item 1,000 users
  keep (two transactions of 500), which the seller's edit waits for.

Run alone with ``.venv/bin/python -m tests.bench.bench_inbox``.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from backend.catalogue.repository import ItemRow
from backend.events import EventHub
from backend.favourites.notifier import FavouriteNotifier
from backend.favourites.repositories import favourites_repository
from backend.inbox.notices import NewNotice
from backend.inbox.repositories import inbox_repository
from backend.inbox.service import MAX_NOTICES, InboxService
from backend.storage.database import Database
from protocol.messages.catalogue import ItemCard
from protocol.messages.inbox import NoticeKind

KEEPERS = 1000
DELIVERIES = 200
LISTINGS = 100
PRICE_DROPS = 10


async def _secret() -> bytes:
    return b"\x00" * 32


async def _shop(db: Database) -> None:
    """Users 1..KEEPERS+1 (the first sells), one public item, every other user keeping it."""
    now = time.time()
    await db.executemany(
        "INSERT INTO users (id, username, username_key, password_hash, created_at,"
        " password_changed_at) VALUES (?, ?, ?, 'hash', ?, ?)",
        [(n, f"user{n}", f"user{n}", now, now) for n in range(1, KEEPERS + 2)],
    )
    await db.execute(
        "INSERT INTO pictures (sha256, format, width, height, orientation, size_bytes,"
        " clean_sha256, clean_size, created_at, thumbnail) VALUES (?, 'PNG', 8, 8, 1, 64, ?, 64,"
        " ?, ?)",
        ("0" * 64, "0" * 64, now, b"thumbnail"),
    )
    await db.execute(
        "INSERT INTO items (id, owner_id, title, description, price_cents, stock, public,"
        " sha256, created_at, updated_at) VALUES (1, 1, 'Dunes', '', 100000, 5, 1, ?, ?, ?)",
        ("0" * 64, now, now),
    )
    await db.executemany(
        "INSERT INTO favourites (user_id, item_id, title, price_cents, added_at)"
        " VALUES (?, 1, 'Dunes', 100000, ?)",
        [(n, now) for n in range(2, KEEPERS + 2)],
    )


def _card(price_cents: int) -> ItemCard:
    return ItemCard(
        id=1,
        title="Dunes",
        price_cents=price_cents,
        stock=5,
        public=True,
        owner_id=1,
        owner_name="user1",
        tags=[],
        width=8,
        height=8,
        created_at=0.0,
    )


def _ms(samples: list[float]) -> tuple[float, str]:
    median = statistics.median(samples) * 1000
    spread = f"p10 {statistics.quantiles(samples, n=10)[0] * 1000:.2f} – p90 " + (
        f"{statistics.quantiles(samples, n=10)[-1] * 1000:.2f} ms"
    )
    return median, spread


async def _measure(root: Path) -> list[dict[str, Any]]:
    db = Database(root / "bench.sqlite3")
    await db.open()
    try:
        await _shop(db)
        inbox = InboxService(
            inbox_repository(db), EventHub(), _secret, batch_default=50, batch_max=100
        )
        notice = NewNotice(kind=NoticeKind.PRICE_DROP, text="'Dunes' now costs less", item_id=1)
        for _ in range(MAX_NOTICES):
            await inbox.deliver(2, notice)
        deliveries = []
        for _ in range(DELIVERIES):
            started = time.perf_counter()
            await inbox.deliver(2, notice)
            deliveries.append(time.perf_counter() - started)
        listings = []
        for _ in range(LISTINGS):
            started = time.perf_counter()
            notices, _cursor, _unread = await inbox.notices(2)
            listings.append(time.perf_counter() - started)
        assert len(notices) == 50
        notifier = FavouriteNotifier(favourites_repository(db), inbox, "EUR")
        drops = []
        price = 100000
        for _ in range(PRICE_DROPS):
            before = ItemRow(
                id=1,
                owner_id=1,
                public=True,
                sha256="0" * 64,
                title="Dunes",
                price_cents=price,
                stock=5,
            )
            price -= 100
            started = time.perf_counter()
            await notifier.item_changed(before, _card(price))
            drops.append(time.perf_counter() - started)
        told = await db.fetchone("SELECT count(DISTINCT user_id) FROM notices")
        assert told is not None and told[0] == KEEPERS
    finally:
        await db.close()
    rows = []
    for what, setting, samples in (
        ("inbox deliver", f"into a full inbox ({MAX_NOTICES}), SQLite", deliveries),
        ("inbox list", "first batch of 50 of a full inbox, SQLite", listings),
        ("favourite price drop", f"{KEEPERS:,} keepers told, SQLite", drops),
    ):
        median, spread = _ms(samples)
        rows.append(
            {
                "what": what,
                "setting": setting,
                "median": round(median, 2),
                "unit": "ms",
                "spread": spread,
            }
        )
    return rows


def run() -> list[dict[str, Any]]:
    """The three figures, as rows for ``make bench``."""
    with tempfile.TemporaryDirectory(prefix="pixmart-bench-inbox-") as root:
        return asyncio.run(_measure(Path(root)))


if __name__ == "__main__":
    for row in run():
        print(row)
