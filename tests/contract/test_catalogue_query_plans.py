"""On PostgreSQL, every default listing batch is an index range scan, even with 100k items.

The shop is loaded with ``generate_series`` (a few seconds), analysed, and then the planner is
asked for the statement the repository runs (:func:`page_query`), with its parameters, both as
the first executions plan it (custom plans) and as a prepared statement later may (generic).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest

from backend.catalogue.cursors import Position
from backend.catalogue.filters import Criteria
from backend.catalogue.postgres_repository import page_query
from protocol.messages.catalogue import SortOrder

ITEMS = 100_000
OWNERS = 100
TAGS = 50
#: The batch a listing asks for: the default batch plus one, to know whether more follow.
LIMIT = 51
#: Sorting more rows than this share of the table would be sorting the whole table.
MOST_SORTED = ITEMS // 10

LOAD = f"""
-- The load runs as one transaction: the items it writes are not queued for saved-search
-- matching (as migrate-data's copy), because the backlog trigger counts the whole backlog for
-- every new item (three minutes for 100k of them), and no listing reads the backlog.
SET LOCAL pixmart.copying = 'on';

INSERT INTO users (username, username_key, password_hash, created_at, password_changed_at)
SELECT 'user' || n, 'user' || n, 'hash', 0, 0 FROM generate_series(1, {OWNERS}) AS n;

INSERT INTO pictures (sha256, format, width, height, orientation, size_bytes, clean_sha256,
                      clean_size, created_at, thumbnail)
SELECT 'picture' || n, 'JPEG', 64, 48, 1, 1000, 'clean' || n, 900, 0, '\\x00'::bytea
FROM generate_series(1, {ITEMS}) AS n;

-- Nine in ten items public; prices and times spread out, with ties.
INSERT INTO items (owner_id, title, description, price_cents, stock, public, sha256, tags_text,
                   created_at, updated_at)
SELECT u.id, 'Item ' || n, 'A picture numbered ' || n, (n * 7919) % 50000, n % 5, n % 10 <> 0,
       'picture' || n, '', 1e9 + n / 3, 1e9 + n / 3
FROM generate_series(1, {ITEMS}) AS n
JOIN users u ON u.username = 'user' || (1 + n % {OWNERS});

-- Each item has one of {TAGS} rare tags, and every other one the common tag.
INSERT INTO tags (name) SELECT 'tag' || n FROM generate_series(0, {TAGS - 1}) AS n;
INSERT INTO tags (name) VALUES ('common');
INSERT INTO item_tags (item_id, tag_id)
SELECT i.id, t.id FROM items i JOIN tags t ON t.name = 'tag' || (i.id % {TAGS})
UNION ALL
SELECT i.id, t.id FROM items i JOIN tags t ON t.name = 'common' WHERE i.id % 2 = 0;

ANALYZE;
"""


@pytest.fixture
async def shop(pg_url: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    """A connection to a PostgreSQL shop of :data:`ITEMS` items, analysed."""
    conn: asyncpg.Connection[Any] = await asyncpg.connect(pg_url)
    try:
        await conn.execute(LOAD)
        yield conn
    finally:
        await conn.close()


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of an ``EXPLAIN (FORMAT JSON)`` plan."""
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


async def plan_of(
    conn: asyncpg.Connection[Any], sql: str, args: list[object]
) -> list[dict[str, Any]]:
    """The nodes of the plan of ``sql`` run with ``args``."""
    explained = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args)
    return list(nodes(json.loads(explained)[0]["Plan"]))


LISTINGS = {
    "newest first": (Criteria(), SortOrder.NEWEST),
    "price up": (Criteria(), SortOrder.PRICE_UP),
    "price down": (Criteria(), SortOrder.PRICE_DOWN),
    "by owner": (Criteria(owner_id=7), SortOrder.NEWEST),
    "by a rare tag": (Criteria(tags=("tag7",)), SortOrder.NEWEST),
    "by a common tag": (Criteria(tags=("common",)), SortOrder.NEWEST),
}
#: A position in the middle of each order, for the batches after the first.
MIDDLE: dict[SortOrder, Position] = {
    SortOrder.NEWEST: [1e9 + 20_000.0, 60_000],
    SortOrder.PRICE_UP: [25_000, 50_000],
    SortOrder.PRICE_DOWN: [25_000, 50_000],
}
#: The big tables: none may be read whole.
TABLES = ("items", "item_tags", "pictures", "picture_previews")


def problems_of(plan: list[dict[str, Any]]) -> list[str]:
    """What in ``plan`` reads or sorts a whole table, or misses the items' indexes."""
    problems: list[str] = []
    scans = [node for node in plan if node.get("Relation Name") in TABLES]
    problems.extend(
        f"reads all of {node['Relation Name']}" for node in scans if node["Node Type"] == "Seq Scan"
    )
    if not any("Index" in node["Node Type"] and node["Relation Name"] == "items" for node in scans):
        problems.append("no index scan of items")
    problems.extend(
        f"sorts {node['Plan Rows']} rows"
        for node in plan
        if node["Node Type"] in ("Sort", "Incremental Sort") and node["Plan Rows"] > MOST_SORTED
    )
    return problems


async def test_every_default_listing_is_an_index_range_scan(
    shop: asyncpg.Connection[Any],
) -> None:
    viewer = await shop.fetchval("SELECT id FROM users WHERE username = 'user3'")
    problems: list[str] = []
    for mode in ("force_custom_plan", "force_generic_plan"):
        await shop.execute(f"SET plan_cache_mode = {mode}")
        for name, (criteria, sort) in LISTINGS.items():
            for after in (None, MIDDLE[sort]):
                sql, args = page_query(viewer, criteria, sort, after=after, limit=LIMIT)
                batch = "a next batch" if after else "the first batch"
                problems.extend(
                    f"{name}, {batch}, {mode}: {problem}"
                    for problem in problems_of(await plan_of(shop, sql, args))
                )
    assert not problems, problems
