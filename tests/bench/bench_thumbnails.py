"""Provides the thumbnail benchmark: pictures inline in every batch (the old path) against
pictures addressed by content (the new), side by side in one run.

The shop and the clients are ``bench_load``'s (10,000 items, batches of 24, a real
``pixmart-server`` process, clients in one or two other processes, 1, 50 and 200 clients flat
out and 200 people scrolling), with two changes:

* every item has a thumbnail of its own (``seed_items(unique_thumbnails=True)``): a client
  that keeps pictures by content finds none shared by accident;
* each client first pages through :data:`WINDOW` batches untimed, then the timed batches go
  over those same batches again and again (back to the top after :data:`WINDOW`): a person
  scrolling back over what they saw, re-sorting, reopening an item. This is what costs the
  server today: every batch carries its 24 pictures inline again. A last pair of rows times
  the first pass instead (no window): a cold client must not get slower.

Old path: ``PictureMode.INLINE`` (every card carries its picture, as clients did before). New
path: ``PictureMode.UNSENT``, the client's default: the connection's first batch inline, later
ones by hash, the client filling cards in from its store (each card of every batch is checked
to have its picture and its hash verified either way). Both paths run the same settings, one
after the other, in each round, so the machine's load (other engineers' work) touches both.

Figures per setting and path: batch latency p50 and p99 (client side, request to a full batch),
batches per second, server CPU per batch (the server process's CPU time over the batches it
served), and picture bytes per batch on the wire. The new path's rows carry its ratio to the
old's.

The old path on this server already reads no picture from the database (the opened-picture
cache is keyed by content hash now). To time today's server as it was, set
``PIXMART_BENCH_BASELINE`` to a git revision (e.g. the commit before content addressing): its
tree is taken with ``git archive``, seeded by its own code, and served by its own code beside
this one; its rows ("today's server") run in the same rounds, and the other rows' ratios are
then to it.

Run alone with ``.venv/bin/python -m tests.bench.bench_thumbnails``; ``make bench`` collects
``run()``.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Final

from protocol.messages.catalogue import PictureMode
from tests.bench.bench_catalogue import ITEMS
from tests.bench.bench_catalogue import _seed as seed_catalogue
from tests.bench.bench_load import BATCH, SETTINGS, Setting, _one_run, _Run, _tokens
from tests.support.commerce import ServerProcess
from tests.support.load import percentile, summary

#: Batches a client scrolls back over: 480 pictures, inside what the server remembers per
#: connection (``backend.sent_pictures.SENT_PICTURES``).
WINDOW: Final = 20
#: Rounds; each runs every setting on both paths.
RUNS: Final = 2
#: The first pass of a listing (no window), flat out.
COLD: Final = Setting(200, 20)
#: (name, server, mode): the paths timed, on this server or today's (the baseline).
PATHS: Final = (
    ("today", "baseline", PictureMode.INLINE),
    ("old", "current", PictureMode.INLINE),
    ("new", "current", PictureMode.UNSENT),
)
_LABELS: Final = {
    "today": "today's server ({rev}), inline thumbnails",
    "old": "inline thumbnails (old path)",
    "new": "thumbnails by content (new path)",
}
BASELINE_ENV: Final = "PIXMART_BENCH_BASELINE"
REPOSITORY: Final = Path(__file__).resolve().parents[2]


async def _server(root: Path) -> tuple[ServerProcess, tuple[str, ...]]:
    data_dir = root / "thumbnail-server"
    await seed_catalogue(data_dir, unique_thumbnails=True)
    return await _started(ServerProcess(data_dir))


async def _started(server: ServerProcess) -> tuple[ServerProcess, tuple[str, ...]]:
    await server.start()
    try:
        return server, await _tokens(server)
    except BaseException:
        server.stop()
        raise


def _baseline(root: Path, rev: str) -> tuple[ServerProcess, tuple[str, ...]]:
    """Today's server: the tree of ``rev``, seeded and served by its own code."""
    tree = root / "baseline-tree"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPOSITORY), "archive", rev], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    first = f"import sys; sys.path.insert(0, {str(tree)!r}); "
    data_dir = root / "baseline-server"
    seed = (
        "import asyncio; from pathlib import Path; "
        "from tests.bench.bench_catalogue import _seed; "
        f"asyncio.run(_seed(Path({str(data_dir)!r})))"
    )
    subprocess.run([sys.executable, "-c", first + seed], check=True, capture_output=True)
    serve = first + "from backend.cli import main; sys.exit(main())"
    return asyncio.run(_started(ServerProcess(data_dir, program=[sys.executable, "-c", serve])))


def _figures(runs: list[_Run]) -> dict[str, list[float]]:
    """Per-run figures of one setting and path."""
    return {
        "batch latency p50": [percentile(run.latencies_ms, 50) for run in runs],
        "batch latency p99": [percentile(run.latencies_ms, 99) for run in runs],
        "batches served": [run.batches_per_s for run in runs],
        "server CPU per batch": [
            1000 * run.server_cpu / run.batches_per_s if run.batches_per_s else float("nan")
            for run in runs
        ],
        "picture bytes per batch on the wire": [run.wire_kb for run in runs],
    }


_UNITS: Final = {
    "batch latency p50": "ms",
    "batch latency p99": "ms",
    "batches served": "batches/s",
    "server CPU per batch": "CPU ms",
    "picture bytes per batch on the wire": "KB",
}


def _rows(
    setting: Setting, window: int | None, by_path: dict[str, list[_Run]], rev: str | None
) -> list[dict[str, Any]]:
    """The rows of one setting, with ratios to today's server (or else to the old path)."""
    how = (
        f"each client over the same {window} batches again"
        if window
        else "the first pass of the listing"
    )
    rows: list[dict[str, Any]] = []
    reference = "today" if "today" in by_path else "old"
    baseline = _figures(by_path[reference])
    for path, runs in by_path.items():
        figures = _figures(runs)
        errors = sum(len(run.errors) for run in runs)
        requests = sum(run.requests for run in runs)
        label = _LABELS[path].format(rev=rev)
        described = (
            f"{label}; {ITEMS:,} items, batches of {BATCH}, {setting.describe()}, {how}, "
            f"{len(runs)} runs"
        )
        if errors:
            described += f"; ERRORS: {errors} of {requests} requests"
        for what, values in figures.items():
            row: dict[str, Any] = {
                "what": what,
                "setting": described,
                "median": statistics.median(values),
                "unit": _UNITS[what],
                "spread": summary(values),
            }
            base = statistics.median(baseline[what])
            if path != reference and base:
                row["comparison"] = f"{reference} path, same run"
                row["ratio"] = row["median"] / base
            rows.append(row)
        if errors:
            rows.append(
                {
                    "what": "errors while paging",
                    "setting": described,
                    "median": errors,
                    "unit": "errors",
                    "spread": f"of {requests} requests",
                    "examples": sorted({e for run in runs for e in run.errors})[:3],
                }
            )
    return rows


def measure(root: Path) -> list[dict[str, Any]]:
    """Every setting on both paths, :data:`RUNS` rounds (see the module docstring)."""
    rev = os.environ.get(BASELINE_ENV) or None
    servers = {"current": asyncio.run(_server(root))}
    plans = [(setting, WINDOW) for setting in SETTINGS] + [(COLD, None)]
    results: dict[tuple[int, str], list[_Run]] = {}
    loads: list[float] = []
    try:
        if rev is not None:
            servers["baseline"] = _baseline(root, rev)
        for server, tokens in servers.values():
            _one_run(server, tokens, Setting(20, 5))  # warm-up: caches, reader threads
        for _ in range(RUNS):
            for index, (setting, window) in enumerate(plans):
                for path, where, mode in PATHS:
                    if where not in servers:
                        continue
                    server, tokens = servers[where]
                    loads.append(os.getloadavg()[0])
                    run = _one_run(server, tokens, setting, pictures=mode, window=window)
                    results.setdefault((index, path), []).append(run)
    finally:
        for server, _ in servers.values():
            server.stop()
    rows: list[dict[str, Any]] = []
    for index, (setting, window) in enumerate(plans):
        by_path = {path: results[(index, path)] for path, *_ in PATHS if (index, path) in results}
        rows += _rows(setting, window, by_path, rev)
    rows.append(
        {
            "what": "machine load before each run",
            "setting": f"1-minute load average, {os.cpu_count()} cores (other work included)",
            "median": statistics.median(loads),
            "unit": "",
            "spread": summary(loads),
        }
    )
    return rows


def run() -> list[dict[str, Any]]:
    """Run the benchmark; one row per figure (see ``tests/bench/run.py``)."""
    with tempfile.TemporaryDirectory(prefix="pixmart-bench-thumbnails-") as tmp:
        return measure(Path(tmp))


def main() -> None:
    """Print the figures."""
    for row in run():
        extra = f"  [{row['comparison']}: x{row['ratio']:.2f}]" if row.get("comparison") else ""
        print(
            f"{row['what']} [{row['setting']}]: {row['median']:.4g} {row['unit']}"
            f" ({row['spread']}){extra}"
        )


if __name__ == "__main__":
    main()
