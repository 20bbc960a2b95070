"""Provides the dashboard's test shop: a seller with a month of sales at fixed dates.

``dee`` sells six prints; ``eli`` bought them in nine orders between 5 November and 2 December
2026, one of them paid in USD (as if the shop had sold in dollars once), and bought ``Fog over
the bay`` out. The server's sales report is pinned to :data:`NOW`, so its windows, and the
charts drawn from them, are the same on every run.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from protocol import commerce_client
from tests.ui.seed import SeedItem, seed
from tests.ui.snapshot_shop import SnapshotShop, new_account, snapshot_config
from tests.ui.threaded_server import ThreadedServer

#: The dashboard's "now": Wednesday 2 December 2026, 15:00 UTC.
NOW: Final = float(calendar.timegm((2026, 12, 2, 15, 0, 0)))

#: ``dee``'s items: title, price, stock.
ITEMS: Final = [
    ("Lighthouse at dusk", 2400, 8),
    ("Harbour cranes", 1250, 4),
    ("Old market hall", 975, 5),
    ("Fog over the bay", 1800, 2),
    ("Night ferry", 3000, 3),
    ("Pier lanterns", 650, 20),
]

#: ``eli``'s orders: (year, month, day, hour) in UTC, currency, and (item index, quantity) lines.
ORDERS: Final = [
    ((2026, 11, 5, 10), "EUR", [(5, 3)]),
    ((2026, 11, 12, 16), "EUR", [(0, 1), (1, 1)]),
    ((2026, 11, 19, 8), "EUR", [(5, 2), (2, 1)]),
    ((2026, 11, 20, 20), "USD", [(1, 1)]),
    ((2026, 11, 24, 11), "EUR", [(3, 2)]),
    ((2026, 11, 27, 13), "EUR", [(4, 1), (5, 4)]),
    ((2026, 11, 30, 9), "EUR", [(1, 1)]),
    ((2026, 12, 1, 18), "EUR", [(0, 2), (2, 1)]),
    ((2026, 12, 2, 9), "EUR", [(5, 1)]),
]


@dataclass
class SalesFloor:
    """The dashboard's server and the saved session of its seller ``dee``."""

    server: ThreadedServer
    seller: SnapshotShop
    item_ids: list[int]


def open_sales_floor(root: Path) -> SalesFloor:
    """Start the server under ``root`` and fill it as the module docstring says."""
    server = ThreadedServer(snapshot_config(root)).start()

    async def fill() -> tuple[str, list[int]]:
        dee, eli = await new_account(server, "dee"), await new_account(server, "eli")
        try:
            items = [
                SeedItem(index=60 + n, title=title, price_cents=price, stock=stock)
                for n, (title, price, stock) in enumerate(ITEMS)
            ]
            ids = [card.id for card in await seed(dee, items, root / "pictures")]
            for _, _, lines in ORDERS:
                for index, quantity in lines:
                    cart = await commerce_client.add_to_cart(eli, ids[index], quantity)
                await commerce_client.checkout(
                    eli, cart.total_cents, commerce_client.new_checkout_key()
                )
            assert server.server is not None and dee.token is not None
            for order_id, (when, currency, _) in enumerate(ORDERS, start=1):
                at = float(calendar.timegm((*when, 0, 0)))
                await server.server.db.execute(
                    "UPDATE orders SET created_at = ?, currency = ? WHERE id = ?",
                    (at, currency, order_id),
                )
                await server.server.db.execute(
                    "UPDATE order_lines SET sold_at = ? WHERE order_id = ?", (at, order_id)
                )
            return dee.token, ids
        finally:
            await dee.close()
            await eli.close()

    token, ids = server.run(fill())
    pin_clock(server, NOW)
    return SalesFloor(server=server, seller=SnapshotShop(server=server, token=token), item_ids=ids)


def pin_clock(server: ThreadedServer, now: float) -> None:
    """Make the server's sales report see ``now`` as the present."""
    assert server.server is not None and server.server.domains is not None
    commerce = server.server.domains.commerce.service
    assert commerce is not None
    commerce.report.clock = lambda: now


__all__ = ["ITEMS", "NOW", "ORDERS", "SalesFloor", "open_sales_floor", "pin_clock"]
