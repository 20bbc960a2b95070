"""Saved-search alerts survive a crash (both engines): a real ``pixmart-server`` killed (SIGKILL)
after it acknowledged an upload but before it matched the item sends the alert once it runs
again, exactly once; so does one killed at whatever point right after an acknowledged edit.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from protocol import inbox_client as inbox
from protocol.alerts_client import save_search
from protocol.catalogue_client import edit_item, upload_file
from protocol.client import Session
from protocol.messages.catalogue import ItemMetadata, ListingFilters
from protocol.messages.inbox import NoticeKind
from tests.support.commerce import PASSWORD, ServerProcess, sign_up, write_picture

#: Makes every recording of an alert fail, as if the server died in the middle of it; the
#: item's backlog entry stays (its transaction is rolled back), as after a kill at that point.
_HOLD_SQLITE = """
CREATE TRIGGER test_hold_matches BEFORE INSERT ON alert_matches
BEGIN SELECT RAISE(ABORT, 'held by the test'); END
"""
_HOLD_POSTGRES = """
CREATE FUNCTION test_hold_matches() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'held by the test'; END $$;
CREATE TRIGGER test_hold_matches BEFORE INSERT ON alert_matches
FOR EACH ROW EXECUTE FUNCTION test_hold_matches();
"""
_RELEASE_SQLITE = "DROP TRIGGER test_hold_matches"
_RELEASE_POSTGRES = (
    "DROP TRIGGER test_hold_matches ON alert_matches; DROP FUNCTION test_hold_matches()"
)


class _Shop:
    """The server process and plain SQL on its database, whichever the engine."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server

    async def sql(self, sql: str) -> list[Any]:
        """Run ``sql`` (no parameters) on the server's database; the rows of the last
        statement."""
        if self.server.database is None:
            return await asyncio.to_thread(self._sqlite, sql)
        conn = await asyncpg.connect(self.server.database)
        try:
            if sql.lstrip().upper().startswith("SELECT"):
                return list(await conn.fetch(sql))
            await conn.execute(sql)
            return []
        finally:
            await conn.close()

    def _sqlite(self, sql: str) -> list[Any]:
        with closing(sqlite3.connect(self.server.db_path, timeout=30)) as conn, conn:
            if sql.lstrip().upper().startswith("SELECT"):
                return list(conn.execute(sql).fetchall())
            conn.executescript(sql)
            return []

    async def hold_matching(self) -> None:
        postgres = self.server.database is not None
        await self.sql(_HOLD_POSTGRES if postgres else _HOLD_SQLITE)

    async def release_matching(self) -> None:
        postgres = self.server.database is not None
        await self.sql(_RELEASE_POSTGRES if postgres else _RELEASE_SQLITE)

    async def backlog(self) -> list[tuple[int, int]]:
        """(item, failed attempts) of every item waiting to be matched."""
        rows = await self.sql("SELECT item_id, attempts FROM alert_backlog ORDER BY item_id")
        return [(int(row[0]), int(row[1])) for row in rows]


@pytest.fixture
async def shop(tmp_path: Path, server_database: str | None) -> AsyncIterator[_Shop]:
    server = ServerProcess(tmp_path / "data", database=server_database)
    await server.start()
    try:
        yield _Shop(server)
    finally:
        server.stop()


async def _session(shop: _Shop, name: str, *, new: bool) -> Session:
    session = shop.server.session()
    await session.connect()
    if new:
        return await sign_up(session, name)
    await session.login(name, PASSWORD)
    return session


async def _alerts(session: Session) -> list[int | None]:
    notices = (await inbox.inbox_batch(session, limit=100)).notices
    return [n.item_id for n in reversed(notices) if n.kind is NoticeKind.ALERT_MATCH]


async def _settled(shop: _Shop, timeout: float = 30.0) -> None:
    """Wait until the restarted server has matched everything waiting."""
    for _ in range(int(timeout / 0.05)):
        if not await shop.backlog():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"still waiting to be matched: {await shop.backlog()}")


async def test_an_upload_acknowledged_before_a_kill_alerts_once_after_the_restart(
    shop: _Shop, tmp_path: Path
) -> None:
    buyer = await _session(shop, "buyer", new=True)
    seller = await _session(shop, "seller", new=True)
    await save_search(buyer, ListingFilters(text="harbour"))
    await shop.hold_matching()

    metadata = ItemMetadata(title="Harbour at night", price_cents=900)
    item = (await upload_file(seller, write_picture(tmp_path), metadata)).item.id  # acknowledged

    # The server tried to match it and could not: it is still waiting when the server dies.
    for _ in range(600):
        if (await shop.backlog())[0][1] >= 1:
            break
        await asyncio.sleep(0.05)
    assert await shop.backlog() == [(item, 1)]
    await buyer.close()
    await seller.close()
    shop.server.kill()
    assert [entry for entry, _ in await shop.backlog()] == [item]

    await shop.release_matching()
    await shop.server.start(port=shop.server.port)
    buyer = await _session(shop, "buyer", new=False)
    try:
        await _settled(shop)
        assert await _alerts(buyer) == [item]
    finally:
        await buyer.close()


async def test_a_kill_right_after_acknowledged_edits_still_alerts_exactly_once(
    shop: _Shop, tmp_path: Path
) -> None:
    buyer = await _session(shop, "buyer", new=True)
    seller = await _session(shop, "seller", new=True)
    await save_search(buyer, ListingFilters(tags=["cat"], max_price_cents=1000))
    items = []
    for n in range(3):
        metadata = ItemMetadata(title=f"Tabby {n}", tags=["cat"], price_cents=3000)
        items.append((await upload_file(seller, write_picture(tmp_path), metadata)).item.id)
    # Each edit makes its item match; the kill comes at once after the last acknowledgement,
    # wherever the matching of each has got to (not begun, midway, or committed).
    for item in items:
        await edit_item(seller, item, price_cents=900)
    shop.server.kill()
    await buyer.close()
    await seller.close()

    await shop.server.start(port=shop.server.port)
    buyer = await _session(shop, "buyer", new=False)
    try:
        await _settled(shop)
        assert sorted(item for item in await _alerts(buyer) if item is not None) == items
    finally:
        await buyer.close()
