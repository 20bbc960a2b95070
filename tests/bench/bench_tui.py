"""Provides the TUI start-up benchmarks: to a usable login screen, and to a full gallery.

:func:`tests.ui.startup_probe.measure_startup` runs the real command in a 120x40 pseudo-terminal
with a fresh config dir (nothing remembered, no server contacted) and stops the clock when the
login form is drawn, i.e. when Textual reads keys. Side by side, as floors no Python TUI can
beat, the same interpreter running ``pass`` and ``import textual.app`` to completion in a
subprocess. Medians of five runs each, after one untimed warm-up run that fills the OS file
cache.

Reopening the app (issue #21): a ``pixmart-server`` process holds 1,000 items with real WebP
thumbnails (seeded through the storage layer beforehand); the app is built as ``pixmart``
builds it, with a saved session, and runs headless at 120x40. The clock starts just before the
app is built and stops at the first frame drawn with a picture on every card the grid shows ("a full
gallery"; frames are watched from the start, as ``run_test`` hands over only when the screen is
idle, which can be after the connection and the reconcile):
with an empty cache (a cold open: the first batch comes from the server), and again with the
cache that run left (a warm reopen: the saved gallery and its pictures come from disk, before
the server has answered), then until the warm gallery was reconciled with the server's first
batch. Each run has a cache dir of its own; medians of five runs after one untimed pair. As a
floor, the same app with no server to go to, timed to its login screen: what Textual itself
takes to draw its first screen in this process on this machine at that moment.

Run alone with ``.venv/bin/python -m tests.bench.bench_tui``; ``make bench`` collects ``run()``.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final
from unittest import mock

from textual.app import ScreenStackError

from backend.config import ServerConfig
from backend.server import PixmartServer
from protocol.client import Session
from protocol.trust import TrustPolicy
from tests.bench.bench_startup import _LISTENING, LISTEN_TIMEOUT, SERVER, _env, _read_until, _stop
from tests.support.catalogue import catalogue as catalogue_of
from tests.support.load import seed_items, small_thumbnail
from tests.ui.startup_probe import measure_startup
from tui.app import PixmartApp
from tui.launch import build_app
from tui.screens.gallery import GalleryScreen
from tui.screens.login import LoginScreen
from tui.store import ClientStore
from tui.widgets.card_grid import CardGrid, ItemTile
from tui.widgets.picture import Picture

RUNS: Final = 5
#: Items in the reopen benchmark's shop, and cards per batch (as the gallery asks by default).
REOPEN_ITEMS: Final = 1_000
REOPEN_BATCH: Final = 24
#: A warm reopen shows a full gallery within this (the issue's target).
REOPEN_TARGET_MS: Final = 300.0


def _interpreter(code: str) -> float:
    """Seconds to start this Python, run ``code`` and exit."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return time.perf_counter() - started


def _row(what: str, setting: str, measure: Callable[[], float]) -> dict[str, Any]:
    """A row from one warm-up and ``RUNS`` timed calls of ``measure`` (in seconds)."""
    measure()
    samples = sorted(measure() for _ in range(RUNS))
    return {
        "what": what,
        "setting": setting,
        "median_s": round(statistics.median(samples), 3),
        "spread": f"{samples[0]:.2f} - {samples[-1]:.2f} s",
    }


# -- reopening with a warm cache ---------------------------------------------------------------


def _full_gallery(app: PixmartApp) -> bool:
    """Whether the gallery shows cards and every one of them has its picture drawn."""
    if not isinstance(_screen(app), GalleryScreen):
        return False
    grids = app.screen.query(CardGrid)
    if not grids or not grids.first().items:
        return False
    shown = [tile for tile in app.screen.query(ItemTile) if tile.card is not None]
    return bool(shown) and all(tile.query_one(Picture).picture is not None for tile in shown)


def _screen(app: PixmartApp) -> object:
    """The app's screen, or ``None`` before it installed one."""
    try:
        return app.screen
    except ScreenStackError:
        return None


def _reconciled(app: PixmartApp) -> bool:
    grid = app.screen.query(CardGrid)
    view = grid.first().parent if grid else None
    listing = getattr(view, "listing", None)
    return listing is not None and listing.started and not listing.provisional


def _first_frame(app: PixmartApp, condition: Callable[[], bool]) -> asyncio.Future[float]:
    """The ``perf_counter`` of the first frame the app draws while ``condition`` holds.

    Watched from the app's start, frame by frame (headless, a frame is composed but not
    written): ``run_test`` hands over only once the screen's widgets are idle, which on a warm
    reopen can be after the connection and the reconcile.
    """
    drawn: asyncio.Future[float] = asyncio.get_running_loop().create_future()
    display = app._display

    def watched(screen: Any, renderable: Any) -> None:
        display(screen, renderable)
        if renderable is not None and not drawn.done() and condition():
            drawn.set_result(time.perf_counter())

    app._display = watched  # type: ignore[method-assign]
    return drawn


async def _until(app: PixmartApp, condition: Callable[[], bool], timeout: float = 60.0) -> float:
    """Poll ``condition`` every millisecond; return the ``perf_counter`` when it held."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the app did not get there in time (screen: {app.screen})")
        await asyncio.sleep(0.001)
    return time.perf_counter()


async def _open(
    url: str, trust: TrustPolicy, store: ClientStore, cache: Path
) -> tuple[float, float]:
    """Open the app; milliseconds to a full gallery, and to one reconciled with the server."""
    # From the app being built: it reads the saved gallery and starts its pictures then.
    started = time.perf_counter()
    # Built as in a 120x40 terminal: a real one tells the app its size before Textual starts
    # (headless, only run_test's size would), and the app decodes that screenful first.
    with mock.patch.dict(os.environ, {"COLUMNS": "120", "LINES": "40"}):
        app = build_app(
            store=store, trust=trust, server_url=url, listing_batch=REOPEN_BATCH, cache_root=cache
        )
    full_gallery = _first_frame(app, lambda: _full_gallery(app))
    async with app.run_test(size=(120, 40)):
        full = await asyncio.wait_for(full_gallery, 60)
        reconciled = await _until(app, lambda: _reconciled(app) and _full_gallery(app))
        # Let the gallery's save for the next start land before the app closes.
        await asyncio.sleep(0.2)
    return (full - started) * 1000, (reconciled - started) * 1000


async def _floor(store: ClientStore, cache: Path) -> float:
    """Milliseconds from starting the app (no server known) to its first frame (the login)."""
    started = time.perf_counter()
    app = build_app(store=store, trust=TrustPolicy(), server_url=None, cache_root=cache)
    login = _first_frame(app, lambda: isinstance(_screen(app), LoginScreen))
    async with app.run_test(size=(120, 40)):
        shown = await asyncio.wait_for(login, 60)
    return (shown - started) * 1000


async def _seed_shop(root: Path) -> tuple[str, str]:
    """List the shop's items on a server in this process, then stop it.

    Returns:
        The seller's session token and the server's certificate fingerprint.
    """
    subprocess.run([str(SERVER), "keys", "init", str(root / "key")], check=True, env=_env())
    config = ServerConfig(
        data_dir=root / "server", port=0, enable_vision=False, master_key_file=root / "key"
    )
    server = PixmartServer(config)
    await server.start()
    try:
        trust = TrustPolicy(fingerprint=server.fingerprint)
        session = Session(f"wss://127.0.0.1:{server.port}", trust)
        await session.connect()
        await session.create_account("seller", "password123")
        await session.login("seller", "password123")
        assert session.user is not None and session.token is not None
        thumbnails = [small_thumbnail(n) for n in range(REOPEN_BATCH)]
        await seed_items(
            server.db,
            [session.user.id],
            REOPEN_ITEMS,
            thumbnails=thumbnails,
            preview=thumbnails[0],
            derivatives=catalogue_of(server).derivatives,
        )
        token = session.token
        await session.close()
        return token, server.fingerprint
    finally:
        await server.stop()


async def _measure_reopen(root: Path) -> dict[str, list[float]]:
    token, fingerprint = await _seed_shop(root)
    # The server the app talks to runs in a process of its own, as a real one would: in this
    # process it would share the app's event loop and interpreter lock.
    command = [str(SERVER), "--data-dir", str(root / "server"), "--key-file", str(root / "key")]
    process = subprocess.Popen(
        [*command, "serve", "--port", "0", "--no-vision"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        env=_env(),
    )
    try:
        port = _read_until(process, _LISTENING, LISTEN_TIMEOUT)
        url = f"wss://127.0.0.1:{port}"
        trust = TrustPolicy(fingerprint=fingerprint)
        store = ClientStore(root / "client")
        store.save_token(url, token)
        figures: dict[str, list[float]] = {"cold": [], "warm": [], "reconciled": [], "floor": []}
        for run in range(RUNS + 1):
            cache = root / f"cache-{run}"
            cold, _ = await _open(url, trust, store, cache)
            warm, reconciled = await _open(url, trust, store, cache)
            floor = await _floor(ClientStore(root / f"floor-{run}"), root / f"floor-cache-{run}")
            if run:  # the first pair warms imports, the server's caches and the OS file cache
                figures["cold"].append(cold)
                figures["warm"].append(warm)
                figures["reconciled"].append(reconciled)
                figures["floor"].append(floor)
        return figures
    finally:
        _stop(process)


def _reopen_rows() -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="pixmart-bench-reopen-") as tmp:
        figures = asyncio.run(_measure_reopen(Path(tmp)))
    setting = f"{REOPEN_ITEMS:,} items, batches of {REOPEN_BATCH}, app headless at 120x40"

    def row(what: str, samples: list[float], **extra: Any) -> dict[str, Any]:
        return {
            "what": what,
            "setting": setting,
            "median_ms": round(statistics.median(samples), 1),
            "spread": f"{min(samples):.0f} - {max(samples):.0f} ms",
            **extra,
        }

    warm = statistics.median(figures["warm"])
    cold = statistics.median(figures["cold"])
    return [
        row(
            "warm reopen: full gallery from the cache",
            figures["warm"],
            comparison=f"target {REOPEN_TARGET_MS:.0f} ms",
            ratio=round(warm / REOPEN_TARGET_MS, 2),
        ),
        row("  warm reopen: reconciled with the server", figures["reconciled"]),
        row(
            "  cold open: full gallery (empty cache)",
            figures["cold"],
            comparison="warm reopen vs cold",
            ratio=round(warm / cold, 2),
        ),
        row(
            "  floor: the app to its login screen, no server",
            figures["floor"],
            comparison="floor vs warm reopen",
            ratio=round(statistics.median(figures["floor"]) / warm, 2),
        ),
    ]


def run() -> list[dict[str, Any]]:
    """The rows: pixmart to its login screen, the two interpreter floors, and the reopen."""
    tui = _row(
        "TUI start-up to interactive login",
        "pixmart in a 120x40 pty, fresh config, no server",
        measure_startup,
    )
    bare = _row("  floor: interpreter start", "python -c pass", lambda: _interpreter("pass"))
    textual = _row(
        "  floor: interpreter + Textual import",
        "python -c 'import textual.app'",
        lambda: _interpreter("import textual.app"),
    )
    for floor in (bare, textual):
        floor["comparison"] = "vs pixmart start-up"
        floor["ratio"] = round(floor["median_s"] / tui["median_s"], 2)
    return [tui, bare, textual, *_reopen_rows()]


if __name__ == "__main__":
    only_reopen = sys.argv[1:] == ["reopen"]
    for row in _reopen_rows() if only_reopen else run():
        extra = f"  ({row['comparison']} x{row['ratio']})" if row.get("comparison") else ""
        value = f"{row['median_s']:.3f} s" if "median_s" in row else f"{row['median_ms']:.0f} ms"
        print(f"{row['what']:<42} {value}  [{row['spread']}]  {row['setting']}{extra}")
