"""Provides the TUI start-up benchmark: seconds from launching ``pixmart`` to a usable login screen.

:func:`tests.ui.startup_probe.measure_startup` runs the real command in a 120x40 pseudo-terminal
with a fresh config dir (nothing remembered, no server contacted) and stops the clock when the
login form is drawn, i.e. when Textual reads keys. Side by side, as floors no Python TUI can
beat, the same interpreter running ``pass`` and ``import textual.app`` to completion in a
subprocess. Medians of five runs each, after one untimed warm-up run that fills the OS file
cache.

Run alone with ``.venv/bin/python -m tests.bench.bench_tui``; ``make bench`` collects ``run()``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any, Final

from tests.ui.startup_probe import measure_startup

RUNS: Final = 5


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


def run() -> list[dict[str, Any]]:
    """The three rows: pixmart to its login screen, and the two interpreter floors."""
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
    return [tui, bare, textual]


if __name__ == "__main__":
    for row in run():
        extra = f"  ({row['comparison']} x{row['ratio']})" if row.get("comparison") else ""
        print(
            f"{row['what']:<38} {row['median_s']:.3f} s  [{row['spread']}]  {row['setting']}{extra}"
        )
