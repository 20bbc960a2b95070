"""Provides the edge benchmark: a normal client while the server is attacked (issue #13).

A real ``pixmart-server serve --port 0 --no-vision --metrics 127.0.0.1:PORT`` process with the
production limits (no option changes them) serves a seeded shop: 240 items listed straight
through the storage layer with real 256 px WebP thumbnails (``tests.support.load.seed_items``),
a seller, the normal client's account and the accounts the attacks aim at.

The attacker runs in its own process (``spawn``), so its CPU and its sockets do not slow the
normal client's event loop; both share the machine's cores with the server, as on one host. The
attacker's sockets are bound to ``127.0.0.2`` (``local_addr``), or to more ``127.0.0.x`` where an
attack needs many addresses (each setting names them); the normal client is a
:class:`~protocol.client.Session` connecting to ``127.0.0.1`` from ``127.0.0.1``.

The normal client's figure, in every scenario: a new session to the server's first batch, i.e.
connect (TCP, TLS, WebSocket, Hello) + login to an existing account (an Argon2id check) + the
first Browse batch of 24 thumbnails, timed from the first connection attempt. A connection the
server refuses (HTTP 429/503) is tried again after the server's Retry-After, as a polite client
would, so a refusal shows as time (at most ``NORMAL_TIMEOUT``). Several runs per scenario; the
median and the max are reported, the target being every run under 1 s.

Scenarios, on one server in this order (each waits until the server has no connection left;
where a run may have to wait up to 30 s, fewer runs, spread over the attack):

0. baseline: no attack;
1. (a) the attacker tries to hold 1,000 Hello-only connections, re-sending Hello every second
   and never logging in; a refused connection is tried again every ~5 s, one the server closes
   is reopened at once. First from ``127.0.0.2`` alone, then spread over 32 addresses
   (``127.0.0.2``-``127.0.0.33``), enough to reach the server-wide cap on connections that have
   not logged in;
2. (b) an account-creation flood: 8 connections x 16 CreateAccount in flight (a new one as soon
   as one is answered; a connection the server closes is reopened) from ``127.0.0.2``; then
   64 addresses (``127.0.0.64``-``127.0.0.127``) x 1 connection x 16 in flight, enough to
   reach the server-wide sign-up limit. After each, a new sign-up from ``127.0.0.1``;
3. (c) 64 concurrent wrong-password logins for one account over 4 connections (16 in flight
   each), one burst per normal run, each burst on a fresh account from a fresh address
   (``127.0.0.2``, ``.3``, ...: an address's own failure limit would otherwise answer later
   bursts before any check). Password checks are counted by the server: its Prometheus
   counter ``pixmart_requests_total{type="Login", outcome="unauthenticated"}`` (a wrong password
   answered after its Argon2id check; refusals before the check are ``rate_limited``).

Then, each on a fresh server (so its peak RSS is its own), warmed up by the normal client:

4. (d) big frames: 40 connections that never log in (20 each from ``127.0.0.2`` and ``.3``:
   the per-address cap on such connections is 32) each send 5 frames of 16 MiB, again and
   again; and 40 connections logged in (resumed with one token, 20 each from ``127.0.0.2`` and
   ``.3``) each send 5 SearchByImage requests of just under the 8 MiB message limit, again and
   again. The server's RSS before the attacker process starts, its peak until the attacker
   stopped (``VmHWM`` from ``/proc/PID/status``, reset with ``/proc/PID/clear_refs`` before the
   attacker starts) and once the server is quiet again. Target: growth under 300 MB.

Every scenario's rows also name the server's RSS before and its peak during the attack.

Every loop has a deadline, the attacker process stops by itself (``MAX_ATTACK_S``, or when the
benchmark's end of its pipe closes), and servers and processes are stopped in ``finally``
blocks. Loopback only. The benchmark and the attacker raise their soft limit on open files
(``RLIMIT_NOFILE``) to 8,192 where it is lower; the server process inherits the benchmark's.

Run alone with ``.venv/bin/python -m tests.bench.bench_edge``; ``make bench`` collects ``run()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import multiprocessing
import os
import random
import resource
import secrets
import socket
import statistics
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any, Final

from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from backend.config import ServerConfig
from backend.server import PixmartServer
from protocol import codec
from protocol.catalogue_client import browse
from protocol.client import Session
from protocol.errors import PixmartError, Unavailable
from protocol.messages.accounts import CreateAccount, LoggedIn, Login, Resume, Resumed
from protocol.messages.base import PROTOCOL_VERSION, ErrorReply, Hello, Reply, Welcome
from protocol.messages.vision import SearchByImage
from protocol.trust import TrustPolicy
from tests.support import insecure_tls13_context
from tests.support.catalogue import catalogue as catalogue_of
from tests.support.commerce import PASSWORD, ServerProcess
from tests.support.load import cpu_seconds, proc_memory, seed_items, small_thumbnail

MIB: Final = 1024 * 1024
ITEMS: Final = 240
BATCH: Final = 24
SELLER: Final = "seller"
SHOPPER: Final = "shopper"
HEAVY: Final = "heavy"
ATTACKER: Final = "127.0.0.2"

#: Normal-client runs per scenario (fewer where each may wait for the login deadline).
NORMAL_RUNS: Final = 7
SLOW_RUNS: Final = 3
#: Seconds between two normal-client runs.
NORMAL_PAUSE: Final = 0.25
#: Seconds one normal-client run may take, refusals waited out included: more than the login
#: deadline (30 s) after which the server closes connections that never logged in.
NORMAL_TIMEOUT: Final = 45.0
#: Targets from the issue.
TARGET_NORMAL_S: Final = 1.0
TARGET_CHECKS: Final = 10
TARGET_GROWTH_MB: Final = 300.0

#: (c): wrong-password bursts, one per normal run, and their shape.
BURSTS: Final = NORMAL_RUNS
BURST_CONNECTIONS: Final = 4
BURST_IN_FLIGHT: Final = 16

#: Bounds: the attacker process's whole life, its set-up, its stop, the server's quiet time.
MAX_ATTACK_S: Final = 420.0
SETUP_TIMEOUT: Final = 180.0
STOP_TIMEOUT: Final = 60.0
QUIET_TIMEOUT: Final = 60.0
OPEN_TIMEOUT: Final = 15.0
REPLY_TIMEOUT: Final = 60.0


# -- the server ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class EdgeServer(ServerProcess):
    """A ``pixmart-server`` process (production limits, no image model) with its metrics on."""

    metrics_port: int = 0
    accounts_per_address: int | None = None  # the production limit is what is measured

    def serve_options(self, port: int) -> list[str]:
        """``--port``, ``--no-vision`` and ``--metrics 127.0.0.1:PORT``."""
        if not self.metrics_port:
            self.metrics_port = _free_port()
        return [*super().serve_options(port), "--metrics", f"127.0.0.1:{self.metrics_port}"]

    @property
    def pid(self) -> int:
        """The server process's id."""
        assert self.process is not None
        return self.process.pid

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """Every sample of the server's Prometheus endpoint, by name and labels."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as answer:
            text = answer.read().decode()
        return {
            (sample.name, frozenset(sample.labels.items())): float(sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _sum(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(value for (n, got), value in samples.items() if n == name and wanted <= got)


def _requests_delta(before: Samples, after: Samples, request_type: str) -> dict[str, int]:
    """Requests of one type answered between two scrapes, by outcome."""
    outcomes: dict[str, int] = {}
    for (name, labels), value in after.items():
        found = dict(labels)
        if name != "pixmart_requests_total" or found.get("type") != request_type:
            continue
        grown = int(value - before.get((name, labels), 0.0))
        if grown:
            outcomes[found.get("outcome", "?")] = grown
    return outcomes


async def _seed(data_dir: Path, victims: int) -> None:
    """Accounts (seller, shopper, heavy, victims) and ``ITEMS`` listed items with thumbnails."""
    server = PixmartServer(ServerConfig(data_dir=data_dir, port=0, enable_vision=False))
    with contextlib.redirect_stdout(io.StringIO()):  # the start-up banner
        await server.start()
    try:
        seller = await server.accounts.create_account(SELLER, PASSWORD)
        for name in (SHOPPER, HEAVY, *(f"victim{n}" for n in range(victims))):
            await server.accounts.create_account(name, PASSWORD)
        thumbnails = [small_thumbnail(seed) for seed in range(6)]
        await seed_items(
            server.db,
            [seller.id],
            ITEMS,
            thumbnails=thumbnails,
            preview=thumbnails[0],
            derivatives=catalogue_of(server).derivatives,
        )
    finally:
        await server.stop()


async def _started_server(data_dir: Path, victims: int = 0) -> EdgeServer:
    await _seed(data_dir, victims)
    server = EdgeServer(data_dir)
    await server.start()
    return server


async def _wait_quiet(server: EdgeServer) -> bool:
    """Wait (bounded) until the server has no open connection; whether it got there."""
    deadline = time.monotonic() + QUIET_TIMEOUT
    while time.monotonic() < deadline:
        samples = await asyncio.to_thread(server.metrics)
        if _sum(samples, "pixmart_connections_open") == 0:
            return True
        await asyncio.sleep(0.25)
    return False


def _reset_peak(pid: int) -> bool:
    """Reset the process's ``VmHWM`` to its current RSS (``clear_refs`` 5); whether it worked."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as clear:
            clear.write("5")
    except OSError:
        return False
    return True


def _raise_open_files(wanted: int = 8192) -> None:
    """Raise this process's soft limit on open files (1,000+ sockets), within the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


# -- the normal client ---------------------------------------------------------------------


@dataclass(frozen=True)
class NormalRun:
    """One normal-client run: seconds to its first batch (or to giving up)."""

    seconds: float
    ok: bool
    #: Connection attempts the server refused (HTTP 429/503) before the one that got in.
    refusals: int = 0
    error: str = ""
    #: Seconds spent connecting (refusals waited out included), logging in, getting the batch.
    phases: tuple[float, ...] = ()


async def _normal_once(server: EdgeServer) -> NormalRun:
    """New session from 127.0.0.1, login, first Browse batch; refusals waited out (bounded)."""
    trust = TrustPolicy(fingerprint=server.fingerprint)
    started = time.perf_counter()
    deadline = started + NORMAL_TIMEOUT
    refusals = 0
    marks = [started]
    phase = "connect"
    while True:
        session = Session(server.url, trust, client_name="bench-edge")
        try:
            async with asyncio.timeout(max(0.1, deadline - time.perf_counter())):
                try:
                    await session.connect()
                except Unavailable as exc:  # HTTP 429 or 503, with the server's Retry-After
                    refusals += 1
                    wait = exc.retry_after or 1.0
                    if time.perf_counter() + wait >= deadline:
                        raise
                    await asyncio.sleep(wait)
                    continue
                marks.append(time.perf_counter())
                phase = "login"
                await session.login(SHOPPER, PASSWORD)
                marks.append(time.perf_counter())
                phase = "first batch"
                batch = await browse(session, limit=BATCH)
                marks.append(time.perf_counter())
        except (PixmartError, OSError, TimeoutError, InvalidHandshake) as exc:
            return NormalRun(
                time.perf_counter() - started, False, refusals, f"{phase}: {exc!r}"[:160]
            )
        finally:
            with contextlib.suppress(Exception):
                await session.close()
        phases = tuple(b - a for a, b in itertools.pairwise(marks))
        elapsed = marks[-1] - started
        if len(batch.items) != BATCH or not all(card.thumbnail for card in batch.items):
            error = f"a batch of {len(batch.items)} items"
            return NormalRun(elapsed, False, refusals, error, phases)
        return NormalRun(elapsed, True, refusals, phases=phases)


async def _normal_series(
    server: EdgeServer, runs: int, pause: float = NORMAL_PAUSE
) -> list[NormalRun]:
    results: list[NormalRun] = []
    for n in range(runs):
        if n:
            await asyncio.sleep(pause)
        results.append(await _normal_once(server))
    return results


async def _new_signup(server: EdgeServer, username: str) -> str:
    """A sign-up from 127.0.0.1: ``"created"`` or why not."""
    session = Session(server.url, TrustPolicy(fingerprint=server.fingerprint))
    try:
        async with asyncio.timeout(30):
            await session.connect()
            await session.create_account(username, PASSWORD)
        return "created"
    except (PixmartError, OSError, TimeoutError, InvalidHandshake) as exc:
        return f"refused: {exc}"
    finally:
        with contextlib.suppress(Exception):
            await session.close()


# -- the attacker process ------------------------------------------------------------------


@dataclass(frozen=True)
class AttackPlan:
    """What the attacker process does (see the module docstring)."""

    #: ``hold``, ``signup``, ``wrong_logins``, ``frames_prelogin`` or ``frames_logged_in``.
    kind: str
    port: int
    addresses: tuple[str, ...]
    #: Connections (``hold``: slots, each trying to keep one connection open).
    connections: int
    in_flight: int = 16
    frames: int = 5
    frame_bytes: int = 0
    username: str = ""
    prefix: str = "flood"
    retry_interval: float = 5.0
    hello_interval: float = 1.0
    open_concurrency: int = 50
    #: Whether the attack ends by itself (a burst): on "stop" it is finished, not cut.
    finite: bool = False


def attacker_process(plan: AttackPlan, pipe: Pipe) -> None:
    """Process entry point: prepare, say ``ready``, attack on ``go`` until ``stop``, report.

    Messages on ``pipe``: sends ``("ready", report)``, receives ``"go"``, receives ``"stop"``,
    sends ``("done", report)``. Ends by itself after ``MAX_ATTACK_S`` or when the pipe closes.
    """
    _raise_open_files()
    asyncio.run(_attacker_main(plan, pipe))


async def _command(pipe: Pipe, timeout: float) -> str | None:
    """The next command from the benchmark, or ``None`` (timeout, or the benchmark is gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if pipe.poll():
                return str(pipe.recv())
        except (EOFError, OSError):
            return None
        await asyncio.sleep(0.02)
    return None


async def _attacker_main(plan: AttackPlan, pipe: Pipe) -> None:
    attack = _Attack(plan)
    end = time.monotonic() + MAX_ATTACK_S
    try:
        async with asyncio.timeout(MAX_ATTACK_S):
            await attack.prepare()
            pipe.send(("ready", attack.report()))
            if await _command(pipe, end - time.monotonic()) != "go":
                return
            attack.begin()
            await _command(pipe, end - time.monotonic())  # "stop", or the benchmark is gone
            await attack.finish()
    except TimeoutError:
        attack.note("the attacker process reached its own deadline")
    except Exception as exc:  # reported to the benchmark, which says so
        attack.note(f"the attacker failed: {exc!r}"[:200])
    finally:
        await attack.close_all()
        with contextlib.suppress(OSError, ValueError):
            pipe.send(("done", attack.report()))


def _hello(request_id: int = 1) -> bytes:
    return codec.encode(
        Hello(id=request_id, version=PROTOCOL_VERSION, client_id=secrets.token_hex(16))
    )


def _outcome(reply: Reply) -> str:
    """A reply's type, or its error code and the gist of its message (numbers left out)."""
    if not isinstance(reply, ErrorReply):
        return type(reply).__name__
    gist = "".join(c for c in reply.message.split(";")[0] if not c.isdigit()).strip()
    return f"{reply.code.value}: {gist}"


class _Attack:
    """The attacker's connections, tasks and counts."""

    def __init__(self, plan: AttackPlan) -> None:
        self.plan = plan
        self.counts: Counter[str] = Counter()
        self.examples: list[str] = []
        self.retry_afters: list[float] = []
        self.held = 0
        self.peak_held = 0
        self.live: set[ClientConnection] = set()
        self.tasks: list[asyncio.Task[None]] = []
        self.stopping = asyncio.Event()
        self.opening = asyncio.Semaphore(plan.open_concurrency)
        self.context = insecure_tls13_context()
        self.ready_connections: list[ClientConnection] = []
        self.started = 0.0
        self.seconds = 0.0
        self.ids = itertools.count(10)
        self._first_attempts = 0
        self._all_tried = asyncio.Event()

    # -- bookkeeping -----------------------------------------------------------------------

    def note(self, what: str) -> None:
        self.counts[what] += 1
        if len(self.examples) < 5 and what not in self.examples:
            self.examples.append(what)

    def report(self) -> dict[str, Any]:
        return {
            "counts": dict(self.counts),
            "examples": list(self.examples),
            "retry_after": (min(self.retry_afters), max(self.retry_afters))
            if self.retry_afters
            else None,
            "held": self.held,
            "peak_held": self.peak_held,
            "seconds": self.seconds or (time.monotonic() - self.started if self.started else 0.0),
        }

    async def _open(self, source: str) -> ClientConnection:
        ws = await connect(
            f"wss://127.0.0.1:{self.plan.port}",
            ssl=self.context,
            server_hostname="127.0.0.1",
            local_addr=(source, 0),
            compression=None,
            proxy=None,
            open_timeout=OPEN_TIMEOUT,
            close_timeout=1,
            ping_interval=None,
            max_size=None,
        )
        self.live.add(ws)
        return ws

    async def _try_open(self, source: str) -> ClientConnection | None:
        """A connection, or ``None`` after counting why not (a refusal keeps its Retry-After)."""
        async with self.opening:
            self.counts["connection attempts"] += 1
            try:
                return await self._open(source)
            except InvalidStatus as exc:
                self.counts[f"refused HTTP {exc.response.status_code}"] += 1
                with contextlib.suppress(ValueError):
                    self.retry_afters.append(float(exc.response.headers.get("Retry-After", "")))
            except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed) as exc:
                self.note(f"cannot connect: {type(exc).__name__}: {exc}"[:120])
            return None

    async def _close(self, ws: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(3):
                await ws.close()
        ws.transport.abort()
        self.live.discard(ws)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.stopping.wait()

    async def _call(self, ws: ClientConnection, message: Hello | Login | Resume) -> Reply:
        await ws.send(codec.encode(message))
        async with asyncio.timeout(REPLY_TIMEOUT):
            while True:
                got = codec.decode(await ws.recv(), max_bytes=64 * MIB)
                if isinstance(got, Reply) and got.id == message.id:
                    return got

    async def _greeted(self, source: str) -> ClientConnection | None:
        ws = await self._try_open(source)
        if ws is None:
            return None
        try:
            reply = await self._call(
                ws, Hello(id=1, version=PROTOCOL_VERSION, client_id=secrets.token_hex(16))
            )
        except (ConnectionClosed, TimeoutError) as exc:
            self.note(f"no welcome: {type(exc).__name__}")
            await self._close(ws)
            return None
        if not isinstance(reply, Welcome):
            self.note(f"no welcome: {_outcome(reply)}")
            await self._close(ws)
            return None
        return ws

    def _source(self, n: int) -> str:
        return self.plan.addresses[n % len(self.plan.addresses)]

    # -- the phases ------------------------------------------------------------------------

    async def prepare(self) -> None:
        """Open what the attack needs before ``go`` (``hold``: the slots' first attempts)."""
        plan = self.plan
        self.started = time.monotonic()
        try:
            async with asyncio.timeout(SETUP_TIMEOUT):
                if plan.kind == "hold":
                    self.tasks = [
                        asyncio.create_task(self._hold(n)) for n in range(plan.connections)
                    ]
                    await self._all_tried.wait()
                    return
                if plan.kind in ("signup", "wrong_logins"):
                    opened = await asyncio.gather(
                        *(self._greeted(self._source(n)) for n in range(plan.connections))
                    )
                    self.ready_connections = [ws for ws in opened if ws is not None]
                elif plan.kind == "frames_logged_in":
                    self.ready_connections = await self._logged_in_connections()
        except TimeoutError:
            raise RuntimeError(f"the attack was not ready within {SETUP_TIMEOUT:g} s") from None
        self.counts["connections ready"] = len(self.ready_connections)

    def begin(self) -> None:
        """Start the attack proper."""
        plan = self.plan
        self.started = time.monotonic()
        if plan.kind == "signup":
            self.tasks += [
                asyncio.create_task(self._signups(ws, n))
                for n, ws in enumerate(self.ready_connections)
            ]
        elif plan.kind == "wrong_logins":
            self.tasks += [
                asyncio.create_task(self._wrong_logins(ws, n))
                for n, ws in enumerate(self.ready_connections)
            ]
        elif plan.kind == "frames_prelogin":
            self.tasks += [
                asyncio.create_task(self._frames_prelogin(n)) for n in range(plan.connections)
            ]
        elif plan.kind == "frames_logged_in":
            self.tasks += [
                asyncio.create_task(self._frames_logged_in(ws)) for ws in self.ready_connections
            ]

    async def finish(self) -> None:
        """End the attack: a finite one is waited for (bounded), an endless one is cut."""
        if self.plan.finite:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(REPLY_TIMEOUT):
                    await asyncio.gather(*self.tasks, return_exceptions=True)
        self.seconds = time.monotonic() - self.started
        self.stopping.set()
        for task in self.tasks:
            task.cancel()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_TIMEOUT / 2):
                await asyncio.gather(*self.tasks, return_exceptions=True)

    async def close_all(self) -> None:
        for task in self.tasks:
            task.cancel()
        live = list(self.live)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await asyncio.gather(*(self._close(ws) for ws in live), return_exceptions=True)
        for ws in live:
            ws.transport.abort()

    # -- (a) holding connections that never log in -----------------------------------------

    def _tried(self) -> None:
        self._first_attempts += 1
        if self._first_attempts == self.plan.connections:
            self._all_tried.set()

    async def _hold(self, slot: int) -> None:
        """Keep one connection open that never logs in; Hello every ``hello_interval``."""
        source = self._source(slot)
        rng = random.Random(slot)
        first = True
        while not self.stopping.is_set():
            try:
                ws = await self._try_open(source)
            finally:
                if first:
                    first = False
                    self._tried()
            if ws is None:
                await self._pause(self.plan.retry_interval * rng.uniform(0.5, 1.5))
                continue
            self.counts["accepted"] += 1
            self.held += 1
            self.peak_held = max(self.peak_held, self.held)
            try:
                await self._say_hello(ws)
            except ConnectionClosed:
                reason = ws.close_reason or ""
                self.counts[f"closed by the server: {ws.close_code} {reason}".strip()] += 1
            finally:
                self.held -= 1
                await self._close(ws)

    async def _say_hello(self, ws: ClientConnection) -> None:
        loop = asyncio.get_running_loop()
        while not self.stopping.is_set():
            await ws.send(_hello(next(self.ids)))
            self.counts["hellos sent"] += 1
            until = loop.time() + self.plan.hello_interval
            while (left := until - loop.time()) > 0:
                try:
                    async with asyncio.timeout(left):
                        await ws.recv()  # the Welcomes, read so the close is seen
                except TimeoutError:
                    break

    # -- (b) account creation --------------------------------------------------------------

    async def _signups(self, first: ClientConnection, n: int) -> None:
        """Keep ``in_flight`` CreateAccount requests outstanding; reconnect if closed."""
        ws: ClientConnection | None = first
        while not self.stopping.is_set():
            if ws is None:
                ws = await self._greeted(self._source(n))
                if ws is None:
                    await self._pause(1.0)
                    continue
            try:
                await self._signup_flood(ws, n)
            except ConnectionClosed:
                reason = ws.close_reason or ""
                self.counts[f"closed by the server: {ws.close_code} {reason}".strip()] += 1
            except TimeoutError:
                self.note("signup: no reply within the timeout")
            finally:
                await self._close(ws)
                ws = None

    async def _signup_flood(self, ws: ClientConnection, n: int) -> None:
        async def send_one() -> None:
            request_id = next(self.ids)
            username = f"{self.plan.prefix}{n}x{request_id}"
            await ws.send(
                codec.encode(CreateAccount(id=request_id, username=username, password=PASSWORD))
            )

        for _ in range(self.plan.in_flight):
            await send_one()
        while not self.stopping.is_set():
            async with asyncio.timeout(REPLY_TIMEOUT):
                message = codec.decode(await ws.recv())
            if isinstance(message, Reply):
                self.counts[_outcome(message)] += 1
                await send_one()

    # -- (c) wrong passwords ---------------------------------------------------------------

    async def _wrong_logins(self, ws: ClientConnection, n: int) -> None:
        """Send ``in_flight`` wrong-password logins at once; count every answer."""
        try:
            for i in range(self.plan.in_flight):
                request = Login(
                    id=2 + i, username=self.plan.username, password=f"wrong-guess-{n}-{i}"
                )
                await ws.send(codec.encode(request))
            answered = 0
            async with asyncio.timeout(REPLY_TIMEOUT):
                while answered < self.plan.in_flight:
                    message = codec.decode(await ws.recv())
                    if isinstance(message, Reply):
                        self.counts[_outcome(message)] += 1
                        answered += 1
        except ConnectionClosed:
            self.note(f"login connection closed: {ws.close_code} {ws.close_reason}")
        except TimeoutError:
            self.note("wrong logins: no reply within the timeout")

    # -- (d) big frames --------------------------------------------------------------------

    async def _frames_prelogin(self, worker: int) -> None:
        """Again and again: connect, Hello, send ``frames`` frames of ``frame_bytes``."""
        frame = b"\x00" * self.plan.frame_bytes
        source = self._source(worker)
        while not self.stopping.is_set():
            ws = None
            try:
                ws = await self._greeted(source)
                if ws is None:
                    await self._pause(1.0)
                    continue
                with contextlib.suppress(ConnectionClosed):
                    for _ in range(self.plan.frames):
                        await ws.send(frame)
                        self.counts["big frames sent"] += 1
                with contextlib.suppress(ConnectionClosed, TimeoutError):
                    async with asyncio.timeout(REPLY_TIMEOUT):
                        while True:
                            await ws.recv()
                self.counts[f"closed by the server: {ws.close_code}"] += 1
                self.counts["rounds"] += 1
            except (ConnectionClosed, TimeoutError) as exc:
                self.note(f"frames before login: {type(exc).__name__}")
            finally:
                if ws is not None:
                    await self._close(ws)

    async def _logged_in_connections(self) -> list[ClientConnection]:
        """One login for a token, then ``connections`` connections resumed with it."""
        ws = await self._greeted(self._source(0))
        if ws is None:
            raise RuntimeError(f"the attacker could not connect: {self.examples}")
        reply = await self._call(ws, Login(id=2, username=self.plan.username, password=PASSWORD))
        await self._close(ws)
        if not isinstance(reply, LoggedIn):
            raise RuntimeError(f"the attacker could not log in: {_outcome(reply)}")

        async def resumed(n: int) -> ClientConnection | None:
            ws = await self._greeted(self._source(n))
            if ws is None:
                return None
            answer = await self._call(ws, Resume(id=2, token=reply.token))
            if not isinstance(answer, Resumed):
                self.note(f"not resumed: {_outcome(answer)}")
                await self._close(ws)
                return None
            return ws

        opened = await asyncio.gather(*(resumed(n) for n in range(self.plan.connections)))
        return [ws for ws in opened if ws is not None]

    async def _frames_logged_in(self, ws: ClientConnection) -> None:
        """Again and again: ``frames`` SearchByImage requests of ``frame_bytes``, then replies."""
        image = os.urandom(self.plan.frame_bytes)
        try:
            while not self.stopping.is_set():
                for _ in range(self.plan.frames):
                    await ws.send(codec.encode(SearchByImage(id=next(self.ids), image=image)))
                    self.counts["big frames sent"] += 1
                answered = 0
                async with asyncio.timeout(REPLY_TIMEOUT):
                    while answered < self.plan.frames:
                        message = codec.decode(await ws.recv(), max_bytes=64 * MIB)
                        if isinstance(message, Reply):
                            self.counts[_outcome(message)] += 1
                            answered += 1
                self.counts["rounds"] += 1
        except ConnectionClosed:
            self.note(f"logged-in connection closed: {ws.close_code} {ws.close_reason}")
        except TimeoutError:
            self.note("big frames after login: no reply within the timeout")


# -- one scenario --------------------------------------------------------------------------


@dataclass
class Scenario:
    """What one scenario measured."""

    normal: list[NormalRun]
    ready: dict[str, Any] = field(default_factory=dict)
    done: dict[str, Any] = field(default_factory=dict)
    #: Requests answered during the scenario, by type and outcome (from the server's metrics).
    requests: dict[str, dict[str, int]] = field(default_factory=dict)
    #: Connections the server accepted during the scenario (its own counter).
    accepted: int = 0
    #: Server CPU while the normal client ran, in % of a core.
    server_cpu: float = 0.0
    #: Server memory in bytes: VmRSS before the attacker started (its peak reset then), when
    #: the attack was ready, the peak (VmHWM) until the attacker stopped, VmRSS once quiet.
    rss_before: int = 0
    rss_ready: int = 0
    peak: int = 0
    rss_after: int = 0
    peak_reset: bool = False
    quiet: bool = True


def _receive(pipe: Pipe, timeout: float) -> Any:
    """The next message from the attacker process, or ``TimeoutError``."""
    if not pipe.poll(timeout):
        raise TimeoutError("the attacker process did not answer in time")
    return pipe.recv()


async def _scenario(
    server: EdgeServer,
    plan: AttackPlan | None,
    *,
    runs: int = NORMAL_RUNS,
    pause: float = NORMAL_PAUSE,
    settle: float = 0.5,
    min_seconds: float = 0.0,
    memory: bool = False,
) -> Scenario:
    """Run the normal client ``runs`` times while ``plan`` runs in an attacker process.

    The server's peak RSS is reset before the attacker process starts and read once it stopped.

    Args:
        pause: Seconds between two normal runs (spreads them over the attack).
        settle: Seconds between ``go`` and the first normal run (the attack gets going).
        min_seconds: The attack lasts at least this long after ``go``.
        memory: Also wait for the server to be quiet and read what it gives back.
    """
    context = multiprocessing.get_context("spawn")
    child = None
    pipe: Pipe | None = None
    result = Scenario(normal=[])
    result.rss_before = proc_memory(server.pid)["VmRSS"]
    result.peak_reset = _reset_peak(server.pid)
    if not result.peak_reset:  # the peak so far is all there is to compare with
        result.rss_before = proc_memory(server.pid)["VmHWM"]
    try:
        if plan is not None:
            pipe, theirs = context.Pipe()
            child = context.Process(target=attacker_process, args=(plan, theirs), daemon=True)
            child.start()
            theirs.close()
            kind, result.ready = await asyncio.to_thread(_receive, pipe, SETUP_TIMEOUT + 60)
            if kind != "ready":
                raise RuntimeError(f"the attacker did not get ready: {result.ready['examples']}")
        result.rss_ready = proc_memory(server.pid)["VmRSS"]
        before = await asyncio.to_thread(server.metrics)
        if pipe is not None:
            pipe.send("go")
        began = time.perf_counter()
        await asyncio.sleep(settle)
        cpu_before, measured_from = cpu_seconds(server.pid), time.perf_counter()
        result.normal = await _normal_series(server, runs, pause)
        result.server_cpu = (
            100 * (cpu_seconds(server.pid) - cpu_before) / (time.perf_counter() - measured_from)
        )
        left = min_seconds - (time.perf_counter() - began)
        if left > 0:
            await asyncio.sleep(left)
        if pipe is not None:
            pipe.send("stop")
            kind, result.done = await asyncio.to_thread(_receive, pipe, STOP_TIMEOUT + 30)
            if kind != "done":
                raise RuntimeError(f"the attacker answered {kind!r} to stop")
        result.peak = proc_memory(server.pid)["VmHWM"]
        after = await asyncio.to_thread(server.metrics)
    finally:
        if pipe is not None:
            pipe.close()
        if child is not None:
            child.join(timeout=30)
            if child.is_alive():
                child.kill()
                child.join()
    result.quiet = await _wait_quiet(server)
    if memory:
        await asyncio.sleep(2.0)  # what the server gives back once it is quiet
        result.rss_after = proc_memory(server.pid)["VmRSS"]
    types = {dict(labels).get("type", "") for name, labels in after if name.startswith("pixmart_")}
    result.requests = {
        kind: delta for kind in types if kind and (delta := _requests_delta(before, after, kind))
    }
    result.accepted = int(
        _sum(after, "pixmart_connections_accepted_total")
        - _sum(before, "pixmart_connections_accepted_total")
    )
    return result


# -- rows ----------------------------------------------------------------------------------


def _mb(value: float) -> str:
    return f"{value / 1e6:,.0f} MB"


def _memory(scenario: Scenario) -> str:
    """The server's RSS before the attacker started and its peak until it stopped."""
    before = "RSS" if scenario.peak_reset else "peak RSS"
    return f"server {before} {_mb(scenario.rss_before)} before, peak {_mb(scenario.peak)}"


def _normal_row(
    label: str, setting: str, runs: list[NormalRun], cpu: float, memory: str = ""
) -> dict[str, Any]:
    """The normal client's row: median and max of its runs, against the 1 s target."""
    ms = [run.seconds * 1000 for run in runs]
    failed = [run for run in runs if not run.ok]
    refused = sum(run.refusals for run in runs)
    worst = max(ms)
    met = not failed and worst < TARGET_NORMAL_S * 1000
    notes = f"{len(runs)} runs; server CPU {cpu:.0f}% of a core meanwhile"
    if memory:
        notes += f"; {memory}"
    if refused:
        notes += f"; {refused} connection attempts refused (HTTP 429/503), waited out"
    slowest = max(runs, key=lambda run: run.seconds)
    if slowest.ok and slowest.phases:
        connect_s, login_s, batch_s = (1000 * x for x in slowest.phases)
        notes += (
            f"; slowest run: connect {connect_s:,.0f} ms, login {login_s:,.0f} ms, "
            f"batch {batch_s:,.0f} ms"
        )
    if failed:
        notes += f"; FAILED {len(failed)} of {len(runs)}: {failed[0].error}"
    return {
        "what": "normal client: connect + login + first batch",
        "setting": f"{label}: {setting}; {notes}",
        "median_ms": round(statistics.median(ms), 1),
        "max_ms": round(worst, 1),
        "spread": f"runs {min(ms):,.0f} - {worst:,.0f} ms",
        "comparison": f"target < {TARGET_NORMAL_S:g} s every run: {'met' if met else 'NOT met'}",
        "ratio": round(worst / (TARGET_NORMAL_S * 1000), 3),
        "target_met": met,
    }


def _count(report: dict[str, Any], key: str) -> int:
    return int(report.get("counts", {}).get(key, 0))


def _refusals(report: dict[str, Any]) -> str:
    counts: dict[str, int] = report.get("counts", {})
    parts = [
        f"{n:,} x {key.removeprefix('refused ')}"
        for key, n in sorted(counts.items())
        if key.startswith("refused ")
    ]
    if report.get("retry_after"):
        low, high = report["retry_after"]
        parts.append(f"Retry-After {low:g}-{high:g} s")
    return ", ".join(parts) or "none refused"


def _closes(report: dict[str, Any]) -> str:
    prefix = "closed by the server: "
    counts: dict[str, int] = report.get("counts", {})
    parts = [
        f"{n:,} x {key.removeprefix(prefix)}"
        for key, n in sorted(counts.items())
        if key.startswith(prefix)
    ]
    return ", ".join(parts) or "none"


#: Attacker counts that are not answers from the server.
_NOT_ANSWERS: Final = (
    "connection",
    "refused ",
    "closed by",
    "hellos",
    "big frames",
    "rounds",
    "accepted",
    "cannot",
    "signup:",
    "wrong logins:",
    "no welcome",
    "not resumed",
    "frames before",
    "logged-in connection",
    "login connection",
    "the attacker",
)


def _answers(report: dict[str, Any]) -> str:
    counts: dict[str, int] = report.get("counts", {})
    parts = [
        f"{n:,} x {key}"
        for key, n in sorted(counts.items(), key=lambda kv: -kv[1])
        if not key.startswith(_NOT_ANSWERS)
    ]
    return "; ".join(parts) or "none"


def _quiet(*scenarios: Scenario) -> str:
    if all(scenario.quiet for scenario in scenarios):
        return ""
    return f"; the server still had connections {QUIET_TIMEOUT:g} s after the attack"


def _problems(*reports: dict[str, Any]) -> str:
    examples = list(dict.fromkeys(e for report in reports for e in report.get("examples", [])))
    return f"; attacker problems: {'; '.join(examples[:3])}" if examples else ""


def _hold_rows(label: str, where: str, scenario: Scenario) -> list[dict[str, Any]]:
    ready, done = scenario.ready, scenario.done
    setting = (
        f"1,000 Hello-only connections wanted from {where}, Hello again every 1 s, a refused "
        "one tried again every ~5 s, one closed by the server reopened at once"
    )
    rows = [_normal_row(label, setting, scenario.normal, scenario.server_cpu, _memory(scenario))]
    rows.append(
        {
            "what": "attacker's connections held, never logged in",
            "setting": f"{label}: {setting}; first 1,000 attempts: "
            f"{_count(ready, 'accepted'):,} accepted, {_refusals(ready)}; whole attack "
            f"({done.get('seconds', 0):.0f} s after the first 1,000, "
            f"{_count(done, 'connection attempts'):,} attempts in all): {_refusals(done)}, "
            f"closed by the server: {_closes(done)}; the server accepted {scenario.accepted:,} "
            f"connections after the first 1,000 (the normal client's included); "
            f"server RSS {_mb(scenario.rss_before)} before, {_mb(scenario.rss_ready)} while "
            f"held, peak {_mb(scenario.peak)}" + _problems(ready, done) + _quiet(scenario),
            "median": ready.get("peak_held", 0),
            "unit": "connections",
            "spread": f"peak {done.get('peak_held', 0)} over the attack",
            "comparison": "caps: 32 per address, 500 server-wide",
        }
    )
    return rows


def _signup_rows(label: str, where: str, scenario: Scenario, newcomer: str) -> list[dict[str, Any]]:
    done = scenario.done
    setting = (
        f"CreateAccount flood from {where}, a new request as soon as one is answered, "
        "a connection closed by the server reopened"
    )
    rows = [_normal_row(label, setting, scenario.normal, scenario.server_cpu, _memory(scenario))]
    created = _count(done, "AccountCreated")
    answered = sum(
        n for key, n in done.get("counts", {}).items() if key == "AccountCreated" or ": " in key
    ) - sum(n for key, n in done.get("counts", {}).items() if key.startswith("closed by"))
    seconds = done.get("seconds", 0.0) or 1.0
    rows.append(
        {
            "what": "accounts created by the flood",
            "setting": f"{label}: {setting}; {answered:,} answered in {seconds:.0f} s "
            f"({answered / seconds:,.0f}/s): {_answers(done)}; closed by the server: "
            f"{_closes(done)}; a new sign-up from 127.0.0.1 right after: {newcomer}"
            + _problems(scenario.ready, done)
            + _quiet(scenario),
            "median": created,
            "unit": "accounts",
            "spread": f"{answered - created:,} refused",
            "comparison": "limits: 5 per address, 200 server-wide, per hour",
        }
    )
    return rows


def _burst_rows(label: str, bursts: list[Scenario]) -> list[dict[str, Any]]:
    runs = [run for burst in bursts for run in burst.normal]
    cpu = statistics.median(burst.server_cpu for burst in bursts)
    peak = max(burst.peak for burst in bursts)
    setting = (
        f"64 wrong passwords for one account at once, {BURST_CONNECTIONS} connections x "
        f"{BURST_IN_FLIGHT} in flight; one burst per run, each on a fresh account from a fresh "
        f"address (127.0.0.2-127.0.0.{1 + len(bursts)})"
    )
    memory = f"server RSS {_mb(bursts[0].rss_before)} before, peak {_mb(peak)}"
    rows = [_normal_row(label, setting, runs, cpu, memory)]
    checks = [burst.requests.get("Login", {}).get("unauthenticated", 0) for burst in bursts]
    answers = Counter[str]()
    for burst in bursts:
        answers.update(burst.done.get("counts", {}))
    worst = max(checks)
    met = worst <= TARGET_CHECKS
    rows.append(
        {
            "what": "password checks run for a 64-login burst",
            "setting": f"{label}: {setting}; checks counted by the server (Login answered "
            f"'unauthenticated', i.e. after an Argon2id check); the attacker's answers over "
            f"{len(bursts)} bursts: {_answers({'counts': dict(answers)})}"
            + _problems(*(burst.done for burst in bursts))
            + _quiet(*bursts),
            "median": statistics.median(checks),
            "unit": "checks",
            "spread": f"bursts {min(checks)} - {worst}",
            "comparison": f"target <= {TARGET_CHECKS} every burst: {'met' if met else 'NOT met'}",
            "ratio": round(worst / TARGET_CHECKS, 2),
            "target_met": met,
        }
    )
    return rows


def _memory_rows(label: str, setting: str, scenario: Scenario) -> list[dict[str, Any]]:
    rows = [_normal_row(label, setting, scenario.normal, scenario.server_cpu)]
    before, peak, after = scenario.rss_before, scenario.peak, scenario.rss_after
    grown = (peak - before) / 1e6
    met = grown < TARGET_GROWTH_MB
    done = scenario.done
    base = "RSS" if scenario.peak_reset else "peak RSS (clear_refs refused)"
    rows.append(
        {
            "what": "server RSS growth under big frames (peak - before)",
            "setting": f"{label}: {setting}; {base} before the attacker started {_mb(before)}, "
            f"peak (VmHWM) {_mb(peak)}, after {_mb(after)}; attack {done.get('seconds', 0):.0f} s: "
            f"{_count(done, 'rounds'):,} rounds, {_count(done, 'big frames sent'):,} big frames "
            f"sent; closed by the server: {_closes(done)}; answers: {_answers(done)}"
            + _problems(scenario.ready, done)
            + _quiet(scenario),
            "median": round(grown, 1),
            "unit": "MB",
            "spread": f"before {_mb(before)}, peak {_mb(peak)}, after {_mb(after)}",
            "comparison": f"target < {TARGET_GROWTH_MB:g} MB: {'met' if met else 'NOT met'}",
            "ratio": round(grown / TARGET_GROWTH_MB, 2),
            "target_met": met,
        }
    )
    return rows


# -- the benchmark -------------------------------------------------------------------------


def _plan(kind: str, server: EdgeServer, addresses: tuple[str, ...], **kw: Any) -> AttackPlan:
    return AttackPlan(kind=kind, port=server.port, addresses=addresses, **kw)


def _range(first: int, count: int) -> tuple[str, ...]:
    return tuple(f"127.0.0.{n}" for n in range(first, first + count))


async def _shop_scenarios(root: Path) -> list[dict[str, Any]]:
    """Baseline, (a), (b) and (c) on one server."""
    rows: list[dict[str, Any]] = []
    server = await _started_server(root / "shop", victims=BURSTS)
    try:
        await _normal_series(server, 2)  # warm-up: caches, first TLS session
        base = await _scenario(server, None)
        rows.append(
            _normal_row("baseline", "no attack", base.normal, base.server_cpu, _memory(base))
        )

        hold = _plan("hold", server, (ATTACKER,), connections=1000)
        one = await _scenario(server, hold, pause=1.0, min_seconds=10.0)
        rows += _hold_rows("(a) Hello-only, one address", "127.0.0.2", one)
        # Each run may wait for the login deadline of the attacker's connections (30 s).
        hold = _plan("hold", server, _range(2, 32), connections=1000)
        many = await _scenario(server, hold, runs=SLOW_RUNS, pause=5.0)
        rows += _hold_rows("(a) Hello-only, 32 addresses", "127.0.0.2-127.0.0.33", many)

        flood = _plan("signup", server, (ATTACKER,), connections=8, prefix="fa")
        signups = await _scenario(server, flood, pause=0.5, settle=1.0, min_seconds=5.0)
        newcomer = await _new_signup(server, "newcomer1")
        rows += _signup_rows(
            "(b) sign-up flood, one address", "127.0.0.2, 8 conns x 16 in flight", signups, newcomer
        )
        spread = _plan("signup", server, _range(64, 64), connections=64, prefix="fb")
        # Each run may wait out the client's own budget for retrying rate_limited (30 s).
        signups = await _scenario(server, spread, runs=SLOW_RUNS, pause=2.0, settle=1.0)
        newcomer = await _new_signup(server, "newcomer2")
        rows += _signup_rows(
            "(b) sign-up flood, 64 addresses",
            "127.0.0.64-127.0.0.127, 1 conn x 16 in flight each",
            signups,
            newcomer,
        )

        bursts = []
        for n in range(BURSTS):
            plan = _plan(
                "wrong_logins",
                server,
                (f"127.0.0.{2 + n}",),
                connections=BURST_CONNECTIONS,
                in_flight=BURST_IN_FLIGHT,
                username=f"victim{n}",
                finite=True,
            )
            bursts.append(await _scenario(server, plan, runs=1, settle=0.0))
        rows += _burst_rows("(c) wrong-password burst", bursts)
    finally:
        server.stop()
    return rows


async def _memory_scenario(
    root: Path, name: str, plan: Callable[[EdgeServer], AttackPlan]
) -> Scenario:
    server = await _started_server(root / name)
    try:
        await _normal_series(server, 2)  # the baseline holds the TLS and handshake buffers
        await _wait_quiet(server)
        return await _scenario(server, plan(server), settle=1.0, min_seconds=10.0, memory=True)
    finally:
        server.stop()


async def _memory_scenarios(root: Path) -> list[dict[str, Any]]:
    """(d) on a fresh server each."""
    two = _range(2, 2)
    prelogin = await _memory_scenario(
        root,
        "frames-prelogin",
        lambda server: _plan(
            "frames_prelogin", server, two, connections=40, frames=5, frame_bytes=16 * MIB - 64
        ),
    )
    rows = _memory_rows(
        "(d) big frames before login",
        "40 connections never logged in (20 each from 127.0.0.2 and .3) each send 5 frames "
        "of 16 MiB, again and again",
        prelogin,
    )
    logged_in = await _memory_scenario(
        root,
        "frames-logged-in",
        lambda server: _plan(
            "frames_logged_in",
            server,
            two,
            connections=40,
            frames=5,
            frame_bytes=8 * MIB - 1024,
            username=HEAVY,
        ),
    )
    rows += _memory_rows(
        "(d) big frames after login",
        "40 connections logged in (resumed; 20 each from 127.0.0.2 and .3) each send 5 "
        "SearchByImage of ~8 MiB (the message limit) and await the replies, again and again",
        logged_in,
    )
    return rows


async def _bench(root: Path) -> list[dict[str, Any]]:
    rows = await _shop_scenarios(root)
    rows += await _memory_scenarios(root)
    return rows


def run() -> list[dict[str, Any]]:
    """Run the benchmark; one row per figure (see ``tests/bench/run.py``)."""
    _raise_open_files()
    with tempfile.TemporaryDirectory(prefix="pixmart-bench-edge-") as tmp:
        return asyncio.run(_bench(Path(tmp)))


def main() -> None:
    """Print the figures."""
    for row in run():
        figure = row.get("median", row.get("median_ms"))
        unit = row.get("unit", "ms")
        extra = f"  [{row['comparison']}]" if row.get("comparison") else ""
        print(f"{row['what']}: {figure:,} {unit} ({row['spread']}){extra}")
        print(f"    {row['setting']}")


if __name__ == "__main__":
    main()
