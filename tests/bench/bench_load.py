"""Provides the load benchmarks: listing latency under many clients, and large-file uploads.

1. Batch latency at 10,000 items with 1, 50 and 200 concurrent clients. The catalogue is seeded
   by ``bench_catalogue``'s seeding helper (real 256 px WebP thumbnails, 5 sellers). The server
   is a real ``pixmart-server`` process (no image model) so its CPU is its own; the clients run
   in one (1 client) or two (more clients) other processes. Every client is its own
   :class:`~protocol.client.Session` and connection, resumed with the token of a logged-in
   seller, and first fetches its first batch untimed (so 200 simultaneous "first batch + total
   count" requests do not stand for steady paging). Then all clients start together and each
   asks for batches of 24, following the cursor (newest, price up or price down, by client),
   starting over at the end of the listing. Two kinds of clients:

   * flat out (1, 50, 200 clients): the next batch is asked for as soon as one arrives (at most
     one request start per 20 ms per client, which keeps a lone client under the server's
     per-connection rate limit of 100/s and is far more than 50 or 200 clients get): a closed
     loop that finds the server's limit, where latency is about clients / throughput;
   * people scrolling (200 clients): each waits 0.5-1.5 s (uniform, seeded) after every batch,
     and they start spread over 1.5 s, as 200 people browsing at once would.

   Latency is measured in the clients: request sent to reply decoded. p50 and p99 are taken
   over all requests of a run; each row gives the median over runs and the runs' range. The
   server's and the client processes' CPU use during the runs are reported too (the machine
   has 2 cores), as is the machine's load average (other work on the machine included).
   Errors (failed, timed-out or malformed batches: a short batch before the end, an item twice
   in one pass, a card without thumbnail) are counted and reported in their own row; any
   setting with errors says so in every row.
2. Upload bandwidth for large files: two JPEGs (quality 95) and one PNG of RGB noise, 21-28 MB
   each, uploaded at once (4 allowed in flight) by :func:`protocol.catalogue_client.upload_file`
   over loopback TLS to a ``pixmart-server`` process: the transfer rate (until the server
   acknowledged the last chunk of every file) and the end-to-end rate (also the server's hash
   check, full decode, clean copy and derivatives). The files' SHA-256 are computed once,
   untimed. The items are deleted after each run so no upload is a duplicate.

Run alone with ``.venv/bin/python -m tests.bench.bench_load``; ``make bench`` collects ``run()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Final

from protocol.catalogue_client import delete_items, sha256_of_file, upload_file
from protocol.client import Session
from protocol.messages.catalogue import ItemMetadata, PictureMode
from tests.bench.bench_catalogue import ITEMS
from tests.bench.bench_catalogue import _seed as seed_catalogue
from tests.support.commerce import PASSWORD, ServerProcess, sign_up
from tests.support.load import (
    PagingPlan,
    PagingResult,
    cpu_seconds,
    paging_clients,
    percentile,
    summary,
    write_noise_picture,
)


@dataclass(frozen=True)
class Setting:
    """Clients, the timed batches each asks for, and their think time (``None``: flat out)."""

    clients: int
    pages: int
    think: tuple[float, float] | None = None

    def describe(self) -> str:
        """How the clients behave, for a row's setting."""
        who = f"{self.clients} client{'s' if self.clients > 1 else ''} x {self.pages} batches"
        if self.think is None:
            return f"{who}, flat out (next batch as soon as one arrives)"
        low, high = self.think
        return f"{who}, each pausing {low:g}-{high:g} s per batch (people scrolling)"


#: About 200 to 4,000 samples per run; the flat-out settings find the server's limit, the last
#: one is 200 people browsing at once.
SETTINGS: Final = (
    Setting(1, 200),
    Setting(50, 40),
    Setting(200, 20),
    Setting(200, 15, think=(0.5, 1.5)),
)
RUNS: Final = 3
BATCH: Final = 24
TARGET_P99_MS: Final = 500.0
#: Sellers created by the seeding helper; the clients resume their sessions.
SELLERS: Final = 5
#: Seconds allowed for client processes to connect, and for one run.
SETUP_TIMEOUT: Final = 120.0
RUN_TIMEOUT: Final = 300.0

#: Large files: (width, height, format); noise makes each 21-28 MB.
LARGE_FILES: Final = ((5600, 3700, "JPEG"), (5200, 3600, "JPEG"), (2900, 2900, "PNG"))
UPLOAD_RUNS: Final = 3
IN_FLIGHT: Final = 4


# -- listing under load --------------------------------------------------------------------


@dataclass(frozen=True)
class _Run:
    """One run of one setting: the pooled samples of every client process."""

    latencies_ms: list[float]
    errors: list[str]
    requests: int
    batches_per_s: float
    server_cpu: float
    client_cpu: float
    thumbnail_kb: float
    #: Picture bytes per batch that crossed the wire (inline or fetched), KB.
    wire_kb: float = 0.0
    #: Cores the rest of the machine kept busy meanwhile (other work, the kernel's own), beside
    #: the server's and the clients': with 2 cores, what it takes comes out of theirs.
    other_cpu: float = 0.0


async def _tokens(server: ServerProcess) -> tuple[str, ...]:
    """Log each seeded seller in once; return their session tokens."""
    tokens: list[str] = []
    for n in range(SELLERS):
        session = server.session()
        await session.connect()
        try:
            await session.login(f"seller{n}", PASSWORD)
            assert session.token is not None
            tokens.append(session.token)
        finally:
            await session.close()  # the server session (token) stays valid
    return tuple(tokens)


def _receive(pipe: Connection, timeout: float) -> Any:
    """The next message from a client process, or ``TimeoutError``."""
    if not pipe.poll(timeout):
        raise TimeoutError("a client process did not answer in time")
    return pipe.recv()


def _one_run(
    server: ServerProcess,
    tokens: tuple[str, ...],
    setting: Setting,
    *,
    pictures: PictureMode = PictureMode.UNSENT,
    window: int | None = None,
) -> _Run:
    """Start the client processes, let them page together, pool what they measured.

    ``pictures`` and ``window`` as in :class:`~tests.support.load.PagingPlan`.
    """
    clients = _ClientProcesses(server, tokens, setting, pictures=pictures, window=window)
    try:
        return clients.run()
    finally:
        clients.close()


class _ClientProcesses:
    """The client processes of a server's runs, connected and ready (started on construction):
    the timed batches begin when :meth:`run` is called, so a benchmark can ready the clients of
    two servers first and time one run right after the other. Each :meth:`run` is a round of
    ``setting.pages`` batches per client on the same connections, continuing their listings.

    Args:
        server: The server they page.
        tokens: Session tokens the clients resume (client ``n`` takes ``tokens[n % len]``).
        setting: Clients, batches (per run) and think time.
        pictures: As in :class:`~tests.support.load.PagingPlan`.
        window: As in :class:`~tests.support.load.PagingPlan`.
        store_bytes: As in :class:`~tests.support.load.PagingPlan`.
    """

    def __init__(
        self,
        server: ServerProcess,
        tokens: tuple[str, ...],
        setting: Setting,
        *,
        pictures: PictureMode = PictureMode.UNSENT,
        window: int | None = None,
        store_bytes: int | None = None,
    ) -> None:
        self.server = server
        self.setting = setting
        context = multiprocessing.get_context("spawn")
        processes = 1 if setting.clients == 1 else 2
        shares = [
            setting.clients // processes + (1 if n < setting.clients % processes else 0)
            for n in range(processes)
        ]
        self._workers: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []
        self._setup_errors: list[str] = []
        first = 0
        try:
            for share in shares:
                ours, theirs = context.Pipe()
                plan = PagingPlan(
                    url=server.url,
                    fingerprint=server.fingerprint,
                    tokens=tokens,
                    clients=share,
                    pages=setting.pages,
                    batch=BATCH,
                    first_client=first,
                    think=setting.think,
                    pictures=pictures,
                    window=window,
                    store_bytes=store_bytes,
                )
                child = context.Process(target=paging_clients, args=(plan, theirs), daemon=True)
                child.start()
                theirs.close()
                self._workers.append((child, ours))
                first += share
            for _, pipe in self._workers:
                kind, errors = _receive(pipe, SETUP_TIMEOUT)
                assert kind == "ready"
                self._setup_errors += errors
        except BaseException:
            self.close()
            raise

    def run(self) -> _Run:
        """Let the clients page a round, and pool what they measured."""
        server = self.server
        assert server.process is not None
        cpu_before = cpu_seconds(server.process.pid)
        busy_before = _busy_cpu_seconds()
        started = time.perf_counter()
        for _, pipe in self._workers:
            pipe.send("go")
        results: list[PagingResult] = []
        for _, pipe in self._workers:
            kind, result = _receive(pipe, RUN_TIMEOUT)
            assert kind == "done"
            results.append(result)
        wall = time.perf_counter() - started
        server_cpu = (cpu_seconds(server.process.pid) - cpu_before) / wall
        busy = (_busy_cpu_seconds() - busy_before) / wall
        latencies = [ms for result in results for ms in result.latencies_ms]
        errors = self._setup_errors + [error for result in results for error in result.errors]
        self._setup_errors = []  # reported with the first round only
        batches = sum(result.batches for result in results)
        thumbnail_bytes = sum(result.thumbnail_bytes for result in results)
        wire_bytes = sum(result.wire_bytes for result in results)
        return _Run(
            latencies_ms=latencies,
            errors=errors,
            requests=self.setting.clients * self.setting.pages,
            batches_per_s=batches / max(result.seconds for result in results),
            server_cpu=server_cpu,
            client_cpu=sum(result.cpu_seconds / result.seconds for result in results),
            thumbnail_kb=thumbnail_bytes / max(1, batches) / 1024,
            wire_kb=wire_bytes / max(1, batches) / 1024,
            other_cpu=busy - server_cpu - sum(result.cpu_seconds for result in results) / wall,
        )

    def close(self) -> None:
        """End the client processes."""
        for process, pipe in self._workers:
            with contextlib.suppress(OSError):  # it may have exited already
                pipe.send("stop")
            pipe.close()
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
                process.join()
        self._workers = []


def _busy_cpu_seconds() -> float:
    """CPU seconds every core of the machine has spent busy (not idle or waiting) so far."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(value) for value in stat.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _latency_rows(clients: Setting, runs: list[_Run]) -> list[dict[str, Any]]:
    """The rows of one setting: p50, p99, throughput, CPU of server and clients, errors."""
    errors = sum(len(run.errors) for run in runs)
    requests = sum(run.requests for run in runs)
    kb = statistics.median(run.thumbnail_kb for run in runs)
    setting = (
        f"{ITEMS:,} items, batches of {BATCH} thumbnails (~{kb:.0f} KB), "
        f"{clients.describe()}, {RUNS} runs, server process"
    )
    if errors:
        setting += f"; ERRORS: {errors} of {requests} requests"
    p50s = [percentile(run.latencies_ms, 50) for run in runs]
    p99s = [percentile(run.latencies_ms, 99) for run in runs]
    rates = [run.batches_per_s for run in runs]
    cpu = [run.server_cpu * 100 for run in runs]
    client_cpu = [run.client_cpu * 100 for run in runs]
    rows = [
        {
            "what": "batch latency p50",
            "setting": setting,
            "median": statistics.median(p50s),
            "unit": "ms",
            "spread": summary(p50s),
        },
        {
            "what": "batch latency p99",
            "setting": setting,
            "median": statistics.median(p99s),
            "unit": "ms",
            "spread": summary(p99s),
        },
        {
            "what": "batches served",
            "setting": setting,
            "median": statistics.median(rates),
            "unit": "batches/s",
            "spread": summary(rates),
        },
        {
            "what": "server CPU while paging",
            "setting": setting,
            "median": statistics.median(cpu),
            "unit": "% of a core",
            "spread": summary(cpu),
        },
        {
            "what": "client processes' CPU while paging",
            "setting": setting,
            "median": statistics.median(client_cpu),
            "unit": "% of a core",
            "spread": summary(client_cpu),
        },
        {
            "what": "errors while paging",
            "setting": setting,
            "median": errors,
            "unit": "errors",
            "spread": f"of {requests} requests",
        },
    ]
    if errors:
        first_errors = sorted({error for run in runs for error in run.errors})[:3]
        rows[-1]["examples"] = first_errors
    return rows


async def _listing_server(root: Path) -> tuple[ServerProcess, tuple[str, ...]]:
    data_dir = root / "listing-server"
    await seed_catalogue(data_dir)
    server = ServerProcess(data_dir)
    await server.start()
    try:
        return server, await _tokens(server)
    except BaseException:
        server.stop()
        raise


def measure_listing(root: Path) -> list[dict[str, Any]]:
    """Batch latency p50/p99 at 1, 50 and 200 clients (see the module docstring)."""
    server, tokens = asyncio.run(_listing_server(root))
    rows: list[dict[str, Any]] = []
    loads: list[float] = []
    try:
        _one_run(server, tokens, Setting(20, 5))  # warm-up: caches, the server's reader threads
        baseline_p50 = None
        for setting in SETTINGS:
            runs = []
            for _ in range(RUNS):
                loads.append(os.getloadavg()[0])
                runs.append(_one_run(server, tokens, setting))
            setting_rows = _latency_rows(setting, runs)
            p50_row, p99_row = setting_rows[0], setting_rows[1]
            if baseline_p50 is None:
                baseline_p50 = p50_row["median"]
            else:
                p50_row["comparison"] = "1 client"
                p50_row["ratio"] = p50_row["median"] / baseline_p50
            p99_row["comparison"] = f"target < {TARGET_P99_MS:.0f} ms"
            p99_row["ratio"] = p99_row["median"] / TARGET_P99_MS
            rows += setting_rows
    finally:
        server.stop()
    rows.append(
        {
            "what": "machine load before each listing run",
            "setting": f"1-minute load average, {os.cpu_count()} cores (other work included)",
            "median": statistics.median(loads),
            "unit": "",
            "spread": summary(loads),
        }
    )
    return rows


# -- large uploads -------------------------------------------------------------------------


async def _upload_run(
    session: Session, paths: list[Path], hashes: list[str]
) -> tuple[float, float, list[int]]:
    """Upload every file at once (up to ``IN_FLIGHT``); return transfer s, total s, item ids.

    The files' SHA-256 are passed in (computed once, untimed): the figures are the protocol's
    and the server's, not the client's hashing.
    """
    transferred: dict[Path, float] = {}
    started = time.perf_counter()
    limit = asyncio.Semaphore(IN_FLIGHT)

    async def one(path: Path, sha256: str) -> int:
        def progress(done: int, size: int) -> None:
            if done >= size and path not in transferred:
                transferred[path] = time.perf_counter()

        async with limit:
            created = await upload_file(
                session,
                path,
                ItemMetadata(title=path.stem, price_cents=990),
                sha256=sha256,
                progress=progress,
            )
        assert not created.duplicate, "each run must upload, not find a duplicate"
        return created.item.id

    ids = await asyncio.gather(*(one(path, sha) for path, sha in zip(paths, hashes, strict=True)))
    total = time.perf_counter() - started
    assert len(transferred) == len(paths)
    return max(transferred.values()) - started, total, list(ids)


async def _measure_uploads(root: Path) -> list[dict[str, Any]]:
    paths = [
        await asyncio.to_thread(
            write_noise_picture,
            root / "large" / f"large-{n}.{fmt.lower().replace('jpeg', 'jpg')}",
            (width, height),
            fmt,
            n,
        )
        for n, (width, height, fmt) in enumerate(LARGE_FILES)
    ]
    sizes = [path.stat().st_size for path in paths]
    hashes = [await asyncio.to_thread(sha256_of_file, path) for path in paths]
    megabytes = sum(sizes) / 1e6
    server = ServerProcess(root / "upload-server")
    await server.start()
    session = server.session()
    transfer_rates: list[float] = []
    total_rates: list[float] = []
    try:
        await session.connect()
        await sign_up(session, "uploader")
        for _ in range(UPLOAD_RUNS):
            transfer_s, total_s, ids = await _upload_run(session, paths, hashes)
            transfer_rates.append(megabytes / transfer_s)
            total_rates.append(megabytes / total_s)
            results = await delete_items(session, ids)
            assert all(result.error is None for result in results)
    finally:
        await session.close()
        server.stop()
    described = ", ".join(
        f"{fmt} {width}x{height} {size / 1e6:.1f} MB"
        for (width, height, fmt), size in zip(LARGE_FILES, sizes, strict=True)
    )
    setting = (
        f"{len(paths)} files of noise ({described}), all at once ({IN_FLIGHT} allowed in "
        f"flight), 1 MiB chunks, loopback TLS, server process, {UPLOAD_RUNS} runs"
    )
    return [
        {
            "what": "large upload bandwidth, transfer",
            "setting": setting,
            "median": statistics.median(transfer_rates),
            "unit": "MB/s",
            "spread": summary(transfer_rates),
        },
        {
            "what": "large upload bandwidth, end to end",
            "setting": f"{setting}; incl. the server's hash check, decode, clean copy, derivatives",
            "median": statistics.median(total_rates),
            "unit": "MB/s",
            "spread": summary(total_rates),
            "comparison": "transfer only",
            "ratio": statistics.median(total_rates) / statistics.median(transfer_rates),
        },
    ]


def run() -> list[dict[str, Any]]:
    """Run both benchmarks; one row per figure (see ``tests/bench/run.py``)."""
    with tempfile.TemporaryDirectory(prefix="pixmart-bench-load-") as tmp:
        root = Path(tmp)
        rows = measure_listing(root)
        rows += asyncio.run(_measure_uploads(root))
    return rows


def main() -> None:
    """Print the figures."""
    for row in run():
        extra = f"  [{row['comparison']}: x{row['ratio']:.2f}]" if row.get("comparison") else ""
        print(
            f"{row['what']:<36} {row['median']:>10.4g} {row['unit']:<12} ({row['spread']})"
            f"{extra}\n    {row['setting']}"
        )
        for example in row.get("examples", []):
            print(f"    e.g. {example}")


if __name__ == "__main__":
    main()
