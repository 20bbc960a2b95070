"""Provides the cluster benchmark of issue #15: one SQLite server against two instances.

1. Listing under load. The same 10,000-item shop (seeded by :func:`tests.bench.bench_storage.
   seed_shop`: 5 sellers, six shared real WebP thumbnails) is served by (a) one ``pixmart-server``
   process on its SQLite file and local blobs, and (b) two ``pixmart-server`` processes on one
   PostgreSQL database, with pictures in the S3-compatible object store (SeaweedFS, a prefix of
   its own), both serving one shared certificate, behind haproxy (TLS passthrough,
   least-connections). Both run the test suite's limits (``bench_storage.server_config``) and no
   image model. 200 clients page flat out, then 200 people scroll (0.5-1.5 s per batch), exactly
   as in ``bench_load`` (:func:`tests.support.load.paging_clients`, two client processes); runs
   alternate between the two set-ups so drift in the machine's load hits both alike. p50 and p99
   are over all requests of a run; each row is the median over runs. CPU is reported per group
   of processes (servers; PostgreSQL's backends and haproxy; clients) so the cost per batch of
   each set-up can be read off. Listings read thumbnails from the database, so the object store
   is idle while paging: it is there because the instances are configured as in production.
2. Fail-over. With both instances up, 100 logged-in clients connect through haproxy (it splits
   them between the instances) and each asks for a batch about every 0.2-0.4 s. One instance is
   SIGKILLed; the figure is the time from the kill to the moment every client has had a batch
   answered again (the clients' own reconnect, with the protocol's default backoff, and session
   resume through haproxy to the survivor). Requests that failed instead of being retried, and
   clients that lost their login, are counted. The killed instance is restarted on its port
   between kills, which alternate between the instances; the row is the median over kills.

This machine has 2 cores shared by everything here: in (b) two server processes, PostgreSQL's
backends, haproxy and the client processes compete for them, so the figures show the cost of the
extra hops and processes on one machine, not the capacity two machines would add. Flat out,
the figures are bounded by the machine, not by either set-up; the scrolling figures (the
machine far from full) are the fairer latency comparison.

Run alone with ``.venv/bin/python -m tests.bench.run bench_cluster``; ``make bench`` collects
``run()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Final

from backend import tls
from backend.server import PixmartServer
from protocol.catalogue_client import browse
from protocol.client import Session
from protocol.trust import TrustPolicy
from tests.bench.bench_load import Setting, _receive, _Run
from tests.bench.bench_load import _tokens as seller_tokens
from tests.bench.bench_storage import Pictures, Shop, database_cpu, seed_shop, server_config
from tests.support.cluster import shared_certificate
from tests.support.commerce import ServerProcess, read_listening
from tests.support.haproxy import Haproxy, ensure_haproxy
from tests.support.load import (
    REQUEST_TIMEOUT,
    PagingPlan,
    PagingResult,
    cpu_seconds,
    paging_clients,
    percentile,
    summary,
)
from tests.support.pg import Template, postgres_server, with_database
from tests.support.s3 import ObjectStore, fresh_prefix, object_store_server

ROOT: Final = Path(__file__).resolve().parents[2]
ITEMS: Final = 10_000
BATCH: Final = 24
SINGLE: Final = "one SQLite server"
CLUSTER: Final = "two instances on PostgreSQL + object store behind haproxy"
SETTINGS: Final = (Setting(200, 20), Setting(200, 15, think=(0.5, 1.5)))
RUNS: Final = 3
#: Fail-over: clients, their pause between batches, kills (alternating instances).
FAILOVER_CLIENTS: Final = 100
FAILOVER_PAUSE: Final = (0.2, 0.4)
KILLS: Final = 3
#: Seconds of paging before a kill, and the longest a recovery may take before it is an error.
BEFORE_KILL: Final = 2.0
RECOVERY_TIMEOUT: Final = 60.0
TARGET_RECOVERY_S: Final = 5.0
SETUP_TIMEOUT: Final = 120.0
RUN_TIMEOUT: Final = 300.0
START_TIMEOUT: Final = 60.0
#: What the server processes read their storage from; set by this module only.
_STORAGE_VARIABLES: Final = (
    "PIXMART_DATABASE",
    "PIXMART_BLOBS",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
)


# -- servers -------------------------------------------------------------------------------


@dataclass
class BenchServer(ServerProcess):
    """A server process with the suite's limits, its storage given in the environment only.

    ``storage`` holds ``PIXMART_DATABASE``, ``PIXMART_BLOBS`` and the store's credentials (none:
    SQLite and local blobs); URLs with passwords never reach a command line. ``cert`` and
    ``key`` make it serve a shared certificate.
    """

    storage: dict[str, str] = field(default_factory=dict)
    cert: Path | None = None
    key: Path | None = None

    async def start(self, *, port: int = 0, timeout: float = START_TIMEOUT) -> None:
        """Start the process (on ``port``, 0 for a free one) and wait until it listens."""
        env = {k: v for k, v in os.environ.items() if k not in _STORAGE_VARIABLES}
        env.update(self.storage)
        command = [sys.executable, "-m", __name__, "serve", str(self.data_dir), str(port)]
        if self.cert is not None and self.key is not None:
            command += [str(self.cert), str(self.key)]
        self.port, self.fingerprint = 0, ""
        with open(self.data_dir / "bench-server.log", "ab") as log:
            self.process = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=log,
                env=env,
                cwd=ROOT,
                start_new_session=True,
            )
        self.port, self.fingerprint = await read_listening(
            self.process, timeout, f"a bench server (see {self.data_dir / 'bench-server.log'})"
        )


def serve(data_dir: Path, port: int, cert: Path | None, key: Path | None) -> None:
    """The entry point of a :class:`BenchServer` process: serve until SIGTERM."""
    config = replace(
        server_config(data_dir, os.environ.get("PIXMART_DATABASE")),
        port=port,
        cert_file=cert,
        key_file=key,
    )
    asyncio.run(PixmartServer(config).serve_forever())


@dataclass
class Target:
    """Where clients connect, the certificate they pin, and the server processes behind it."""

    name: str
    url: str
    fingerprint: str
    servers: list[BenchServer]
    balancer: Haproxy | None = None
    #: The PostgreSQL database the instances share (``None``: SQLite).
    database: str | None = None

    def pids(self) -> list[int]:
        """The server processes' pids."""
        return [s.process.pid for s in self.servers if s.process and s.process.poll() is None]

    def helper_cpu(self) -> dict[int, float]:
        """CPU seconds so far of the PostgreSQL backends and haproxy, by pid."""
        used = asyncio.run(database_cpu(self.database)) or {}
        if self.balancer is not None:
            with contextlib.suppress(OSError, ValueError, IndexError):
                pid = int(self.balancer.pid_path.read_text().split()[0])
                used[pid] = cpu_seconds(pid)
        return used


# -- paging --------------------------------------------------------------------------------


@contextlib.contextmanager
def _client_processes(
    target: Target, plans: Sequence[PagingPlan], entry: Any
) -> Iterator[list[Connection]]:
    """Client processes running ``entry(plan, pipe)``; their pipes, closed and joined after."""
    context = multiprocessing.get_context("spawn")
    workers: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []
    try:
        for plan in plans:
            ours, theirs = context.Pipe()
            child = context.Process(target=entry, args=(plan, theirs), daemon=True)
            child.start()
            theirs.close()
            workers.append((child, ours))
        yield [pipe for _, pipe in workers]
    finally:
        for process, pipe in workers:
            pipe.close()
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
                process.join()


def _plans(target: Target, tokens: tuple[str, ...], setting: Setting) -> list[PagingPlan]:
    """Two client processes' plans sharing ``setting.clients`` between them."""
    shares = [setting.clients - setting.clients // 2, setting.clients // 2]
    return [
        PagingPlan(
            url=target.url,
            fingerprint=target.fingerprint,
            tokens=tokens,
            clients=share,
            pages=setting.pages,
            batch=BATCH,
            first_client=0 if n == 0 else shares[0],
            think=setting.think,
        )
        for n, share in enumerate(shares)
    ]


def paging_run(target: Target, tokens: tuple[str, ...], setting: Setting) -> PagingRun:
    """One run of ``bench_load``'s paging clients against ``target``; server CPU over all pids."""
    with _client_processes(target, _plans(target, tokens, setting), paging_clients) as pipes:
        setup_errors: list[str] = []
        for pipe in pipes:
            kind, errors = _receive(pipe, SETUP_TIMEOUT)
            assert kind == "ready"
            setup_errors += errors
        pids = target.pids()
        cpu_before = sum(cpu_seconds(pid) for pid in pids)
        helpers_before = target.helper_cpu()
        started = time.perf_counter()
        for pipe in pipes:
            pipe.send("go")
        results: list[PagingResult] = []
        for pipe in pipes:
            kind, result = _receive(pipe, RUN_TIMEOUT)
            assert kind == "done"
            results.append(result)
        wall = time.perf_counter() - started
        server_cpu = (sum(cpu_seconds(pid) for pid in pids) - cpu_before) / wall
        # Backends the pools opened during the run count from zero.
        helpers = target.helper_cpu()
        helper_cpu = sum(s - helpers_before.get(pid, 0.0) for pid, s in helpers.items()) / wall
    batches = sum(result.batches for result in results)
    run = _Run(
        latencies_ms=[ms for result in results for ms in result.latencies_ms],
        errors=setup_errors + [error for result in results for error in result.errors],
        requests=setting.clients * setting.pages,
        batches_per_s=batches / max(result.seconds for result in results),
        server_cpu=server_cpu,
        client_cpu=sum(result.cpu_seconds / result.seconds for result in results),
        thumbnail_kb=sum(r.thumbnail_bytes for r in results) / max(1, batches) / 1024,
    )
    return PagingRun(run, helper_cpu)


def _row(what: str, setting: str, values: Sequence[float], unit: str) -> dict[str, Any]:
    return {
        "what": what,
        "setting": setting,
        "median": statistics.median(values),
        "unit": unit,
        "spread": summary(values),
    }


#: Rows that say where the CPU went; not compared between the set-ups.
_CPU_ROWS: Final = (
    "server processes' CPU",
    "PostgreSQL backends' and haproxy's CPU",
    "client processes' CPU",
)


def paging_rows(setting: Setting, runs: dict[str, list[PagingRun]]) -> list[dict[str, Any]]:
    """p50, p99, batches/s, CPU and errors of each target, the cluster's compared."""
    rows: list[dict[str, Any]] = []
    medians: dict[tuple[str, str], float] = {}
    for name, paging in runs.items():
        target_runs = [one.run for one in paging]
        errors = [error for run in target_runs for error in run.errors]
        requests = sum(run.requests for run in target_runs)
        described = f"{name}; {ITEMS:,} items, {setting.describe()}, {RUNS} runs"
        if errors:
            described += f"; ERRORS: {len(errors)} of {requests} requests, e.g. {errors[0]}"
        figures = (
            ("batch latency p50", "ms", [percentile(r.latencies_ms, 50) for r in target_runs]),
            ("batch latency p99", "ms", [percentile(r.latencies_ms, 99) for r in target_runs]),
            ("batches served", "batches/s", [r.batches_per_s for r in target_runs]),
            ("server processes' CPU", "% of a core", [r.server_cpu * 100 for r in target_runs]),
            (
                "PostgreSQL backends' and haproxy's CPU",
                "% of a core",
                [one.helper_cpu * 100 for one in paging],
            ),
            ("client processes' CPU", "% of a core", [r.client_cpu * 100 for r in target_runs]),
        )
        for what, unit, values in figures:
            if name == SINGLE and what == _CPU_ROWS[1]:
                continue  # none: SQLite runs in the server process, no balancer
            row = _row(what, described, values, unit)
            medians[name, what] = row["median"]
            if name == CLUSTER and what not in _CPU_ROWS:
                row["comparison"] = SINGLE + (" (target: at or below)" if "p99" in what else "")
                row["ratio"] = row["median"] / medians[SINGLE, what]
            rows.append(row)
        rows.append(
            {
                "what": "errors while paging",
                "setting": described,
                "median": len(errors),
                "unit": "errors",
                "spread": f"of {requests} requests",
                "comparison": "target 0",
            }
        )
    return rows


# -- fail-over -----------------------------------------------------------------------------


@dataclass
class FailoverResult:
    """What one fail-over client process measured after the kill."""

    #: Per client: seconds from the kill to its first answered batch (``None``: never).
    recovered_s: list[float | None] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: int = 0


def failover_clients(plan: PagingPlan, pipe: Connection) -> None:
    """Process entry point: page steadily; after ``("killed", t)`` report each client's return.

    Messages: sends ``("ready", errors)``, receives ``"go"``, later ``("killed", monotonic)``,
    sends ``("done", FailoverResult)`` once every client was answered again (or time ran out).
    ``time.monotonic`` is the system-wide monotonic clock, the same in every process.
    """
    asyncio.run(_failover_main(plan, pipe))


async def _failover_main(plan: PagingPlan, pipe: Connection) -> None:
    trust = TrustPolicy(fingerprint=plan.fingerprint)
    # The protocol's default backoff: what a person's client does when its instance dies.
    sessions = [
        Session(plan.url, trust, token=plan.tokens[(plan.first_client + n) % len(plan.tokens)])
        for n in range(plan.clients)
    ]
    result = FailoverResult()
    answered: list[list[float]] = [[] for _ in sessions]
    stop = asyncio.Event()

    async def page(n: int, session: Session) -> None:
        rng = random.Random(plan.first_client + n)
        cursor: str | None = None
        await asyncio.sleep(rng.uniform(0, FAILOVER_PAUSE[1]))
        while not stop.is_set():
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    batch = await browse(session, limit=plan.batch, cursor=cursor)
            except Exception as exc:  # counted, never hidden
                result.errors.append(f"client {n}: {exc!r}")
                cursor = None
            else:
                answered[n].append(time.monotonic())
                cursor = batch.cursor
            result.requests += 1
            await asyncio.sleep(rng.uniform(*FAILOVER_PAUSE))

    try:
        for start in range(0, len(sessions), 20):  # a herd of handshakes is not measured
            outcomes = await asyncio.gather(
                *(session.connect() for session in sessions[start : start + 20]),
                return_exceptions=True,
            )
            for n, outcome in enumerate(outcomes, start=start):
                if isinstance(outcome, BaseException):
                    result.errors.append(f"client {n} setup: {outcome!r}")
        pipe.send(("ready", list(result.errors)))
        if await asyncio.to_thread(pipe.recv) != "go":
            return
        tasks = [asyncio.create_task(page(n, s)) for n, s in enumerate(sessions)]
        kind, killed_at = await asyncio.to_thread(pipe.recv)
        assert kind == "killed"
        deadline = killed_at + RECOVERY_TIMEOUT

        def back() -> list[float | None]:
            return [
                next((t - killed_at for t in times if t > killed_at), None) for times in answered
            ]

        while any(seconds is None for seconds in back()) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        result.recovered_s = back()
        stop.set()
        await asyncio.gather(*tasks)
        result.errors += [
            f"client {n} lost its login" for n, s in enumerate(sessions) if s.user is None
        ]
        pipe.send(("done", result))
    finally:
        stop.set()
        for session in sessions:
            with contextlib.suppress(Exception):
                await session.close()


@dataclass(frozen=True)
class PagingRun:
    """One paging run, and the CPU share of PostgreSQL's backends and haproxy during it."""

    run: _Run
    helper_cpu: float


@dataclass(frozen=True)
class Kill:
    """One kill: seconds until every client was answered again, the slowest few, errors."""

    recovery_s: float
    unrecovered: int
    errors: list[str]
    requests: int
    spread: dict[str, int]
    moved: int


async def one_kill(target: Target, tokens: tuple[str, ...], victim: int) -> Kill:
    """Connect the fail-over clients, SIGKILL instance ``victim``, wait, restart it."""
    assert target.balancer is not None
    setting = Setting(FAILOVER_CLIENTS, 0)
    plans = _plans(target, tokens, setting)
    with _client_processes(target, plans, failover_clients) as pipes:
        errors: list[str] = []
        for pipe in pipes:
            kind, setup = await asyncio.to_thread(_receive, pipe, SETUP_TIMEOUT)
            assert kind == "ready"
            errors += setup
        spread = await asyncio.to_thread(target.balancer.current_sessions)
        for pipe in pipes:
            pipe.send("go")
        await asyncio.sleep(BEFORE_KILL)
        killed = target.servers[victim]
        port = killed.port
        killed.kill()
        killed_at = time.monotonic()
        for pipe in pipes:
            pipe.send(("killed", killed_at))
        results: list[FailoverResult] = []
        for pipe in pipes:
            kind, result = await asyncio.to_thread(_receive, pipe, RECOVERY_TIMEOUT + SETUP_TIMEOUT)
            assert kind == "done"
            results.append(result)
    # Back to two instances for the next kill: same port, haproxy sees it up again.
    await killed.start(port=port)
    names = {f"instance{n}": "UP" for n in range(len(target.servers))}
    await asyncio.to_thread(target.balancer.wait_for_states, names, 30.0)
    recovered = [s for result in results for s in result.recovered_s]
    back = [s for s in recovered if s is not None]
    return Kill(
        recovery_s=max(back) if len(back) == len(recovered) else float("inf"),
        unrecovered=len(recovered) - len(back),
        errors=errors + [e for result in results for e in result.errors],
        requests=sum(result.requests for result in results),
        spread=spread,
        moved=spread.get(f"instance{victim}", 0),
    )


def failover_rows(kills: list[Kill]) -> list[dict[str, Any]]:
    """The recovery time (median over kills) and the errors during fail-over."""
    errors = [e for kill in kills for e in kill.errors]
    requests = sum(kill.requests for kill in kills)
    moved = ", ".join(str(kill.moved) for kill in kills)
    setting = (
        f"{CLUSTER}; {FAILOVER_CLIENTS} logged-in clients through haproxy, each asking for a "
        f"batch of {BATCH} every {FAILOVER_PAUSE[0]:g}-{FAILOVER_PAUSE[1]:g} s; SIGKILL of one "
        f"instance (alternating; clients on it: {moved}) to every client answered again, "
        f"default reconnect backoff, {len(kills)} kills"
    )
    unrecovered = sum(kill.unrecovered for kill in kills)
    if unrecovered:
        setting += f"; {unrecovered} clients NOT answered within {RECOVERY_TIMEOUT:.0f} s"
    if errors:
        setting += f"; ERRORS: {len(errors)}, e.g. {errors[0]}"
    seconds = [kill.recovery_s for kill in kills]
    return [
        {
            **_row("recovery after SIGKILL of an instance", setting, seconds, "s"),
            "comparison": f"target < {TARGET_RECOVERY_S:g} s",
            "ratio": statistics.median(seconds) / TARGET_RECOVERY_S,
        },
        {
            "what": "errors during fail-over",
            "setting": setting,
            "median": len(errors),
            "unit": "errors",
            "spread": f"of {requests} requests",
            "comparison": "target 0",
        },
    ]


# -- the run -------------------------------------------------------------------------------


async def _cluster(
    root: Path, database: str, store: ObjectStore, blobs: str, balancer: Haproxy
) -> Target:
    """Two instances on ``database`` and ``blobs`` with one certificate, behind ``balancer``.

    The instances are the target's ``servers`` as soon as they exist, so the caller stops
    them even when a start fails.
    """
    cert, key = shared_certificate(root / "shared")
    storage = {"PIXMART_DATABASE": database, "PIXMART_BLOBS": blobs, **store.credentials}
    fingerprint = tls.fingerprint_of_pem_file(cert)
    target = Target(CLUSTER, balancer.url, fingerprint, [], balancer, database)
    for n in range(2):
        (root / f"instance{n}").mkdir(parents=True)
        target.servers.append(
            BenchServer(root / f"instance{n}", storage=storage, cert=cert, key=key)
        )
    await asyncio.gather(*(instance.start() for instance in target.servers))
    await asyncio.to_thread(balancer.up, [instance.port for instance in target.servers])
    await asyncio.to_thread(balancer.wait_for_states, {"instance0": "UP", "instance1": "UP"})
    return target


async def _measure(root: Path, server_url: str, store: ObjectStore) -> list[dict[str, Any]]:
    await asyncio.to_thread(ensure_haproxy)
    template = Template(server_url)
    await template.create()
    database = await template.copy()
    blobs = store.prefixed(fresh_prefix())
    # haproxy's admin socket path must stay short (108 bytes): not under a long temporary dir.
    balancer = Haproxy(Path(tempfile.mkdtemp(prefix="pixmart-lb-")))
    single = BenchServer(root / "single")
    cluster = Target(CLUSTER, balancer.url, "", [], balancer, database)
    try:
        pictures = Pictures.make()
        shops = [
            Shop(SINGLE, ITEMS, root / "single"),
            Shop(CLUSTER, ITEMS, root / "cluster-seed", database),
        ]
        for shop in shops:
            await seed_shop(shop, pictures, None)
        await single.start()
        cluster = await _cluster(root, database, store, blobs, balancer)
        targets = {
            SINGLE: Target(SINGLE, single.url, single.fingerprint, [single]),
            CLUSTER: cluster,
        }
        tokens = {
            SINGLE: await seller_tokens(single),
            CLUSTER: await seller_tokens(cluster.servers[0]),  # one database: valid on both
        }
        for name, target in targets.items():  # warm-up: connections, caches
            await asyncio.to_thread(paging_run, target, tokens[name], Setting(20, 5))
        rows: list[dict[str, Any]] = []
        loads: list[float] = []
        for setting in SETTINGS:
            runs: dict[str, list[PagingRun]] = {SINGLE: [], CLUSTER: []}
            for _ in range(RUNS):
                for name, target in targets.items():  # alternating: drift hits both alike
                    loads.append(os.getloadavg()[0])
                    runs[name].append(
                        await asyncio.to_thread(paging_run, target, tokens[name], setting)
                    )
            rows += paging_rows(setting, runs)
        kills = [await one_kill(cluster, tokens[CLUSTER], n % 2) for n in range(KILLS)]
        rows += failover_rows(kills)
        rows.append(
            {
                "what": "machine load before each paging run",
                "setting": f"1-minute load average, {os.cpu_count()} cores (other work included)",
                "median": statistics.median(loads),
                "unit": "",
                "spread": summary(loads),
            }
        )
        return rows
    finally:
        balancer.down()
        shutil.rmtree(balancer.base, ignore_errors=True)
        stopping = [single, *cluster.servers]
        await asyncio.gather(*(asyncio.to_thread(server.stop) for server in stopping))
        with contextlib.suppress(Exception):  # the store may be what failed
            store.clear(blobs)
        await template.drop(database)
        await template.drop(with_database(server_url, template.name))


def run() -> list[dict[str, Any]]:
    """Run the benchmark; one row per figure (see ``tests/bench/run.py``)."""
    with (
        tempfile.TemporaryDirectory(prefix="pixmart-bench-cluster-") as tmp,
        postgres_server() as server_url,
        object_store_server() as store,
    ):
        return asyncio.run(_measure(Path(tmp), server_url, store))


def main() -> None:
    """Print the figures, or (``serve DATA_DIR PORT [CERT KEY]``) be a :class:`BenchServer`."""
    if sys.argv[1:2] == ["serve"]:
        cert = Path(sys.argv[4]) if len(sys.argv) > 5 else None
        key = Path(sys.argv[5]) if len(sys.argv) > 5 else None
        serve(Path(sys.argv[2]), int(sys.argv[3]), cert, key)
        return
    for row in run():
        extra = f"  [{row['comparison']}: x{row['ratio']:.2f}]" if row.get("ratio") else ""
        print(
            f"{row['what']:<38} {row['median']:>9.4g} {row['unit']:<12} ({row['spread']})"
            f"{extra}\n    {row['setting']}"
        )


if __name__ == "__main__":
    main()
