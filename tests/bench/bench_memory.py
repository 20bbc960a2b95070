"""Provides the memory benchmark: server peak RSS at 100,000 items with their embeddings loaded.

A data dir is seeded straight through the storage layer: 5 sellers, 100,000 items (each its own
picture row with a real ~10 KB WebP thumbnail; no picture files) and one ``embeddings`` row per
picture of the current :data:`~backend.vision.embedder.MODEL_VERSION` (random unit vectors,
1280 float16 values), so the server has nothing to re-embed. Then a real ``pixmart-server``
process serves it *with* the image model: it listens at once and, in the background, loads the
int8 TFLite embedder (LiteRT) and all 100,000 vectors into its
:class:`~backend.vision.index.VectorIndex`, which then builds its IVF lists ("graph" below) in a
background thread (faiss; TensorFlow is never imported by a serving process). The benchmark waits
(bounded) until ``GET /healthz`` says ``"vision": "ready"``, so the model and the index are in
memory before anything is measured, as they were when a start only ended there, and then gives
the graph up to :data:`GRAPH_WAIT` seconds to be built. A client then runs 3 similar-to-item
searches (through the graph) and 2 searches by picture (the embedder runs on an uploaded JPEG),
plus a first catalogue batch. The
figure is the server process's ``VmHWM`` (peak resident set, all threads) read from
``/proc/<pid>/status`` while it still runs, i.e. ``ru_maxrss``.

Rows, side by side on the same data dir:

* first start with an empty model cache (the packaged weights are converted to TFLite in a
  child process, so Keras and the converter never count against the server: ``VmHWM`` is per
  process), one run;
* warm start (model cache present: what every later start costs), three runs;
* the same server started with ``--no-vision``, three runs, for what vision adds.

Each row's setting also names the start: seconds from spawning the process to image search ready
(to listening, without the model), and to its listening line.

Run alone with ``.venv/bin/python -m tests.bench.bench_memory``; ``make bench`` collects ``run()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from backend.config import ServerConfig
from backend.server import PixmartServer
from protocol.catalogue_client import browse
from protocol.vision_client import search_by_picture, similar_to_item
from tests.support.catalogue import catalogue as catalogue_of
from tests.support.catalogue import jpeg
from tests.support.commerce import PASSWORD, ServerProcess, _server_command, read_listening
from tests.support.health import wait_for_health
from tests.support.load import proc_memory, seed_items, small_thumbnail, summary

ITEMS: Final = 100_000
SELLERS: Final = 5
DIM: Final = 1280
TARGET_BYTES: Final = 1.5e9
WARM_RUNS: Final = 3
#: Seconds a start may take to image search ready: the first one converts the model, then 100k
#: vectors load.
START_TIMEOUT: Final = 600.0
#: Seconds the similar-image graph may take to build once image search is ready (it is built in
#: the background, searches meanwhile ranking exactly).
GRAPH_WAIT: Final = 900.0
#: What the server logs when its similar-image graph has taken over, or could not be built.
_GRAPH_DONE: Final = (b"similar-image lists ready", b"could not build the similar-image lists")


@dataclass
class VisionServerProcess(ServerProcess):
    """A ``pixmart-server`` process like :class:`ServerProcess`, with the image model if asked."""

    vision: bool = True
    #: Seconds from spawning the process to its listening line, and to image search ready
    #: (the same, without the model), set by :meth:`start`.
    listening_s: float = 0.0
    ready_s: float = 0.0
    #: Seconds from image search ready to the similar-image graph taking over (0 without one).
    graph_s: float = 0.0

    async def start(self, *, port: int = 0, timeout: float = START_TIMEOUT) -> None:
        """Start the process; with the model, also wait until it is ready and its graph built.

        The server listens before its model has warmed up (a first start converts it for half a
        minute); searches before that would only be answered ``unavailable``. Its log (standard
        error) goes to a file in the data dir, which tells when the graph is built.
        """
        started = time.perf_counter()
        log_path = self.data_dir / f"server-{time.time_ns()}.log"
        command = [
            _server_command(),
            "--data-dir",
            str(self.data_dir),
            "serve",
            *self.serve_options(port),
        ]
        with log_path.open("wb") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=log, start_new_session=True
            )
        self.port, self.fingerprint = await read_listening(self.process, timeout, "the server")
        self.listening_s = time.perf_counter() - started
        if self.vision:
            await asyncio.to_thread(
                wait_for_health,
                self.port,
                vision="ready",
                timeout=max(1.0, timeout - self.listening_s),
                process=self.process,
            )
        self.ready_s = time.perf_counter() - started
        if self.vision:
            await _wait_for_graph(log_path, self.process)
            self.graph_s = time.perf_counter() - started - self.ready_s

    def serve_options(self, port: int) -> list[str]:
        """The port, and ``--no-vision`` unless :attr:`vision`."""
        return ["--port", str(port)] + ([] if self.vision else ["--no-vision"])


async def _wait_for_graph(log_path: Path, process: subprocess.Popen[bytes]) -> None:
    """Wait (bounded) until the server's log says its similar-image graph is done."""
    deadline = time.monotonic() + GRAPH_WAIT
    while not any(mark in log_path.read_bytes() for mark in _GRAPH_DONE):
        if process.poll() is not None:
            raise RuntimeError(f"the server exited ({process.returncode}) before its graph")
        if time.monotonic() > deadline:
            raise TimeoutError(f"no similar-image graph after {GRAPH_WAIT:.0f} s")
        await asyncio.sleep(1.0)


# -- seeding -------------------------------------------------------------------------------


async def _seed(data_dir: Path) -> None:
    """Seed ``ITEMS`` items and their embeddings (see the module docstring)."""
    from backend.vision.embedder import MODEL_VERSION

    server = PixmartServer(ServerConfig(data_dir=data_dir, port=0, enable_vision=False))
    with contextlib.redirect_stdout(io.StringIO()):  # the start-up banner
        await server.start()
    try:
        owners = [
            (await server.accounts.create_account(f"seller{n}", PASSWORD)).id
            for n in range(SELLERS)
        ]
        thumbnails = [small_thumbnail(seed) for seed in range(6)]
        await seed_items(
            server.db,
            owners,
            ITEMS,
            thumbnails=thumbnails,
            preview=thumbnails[0],
            derivatives=catalogue_of(server).derivatives,
        )
        shas = [str(row[0]) for row in await server.db.fetchall("SELECT sha256 FROM pictures")]
        rng = np.random.default_rng(3)
        now = time.time()
        for start in range(0, len(shas), 10_000):  # bounded memory in this process
            chunk = shas[start : start + 10_000]
            vectors = rng.standard_normal((len(chunk), DIM), dtype=np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            blobs = vectors.astype("<f2")
            async with server.db.transaction() as conn:
                await conn.executemany(
                    "INSERT INTO embeddings (sha256, model_version, vector, created_at)"
                    " VALUES (?, ?, ?, ?)",
                    [(sha, MODEL_VERSION, blobs[n].tobytes(), now) for n, sha in enumerate(chunk)],
                )
    finally:
        await server.stop()


# -- one measured start --------------------------------------------------------------------


async def _measure(data_dir: Path, *, vision: bool) -> dict[str, float]:
    """Start a server, use it, return its peak and current RSS (bytes) and start seconds."""
    server = VisionServerProcess(data_dir, vision=vision)
    await server.start()  # with vision, until the model and the index are loaded
    assert server.process is not None
    pid = server.process.pid
    session = server.session()
    try:
        after_start = proc_memory(pid)
        await session.connect()
        await session.login("seller0", PASSWORD)
        first = await browse(session, limit=24)
        assert first.total is not None and first.total > ITEMS * 0.8
        if vision:
            for card in first.items[:3]:
                similar = await similar_to_item(session, card.id, limit=24)
                assert len(similar.items) == 24
            for seed in range(2):
                found = await search_by_picture(session, jpeg(seed, size=(320, 240)), limit=24)
                assert len(found.items) == 24
        memory = proc_memory(pid)
    finally:
        await session.close()
        server.stop()
    return {
        "peak": memory["VmHWM"],
        "rss": memory["VmRSS"],
        "after_start": after_start["VmRSS"],
        "start_s": server.ready_s,
        "listening_s": server.listening_s,
        "graph_s": server.graph_s,
    }


def _row(what: str, setting: str, runs: list[dict[str, float]]) -> dict[str, Any]:
    peaks = [run["peak"] / 1e6 for run in runs]
    rss = statistics.median(run["rss"] for run in runs) / 1e6
    start_s = statistics.median(run["start_s"] for run in runs)
    listening_s = statistics.median(run["listening_s"] for run in runs)
    graph_s = statistics.median(run["graph_s"] for run in runs)
    graph = f", similar-image graph {graph_s:.0f} s later" if graph_s else ""
    return {
        "what": what,
        "setting": f"{setting}; RSS afterwards {rss:,.0f} MB, "
        f"start {start_s:.1f} s (listening after {listening_s:.1f} s{graph})",
        "median": statistics.median(peaks),
        "unit": "MB",
        "spread": summary(peaks) if len(runs) > 1 else "single run",
    }


async def _bench(root: Path) -> list[dict[str, Any]]:
    data_dir = root / "memory-server"
    started = time.perf_counter()
    await _seed(data_dir)
    seed_s = time.perf_counter() - started
    models = data_dir / "models"
    shutil.rmtree(models, ignore_errors=True)  # the first start below converts the model
    cold = [await _measure(data_dir, vision=True)]
    warm = [await _measure(data_dir, vision=True) for _ in range(WARM_RUNS)]
    plain = [await _measure(data_dir, vision=False) for _ in range(WARM_RUNS)]
    what = "server peak RSS (VmHWM)"
    base = f"{ITEMS:,} items, {ITEMS:,} x {DIM} float16 embeddings, started + 1 batch"
    searches = " + 3 similar-to-item + 2 search-by-picture"
    rows = [
        _row(what, f"{base}{searches}, vision, warm model cache", warm),
        _row(what, f"{base}{searches}, vision, first start (converts the model)", cold),
        _row(what, f"{base}, --no-vision", plain),
    ]
    rows[0]["comparison"] = f"target < {TARGET_BYTES / 1e9:.1f} GB"
    rows[0]["ratio"] = rows[0]["median"] * 1e6 / TARGET_BYTES
    rows[1]["comparison"] = "warm start"
    rows[1]["ratio"] = rows[1]["median"] / rows[0]["median"]
    rows[2]["comparison"] = "vision, warm"
    rows[2]["ratio"] = rows[2]["median"] / rows[0]["median"]
    db_mb = (data_dir / "pixmart.sqlite3").stat().st_size / 1e6
    rows.append(
        {
            "what": "seeding for the memory benchmark",
            "setting": f"{ITEMS:,} items + embeddings through the storage layer; "
            f"database {db_mb:,.0f} MB",
            "median_s": round(seed_s, 1),
            "spread": "single run",
        }
    )
    return rows


def run() -> list[dict[str, Any]]:
    """Run the benchmark; one row per figure (see ``tests/bench/run.py``)."""
    with tempfile.TemporaryDirectory(prefix="pixmart-bench-memory-") as tmp:
        return asyncio.run(_bench(Path(tmp)))


if __name__ == "__main__":
    for result in run():
        figure = result.get("median", result.get("median_s"))
        unit = result.get("unit", "s")
        extra = f"  [{result['comparison']}: x{result['ratio']:.2f}]" if "ratio" in result else ""
        print(f"{result['what']}: {figure:,.1f} {unit} ({result['spread']}){extra}")
        print(f"    {result['setting']}")
