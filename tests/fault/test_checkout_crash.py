"""A real ``pixmart-server`` SIGKILLed in the middle of checkouts, twice, and restarted.

Buyers keep adding to their carts and checking out while the server dies. Their sessions ride
over the restarts (unanswered checkouts are re-sent with the same checkout key). After each kill
the database file must be intact, every order whole or absent, no unit sold twice or lost, and
every order a client saw acknowledged present. It runs on SQLite, and on PostgreSQL when the
suite's engine is PostgreSQL (``PIXMART_TEST_ENGINE=postgres``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from protocol import commerce_client as shop
from protocol.client import Session
from protocol.messages.commerce import Order
from tests.support.commerce import (
    ServerProcess,
    check_orders_database,
    check_orders_postgres,
    keep_shopping,
    list_item,
    sign_up,
)

BUYERS = 8
START_STOCK = 60
KILLS = 2
#: Orders acknowledged between two kills, so every kill lands among running checkouts.
ORDERS_PER_ROUND = 12


async def _until(predicate: object, timeout: float) -> None:
    assert callable(predicate)
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def _check(server: ServerProcess, start_stock: dict[int, int], orders: list[Order]) -> None:
    """Assert that the killed (or stopped) server's database is whole and holds ``orders``."""
    if server.database is None:
        check_orders_database(server.db_path, start_stock, orders)
    else:
        await check_orders_postgres(server.database, start_stock, orders)


async def test_checkouts_are_all_or_nothing_across_sigkills(
    tmp_path: Path, server_database: str | None
) -> None:
    server = ServerProcess(tmp_path / "server-data", database=server_database)
    await server.start()
    sessions: list[Session] = []
    try:
        seller = server.session()
        await seller.connect()
        sessions.append(seller)
        await sign_up(seller, "seller")
        start_stock: dict[int, int] = {}
        for n in range(3):
            item = await list_item(
                seller,
                tmp_path / "pictures",
                title=f"Print {n}",
                price_cents=100 * (n + 1),
                stock=START_STOCK,
            )
            start_stock[item] = START_STOCK
        buyers = [server.session() for _ in range(BUYERS)]
        sessions += buyers
        for n, buyer in enumerate(buyers):
            await buyer.connect()
            await sign_up(buyer, f"buyer{n}")

        acknowledged: list[tuple[Session, Order]] = []
        stop = asyncio.Event()
        shoppers = [
            asyncio.create_task(keep_shopping(buyer, list(start_stock), stop, acknowledged, buyer))
            for n, buyer in enumerate(buyers)
        ]
        for round_ in range(1, KILLS + 1):
            target = round_ * ORDERS_PER_ROUND
            await _until(lambda: len(acknowledged) >= target, 60)  # noqa: B023 (awaited here)
            server.kill()
            await _check(server, start_stock, [order for _, order in acknowledged])
            await server.start(port=server.port)
        await _until(lambda: len(acknowledged) >= (KILLS + 1) * ORDERS_PER_ROUND, 60)
        stop.set()
        async with asyncio.timeout(30):
            await asyncio.gather(*shoppers)

        # Clients find every order they saw acknowledged, as it was acknowledged.
        for buyer, order in acknowledged:
            assert await shop.get_order(buyer, order.id) == order
        assert len({order.id for _, order in acknowledged}) == len(acknowledged)
    finally:
        for session in sessions:
            await session.close()
        server.stop()
    await _check(server, start_stock, [order for _, order in acknowledged])
