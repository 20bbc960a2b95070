"""Provides the upload-pipeline benchmark: the old pipeline against the new, side by side.

Two picture sets are uploaded through :func:`protocol.catalogue_client.upload_file` (the CLI's
path: client-side SHA-256, 1 MiB chunks, the server's hash check, validation, clean copy,
thumbnail, preview and model picture) to a real ``pixmart-server`` process without the image
model, over loopback TLS, with 4 uploads in flight:

* 200 photo-like JPEGs of 2 to 4 megapixels (about 3 MP, quality 90, the catalogue bench's set);
* 20 photo-like JPEGs of 24 megapixels (6000 x 4000, quality 90, 5 to 6 MB each).

Each set goes to two servers: the current ``pixmart-server`` and the same server running the
pipeline as it was before issue 19 (:mod:`tests.support.reference_pipeline`). Runs alternate
between the two, so a change in the machine's load (it is shared) falls on both alike. Each run
starts from an empty catalogue. The figures are medians over the runs: pictures per second, the
server process's CPU per picture (user + system, from ``/proc``), and new over old.

Run alone with ``.venv/bin/python -m tests.bench.bench_uploads``; ``make bench`` collects
``run()``.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
from PIL import Image

from protocol.catalogue_client import delete_items, iter_items, upload_file
from protocol.client import Session
from protocol.messages.catalogue import ItemMetadata, ListingFilters
from tests.bench.bench_catalogue import photo, write_photos
from tests.support.commerce import ServerProcess, sign_up
from tests.support.load import cpu_seconds

IN_FLIGHT: Final = 4
SMALL_PHOTOS: Final = 200
LARGE_PHOTOS: Final = 20
LARGE_SIZE: Final = (6000, 4000)
#: Runs per pipeline and set (alternating old and new).
RUNS: Final = int(os.environ.get("PIXMART_BENCH_UPLOAD_RUNS", "3"))
#: The server with the old pipeline: ``pixmart-server`` with it swapped in.
OLD_PROGRAM: Final = [sys.executable, "-m", "tests.support.reference_pipeline"]


def large_photo(seed: int) -> Image.Image:
    """A photo-like 24-megapixel picture: a catalogue-bench photo enlarged, with fresh noise."""
    rng = np.random.default_rng(seed)
    pixels = np.asarray(photo(seed).resize(LARGE_SIZE, Image.Resampling.BILINEAR), np.int16)
    pixels += rng.integers(-10, 11, pixels.shape, dtype=np.int16)  # sensor noise at full size
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def write_large_photos(folder: Path, count: int) -> list[Path]:
    """Write ``count`` 24-megapixel JPEGs (quality 90) into ``folder``, two at a time."""
    folder.mkdir(parents=True, exist_ok=True)

    def one(seed: int) -> Path:
        path = folder / f"large-{seed:03d}.jpg"
        large_photo(1000 + seed).save(path, "JPEG", quality=90)
        return path

    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(one, range(count)))


@dataclass
class _Pipeline:
    """One server and what its runs measured."""

    name: str
    server: ServerProcess
    session: Session | None = None
    rates: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)


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


async def _run_once(pipeline: _Pipeline, paths: list[Path]) -> None:
    """Upload ``paths`` once to ``pipeline``'s server, record the rate and CPU, then clear."""
    assert pipeline.session is not None and pipeline.server.process is not None
    pid = pipeline.server.process.pid
    cpu_before = cpu_seconds(pid)
    seconds = await _upload_all(pipeline.session, paths)
    cpu = cpu_seconds(pid) - cpu_before
    pipeline.rates.append(len(paths) / seconds)
    pipeline.cpu_ms.append(cpu * 1000 / len(paths))
    await _delete_everything(pipeline.session)


async def _measure(root: Path, label: str, paths: list[Path]) -> list[dict[str, Any]]:
    """Upload ``paths`` ``RUNS`` times to the old and the new pipeline, alternating."""
    pipelines = [
        _Pipeline("old", ServerProcess(root / f"{label}-old", program=OLD_PROGRAM)),
        _Pipeline("new", ServerProcess(root / f"{label}-new")),
    ]
    try:
        for pipeline in pipelines:
            await pipeline.server.start()
            pipeline.session = pipeline.server.session()
            await pipeline.session.connect()
            await sign_up(pipeline.session, "uploader")
            await _run_once(pipeline, paths[: IN_FLIGHT * 2])  # warm-up: imports, caches
            pipeline.rates.clear()
            pipeline.cpu_ms.clear()
        for _ in range(RUNS):
            for pipeline in pipelines:
                await _run_once(pipeline, paths)
    finally:
        for pipeline in pipelines:
            if pipeline.session is not None:
                await pipeline.session.close()
            pipeline.server.stop()
    return _rows(label, paths, pipelines[0], pipelines[1])


def _rows(label: str, paths: list[Path], old: _Pipeline, new: _Pipeline) -> list[dict[str, Any]]:
    megabytes = sum(path.stat().st_size for path in paths) / 1e6 / len(paths)
    megapixels = statistics.mean(_pixels(path) for path in paths) / 1e6
    load = os.getloadavg()[0]
    setting = (
        f"{len(paths)} JPEGs q90, {megapixels:.1f} MP and {megabytes:.2f} MB on average, "
        f"{IN_FLIGHT} in flight, loopback TLS, server process without the model, "
        f"{RUNS} runs alternating old/new, load average {load:.1f} after"
    )
    figures = (
        ("upload throughput", "images/s", old.rates, new.rates),
        ("upload server CPU per picture", "ms", old.cpu_ms, new.cpu_ms),
    )
    rows: list[dict[str, Any]] = []
    for what, unit, old_values, new_values in figures:
        old_median = statistics.median(old_values)
        new_median = statistics.median(new_values)
        rows.append(
            {
                "what": f"{what}, {label}",
                "setting": setting,
                "median": new_median,
                "unit": unit,
                "spread": _spread(new_values),
                "comparison": f"old pipeline {old_median:.3g} {unit} ({_spread(old_values)})",
                "ratio": new_median / old_median,
            }
        )
    return rows


def _pixels(path: Path) -> int:
    with Image.open(path) as image:
        return image.width * image.height


def _spread(values: list[float]) -> str:
    return f"{min(values):.3g}-{max(values):.3g}"


async def _measure_all(root: Path, only: Callable[[str], bool]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if only("3mp"):
        small = await asyncio.to_thread(write_photos, root / "small", SMALL_PHOTOS)
        rows += await _measure(root, "3 MP", small)
    if only("24mp"):
        large = await asyncio.to_thread(write_large_photos, root / "large", LARGE_PHOTOS)
        rows += await _measure(root, "24 MP", large)
    return rows


def run(sets: tuple[str, ...] = ("3mp", "24mp")) -> list[dict[str, Any]]:
    """Run the benchmark on both sets; rows for throughput and CPU (see ``tests/bench/run.py``)."""
    with tempfile.TemporaryDirectory(prefix="pixmart-bench-uploads-") as tmp:
        return asyncio.run(_measure_all(Path(tmp), lambda name: name in sets))


if __name__ == "__main__":
    for result in run(tuple(sys.argv[1:]) or ("3mp", "24mp")):
        print(
            f"{result['what']} [{result['setting']}]: {result['median']:.3g} {result['unit']}"
            f" ({result['spread']}); {result['comparison']}; ratio {result['ratio']:.2f}"
        )
