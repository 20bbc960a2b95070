"""Provides the end-to-end search-by-picture benchmark: a 2 MP JPEG sent to the first batch.

A real ``pixmart-server`` process with the image model, stocked with the demo catalogue, is asked
for the 24 items most like a 2-megapixel JPEG over loopback TLS. Each measurement sends a
slightly different picture (so nothing is answered from a cache) and covers the upload of the
bytes, validation and decoding, preprocessing, inference, ranking and the 24 thumbnails back.

The server listens before its model has warmed up (a first start converts it for half a
minute), so the catalogue is stocked only once ``GET /healthz`` says ``"vision": "ready"``
(bounded): every upload is then embedded as it arrives, and no search meets ``unavailable``.

Run alone with ``.venv/bin/python -m tests.bench.bench_search_e2e``.
"""

from __future__ import annotations

import asyncio
import io
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from PIL import Image

from protocol.client import Session
from protocol.trust import TrustPolicy
from protocol.vision_client import search_by_picture
from tests.support.health import wait_for_health
from tests.support.load import percentile
from tui.demo import CATALOGUE_DIR, DEMO_USER, DemoAccounts, local_server, seed_catalogue

RUNS = 20
WARM_UP = 3
#: 1732 x 1155 = 2.0 megapixels.
SIZE = (1732, 1155)
#: Seconds the image model may take to warm up: a first start converts it (~30 s when idle).
READY_TIMEOUT: Final = 600.0


def two_megapixel_jpegs(count: int) -> list[bytes]:
    """``count`` distinct 2 MP JPEGs of a real photograph (one pixel differs between them)."""
    base = Image.open(CATALOGUE_DIR / "chelsea-the-cat.jpg").convert("RGB").resize(SIZE)
    pictures: list[bytes] = []
    for n in range(count):
        image = base.copy()
        image.putpixel((n % SIZE[0], 0), (n % 256, 0, 0))
        out = io.BytesIO()
        image.save(out, "JPEG", quality=90)
        pictures.append(out.getvalue())
    return pictures


async def _measure(url: str, fingerprint: str, accounts: DemoAccounts) -> list[float]:
    trust = TrustPolicy(fingerprint=fingerprint)
    await seed_catalogue(url, trust, accounts)
    session = Session(url, trust)
    await session.connect()
    try:
        await session.login(DEMO_USER, accounts.password(DEMO_USER))
        pictures = two_megapixel_jpegs(WARM_UP + RUNS)
        timings: list[float] = []
        for n, picture in enumerate(pictures):
            started = time.perf_counter()
            batch = await search_by_picture(session, picture, limit=24)
            elapsed = time.perf_counter() - started
            assert batch.items, "the search found nothing"
            if n >= WARM_UP:
                timings.append(elapsed * 1000)
        return timings
    finally:
        await session.close()


def run() -> list[dict[str, Any]]:
    """Measure and return the benchmark rows."""
    with tempfile.TemporaryDirectory(prefix="pixmart-bench-e2e-") as tmp:
        root = Path(tmp)
        with local_server(root / "server") as server:
            port = urlsplit(server.url).port
            assert port is not None
            wait_for_health(port, vision="ready", timeout=READY_TIMEOUT, process=server.process)
            accounts = DemoAccounts(root / "accounts.json")
            timings = asyncio.run(_measure(server.url, server.fingerprint, accounts))
    size_kb = len(two_megapixel_jpegs(1)[0]) // 1024
    return [
        {
            "what": "search by picture, end to end",
            "setting": f"2 MP JPEG ({size_kb} KB) to first batch of 24, loopback TLS, {RUNS} runs",
            "median": statistics.median(timings),
            "unit": "ms",
            "spread": f"p10 {percentile(timings, 10):.0f} / p90 {percentile(timings, 90):.0f}",
            "comparison": "target 150 ms",
            "ratio": round(statistics.median(timings) / 150, 2),
        }
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
