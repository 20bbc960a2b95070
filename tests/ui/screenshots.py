"""Provides the README's screenshots: ``python -m tests.ui.screenshots [DOCS_DIR]``.

Starts a server with the image model in a temporary data dir, stocks it with the demo catalogue
(as ``pixmart demo`` does), runs the real app headless at 120x40 logged in as the demo shopper,
and saves Textual's SVG export of the gallery and of a search by picture.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

# Headless there is no terminal to ask; coloured half-blocks are what most terminals show.
os.environ.setdefault("PIXMART_GRAPHICS", "halfcell")

from backend.config import ServerConfig
from backend.server import PixmartServer
from protocol.messages.catalogue import ListingFilters
from protocol.trust import TrustPolicy
from tui.data.similar import SimilarQuery, load_query_picture
from tui.demo import CATALOGUE_DIR, DemoAccounts, log_in_demo_user, seed_catalogue
from tui.launch import build_app
from tui.screens.similar import SimilarScreen
from tui.store import ClientStore

SIZE = (120, 40)
QUERY_PICTURE = CATALOGUE_DIR / "two-dogs-at-the-window.jpg"


async def _settle(pilot: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await pilot.pause(0.1)  # type: ignore[attr-defined]


async def take(docs: Path) -> None:
    """Write docs/gallery.svg and docs/search-by-picture.svg."""
    with tempfile.TemporaryDirectory(prefix="pixmart-shots-") as tmp:
        root = Path(tmp)
        server = PixmartServer(ServerConfig(data_dir=root / "server", port=0))
        await server.start()
        await server.vision_ready()
        try:
            url = f"wss://127.0.0.1:{server.port}"
            trust = TrustPolicy(fingerprint=server.fingerprint)
            accounts = DemoAccounts(root / "accounts.json")
            await seed_catalogue(url, trust, accounts)
            store = ClientStore(root / "client")
            await log_in_demo_user(url, trust, accounts, store)
            app = build_app(store=store, trust=trust, server_url=url)
            async with app.run_test(size=SIZE) as pilot:
                await _settle(pilot, 4.0)
                app.save_screenshot(filename="gallery.svg", path=str(docs))
                picture = load_query_picture(
                    QUERY_PICTURE, max_bytes=8 * 1024 * 1024, max_pixels=50_000_000
                )
                query = SimilarQuery(ListingFilters(), label=QUERY_PICTURE.name, picture=picture)
                await app.push_screen(SimilarScreen(query, example=picture))
                await _settle(pilot, 4.0)
                app.save_screenshot(filename="search-by-picture.svg", path=str(docs))
        finally:
            await server.stop()


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs")
    target.mkdir(exist_ok=True)
    asyncio.run(take(target))
    print(f"wrote {target / 'gallery.svg'} and {target / 'search-by-picture.svg'}")
