"""Provides the catalogue benchmarks: upload throughput and listing latency over loopback TLS.

1. Upload throughput: a folder of 200 JPEG photos of 2 to 4 megapixels (gradients, soft shapes
   and sensor-like noise, saved at quality 90, about 1 MB each) uploaded with 4 uploads in flight
   through :func:`protocol.catalogue_client.upload_file` (the CLI's path: client-side SHA-256,
   1 MiB chunks, server-side hash check, full decode, clean copy, thumbnail and preview) to a
   real ``pixmart-server`` process without the image model. Each run starts from an empty
   catalogue (the previous run's items are deleted, so no upload is a duplicate).
2. Listing latency at 10,000 items: the items are seeded through the storage layer with a few
   shared real WebP thumbnails, then a client asks for batches of 24 over the real protocol:
   the first batch (with its total count), a batch deep into the listing (by cursor), a
   tag-filtered and a text-searched first batch. Medians of 30 requests each.

Run alone with ``.venv/bin/python -m tests.bench.bench_catalogue``; ``make bench`` collects
``run()``. The machine is shared (2 cores), so figures vary from run to run.
"""

from __future__ import annotations

import asyncio
import io
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from backend.config import ServerConfig
from backend.server import PixmartServer
from protocol.catalogue_client import browse, delete_items, iter_items, upload_file
from protocol.client import Session
from protocol.messages.catalogue import ItemMetadata, ListingFilters
from tests.support.catalogue import catalogue as catalogue_of
from tests.support.commerce import ServerProcess, sign_up
from tests.support.load import seed_items

PHOTOS = 200
IN_FLIGHT = 4
UPLOAD_RUNS = 3
ITEMS = 10_000
BATCH = 24
SAMPLES = 30


# -- pictures ------------------------------------------------------------------------------


def photo(seed: int) -> Image.Image:
    """A photo-like picture of 2 to 4 megapixels: gradients, soft blobs and fine noise."""
    rng = np.random.default_rng(seed)
    width = int(rng.integers(1700, 2400))
    height = int(rng.integers(1200, 1700))
    # The smooth part is drawn at 1/8 scale and enlarged: it has no fine detail to lose.
    small_w, small_h = width // 8, height // 8
    y, x = np.mgrid[0:small_h, 0:small_w].astype(np.float32) * 8
    base = np.empty((small_h, small_w, 3), np.float32)
    for channel in range(3):
        a, b, c = rng.uniform(-0.08, 0.08, 3)
        base[..., channel] = 128 + a * x + b * y + c * (x - y) * 0.5
    for _ in range(6):  # soft shapes, the "subjects"
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        radius = rng.uniform(80, 500)
        blob = np.exp(-(((x - cx) ** 2 + (y - cy) ** 2) / (2 * radius**2)))
        base += blob[..., None] * rng.uniform(-90, 90, 3)
    smooth = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
    pixels = np.asarray(smooth.resize((width, height), Image.Resampling.BILINEAR), np.int16)
    pixels += rng.integers(-14, 15, pixels.shape, dtype=np.int16)  # sensor noise
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def write_photos(folder: Path, count: int) -> list[Path]:
    """Write ``count`` JPEG photos (quality 90) into ``folder``, two at a time."""
    folder.mkdir(parents=True, exist_ok=True)

    def one(seed: int) -> Path:
        path = folder / f"photo-{seed:03d}.jpg"
        photo(seed).save(path, "JPEG", quality=90)
        return path

    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(one, range(count)))


def small_webp(seed: int, size: tuple[int, int]) -> bytes:
    """A real WebP thumbnail (or preview) with the detail of a photo, not a flat gradient."""
    rng = np.random.default_rng(seed)
    pixels = np.asarray(photo(seed).resize(size), np.int16)
    pixels += rng.integers(-24, 25, pixels.shape, dtype=np.int16)
    picture = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    buffer = io.BytesIO()
    picture.save(buffer, "WEBP", quality=80)
    return buffer.getvalue()


# -- helpers -------------------------------------------------------------------------------


def _row(what: str, setting: str, values: list[float], unit: str) -> dict[str, Any]:
    ordered = sorted(values)
    if len(ordered) >= 10:
        deciles = statistics.quantiles(ordered, n=10, method="inclusive")
        spread = f"p10 {deciles[0]:.3g} - p90 {deciles[8]:.3g}"
    else:
        spread = f"{ordered[0]:.3g}-{ordered[-1]:.3g}"
    return {
        "what": what,
        "setting": setting,
        "median": statistics.median(ordered),
        "unit": unit,
        "spread": spread,
    }


async def _timed(action: Callable[[], Awaitable[object]], n: int) -> list[float]:
    """Milliseconds of ``n`` calls, one at a time."""
    samples: list[float] = []
    for _ in range(n):
        started = time.perf_counter()
        await action()
        samples.append((time.perf_counter() - started) * 1000)
        # Untimed pause: stays under the server's per-connection request rate limit.
        await asyncio.sleep(0.02)
    return samples


# -- uploads -------------------------------------------------------------------------------


async def _upload_all(session: Session, paths: list[Path]) -> float:
    """Upload every file with ``IN_FLIGHT`` uploads at once; return the seconds it took."""
    queue: asyncio.Queue[Path] = asyncio.Queue()
    for path in paths:
        queue.put_nowait(path)

    async def worker() -> None:
        while not queue.empty():
            path = queue.get_nowait()
            created = await upload_file(
                session, path, ItemMetadata(title=path.stem, price_cents=990, tags=["bench"])
            )
            assert not created.duplicate

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    return time.perf_counter() - started


async def _delete_everything(session: Session) -> None:
    ids = [card.id async for card in iter_items(session, ListingFilters(mine=True), batch=100)]
    for start in range(0, len(ids), 1000):
        await delete_items(session, ids[start : start + 1000])


async def _measure_uploads(root: Path) -> list[dict[str, Any]]:
    paths = await asyncio.to_thread(write_photos, root / "photos", PHOTOS)
    megabytes = sum(path.stat().st_size for path in paths) / 1e6
    pixels = [Image.open(path).size for path in paths]
    megapixels = statistics.mean(w * h for w, h in pixels) / 1e6
    server = ServerProcess(root / "upload-server")
    await server.start()
    session = server.session()
    try:
        await session.connect()
        await sign_up(session, "uploader")
        rates: list[float] = []
        for _ in range(UPLOAD_RUNS):
            seconds = await _upload_all(session, paths)
            rates.append(PHOTOS / seconds)
            await _delete_everything(session)
    finally:
        await session.close()
        server.stop()
    setting = (
        f"{PHOTOS} JPEGs q90, {megapixels:.1f} MP and {megabytes / PHOTOS:.2f} MB on average, "
        f"{IN_FLIGHT} in flight, loopback TLS, server process"
    )
    row = _row("upload throughput", setting, rates, "images/s")
    bandwidth = _row(
        "upload throughput", setting, [rate * megabytes / PHOTOS for rate in rates], "MB/s"
    )
    return [row, bandwidth]


# -- listings ------------------------------------------------------------------------------


async def _seed(data_dir: Path, *, unique_thumbnails: bool = False) -> None:
    """Create 10,000 items in a fresh data dir, straight through the storage layer.

    With ``unique_thumbnails`` no two items share a thumbnail (see ``seed_items``).
    """
    server = PixmartServer(ServerConfig(data_dir=data_dir, port=0, enable_vision=False))
    await server.start()
    try:
        owners = [
            (await server.accounts.create_account(f"seller{n}", "password123")).id for n in range(5)
        ]
        await seed_items(
            server.db,
            owners,
            ITEMS,
            thumbnails=[small_webp(seed, (256, 171)) for seed in range(6)],
            # Listings never read previews; a small one keeps the seeded database small.
            preview=small_webp(99, (128, 85)),
            prefix="bench",
            derivatives=catalogue_of(server).derivatives,
            unique_thumbnails=unique_thumbnails,
        )
    finally:
        await server.stop()


async def _measure_listing(root: Path) -> list[dict[str, Any]]:
    data_dir = root / "listing-server"
    await _seed(data_dir)
    server = ServerProcess(data_dir)
    await server.start()
    session = server.session()
    try:
        await session.connect()
        await session.login("seller0", "password123")
        first = await browse(session, limit=BATCH)
        assert first.total is not None and first.total > ITEMS * 0.8 and first.cursor
        cursor = first.cursor
        for _ in range(48):  # deep into the listing: about item 4,800, batch 200 of ~400
            page = await browse(session, limit=100, cursor=cursor)
            assert page.cursor is not None
            cursor = page.cursor
        kilobytes = sum(len(card.thumbnail or b"") for card in first.items) / 1024
        setting = f"{ITEMS:,} items, batch of {BATCH} with thumbnails ({kilobytes:.0f} KB)"
        tagged = ListingFilters(tags=["night", "sky"])
        text = ListingFilters(text="item 12")
        await _timed(lambda: browse(session, limit=BATCH), 5)  # warm-up
        rows = [
            _row(
                "listing batch latency",
                f"{setting}, first batch + total count",
                await _timed(lambda: browse(session, limit=BATCH), SAMPLES),
                "ms",
            ),
            _row(
                "listing batch latency",
                f"{setting}, batch 200 by cursor",
                await _timed(lambda: browse(session, limit=BATCH, cursor=cursor), SAMPLES),
                "ms",
            ),
            _row(
                "listing batch latency",
                f"{setting}, two tags, first batch + count",
                await _timed(lambda: browse(session, tagged, limit=BATCH), SAMPLES),
                "ms",
            ),
            _row(
                "listing batch latency",
                f"{setting}, text search, first batch + count",
                await _timed(lambda: browse(session, text, limit=BATCH), SAMPLES),
                "ms",
            ),
        ]
    finally:
        await session.close()
        server.stop()
    return rows


def run() -> list[dict[str, Any]]:
    """Run both benchmarks; one row per figure (see ``tests/bench/run.py``)."""
    with tempfile.TemporaryDirectory(prefix="pixmart-bench-catalogue-") as tmp:
        root = Path(tmp)
        listing = asyncio.run(_measure_listing(root))
        uploads = asyncio.run(_measure_uploads(root))
    return uploads + listing


if __name__ == "__main__":
    for result in run():
        print(
            f"{result['what']} [{result['setting']}]: {result['median']:.3g} {result['unit']}"
            f" ({result['spread']})"
        )
