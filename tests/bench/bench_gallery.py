"""Provides the gallery benchmark: how fast a batch appears, and that keys never wait on it.

A server in this process holds 10,000 items (seeded through the storage layer with real WebP
thumbnails); the real app runs headless at 120x40, logged in. Measured, medians of several runs:

- batch appears: from pressing ``n`` (next batch) to the new cards counted in the listing and
  the grid redrawn;
- event-loop stall during a fetch: the worst lateness of a 5 ms timer on the app's event loop
  while batches are requested, decoded and drawn. Keys are handled on that loop, so this bounds
  how long a key press can wait while the network works (the fetch itself runs in a worker).

Run alone with ``.venv/bin/python -m tests.bench.bench_gallery``.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from backend.config import ServerConfig
from backend.server import PixmartServer
from protocol.client import Session
from protocol.trust import TrustPolicy
from tests.support.catalogue import catalogue as catalogue_of
from tests.support.load import seed_items, small_thumbnail
from tui.launch import build_app
from tui.screens.gallery import GalleryScreen
from tui.store import ClientStore
from tui.widgets.catalogue_view import CatalogueView

ITEMS = 10_000
RUNS = 10


async def _until(pilot: Any, condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the gallery did not get there in time")
        await pilot.pause(0.002)


async def _worst_lateness(out: list[float], period: float = 0.005) -> None:
    """Append the worst lateness (ms) of a periodic timer until cancelled."""
    worst = 0.0
    try:
        while True:
            due = time.perf_counter() + period
            await asyncio.sleep(period)
            worst = max(worst, time.perf_counter() - due)
    finally:
        out.append(worst * 1000)


async def _measure(root: Path) -> tuple[list[float], list[float]]:
    server = PixmartServer(ServerConfig(data_dir=root / "server", port=0, enable_vision=False))
    await server.start()
    try:
        url = f"wss://127.0.0.1:{server.port}"
        trust = TrustPolicy(fingerprint=server.fingerprint)
        session = Session(url, trust)
        await session.connect()
        await session.create_account("seller", "password123")
        await session.login("seller", "password123")
        assert session.user is not None and session.token is not None
        thumbnails = [small_thumbnail(n) for n in range(8)]
        await seed_items(
            server.db,
            [session.user.id],
            ITEMS,
            thumbnails=thumbnails,
            preview=thumbnails[0],
            derivatives=catalogue_of(server).derivatives,
        )
        store = ClientStore(root / "client")
        store.save_token(url, session.token)
        await session.close()

        app = build_app(store=store, trust=trust, server_url=url, listing_batch=24)
        appear: list[float] = []
        stalls: list[float] = []
        async with app.run_test(size=(120, 40)) as pilot:
            await _until(
                pilot,
                lambda: (
                    isinstance(app.screen, GalleryScreen) and bool(app.screen.query(CatalogueView))
                ),
            )
            view = app.screen.query_one(CatalogueView)
            await _until(pilot, lambda: view.listing is not None and len(view.listing) >= 24)
            listing = view.listing
            assert listing is not None
            for _ in range(RUNS):
                before = len(listing)
                watcher = asyncio.create_task(_worst_lateness(stalls))
                started = time.perf_counter()
                await pilot.press("n")
                await _until(pilot, lambda b=before: len(listing) > b and not view.fetching)
                appear.append((time.perf_counter() - started) * 1000)
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)
        return appear, stalls
    finally:
        await server.stop()


def run() -> list[dict[str, Any]]:
    """Measure and return the rows."""
    with tempfile.TemporaryDirectory(prefix="pixmart-bench-gallery-") as tmp:
        appear, stalls = asyncio.run(_measure(Path(tmp)))
    return [
        {
            "what": "gallery: next batch appears",
            "setting": f"{ITEMS:,} items, batch of 24 with thumbnails, app at 120x40, {RUNS} runs",
            "median": statistics.median(appear),
            "unit": "ms",
            "spread": f"{min(appear):.0f} - {max(appear):.0f} ms",
            "comparison": "target 300 ms",
            "ratio": round(statistics.median(appear) / 300, 3),
        },
        {
            "what": "gallery: worst event-loop stall while a batch loads",
            "setting": "5 ms timer on the app's loop, request + decode + redraw",
            "median": statistics.median(stalls),
            "unit": "ms",
            "spread": f"{min(stalls):.1f} - {max(stalls):.1f} ms",
        },
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
