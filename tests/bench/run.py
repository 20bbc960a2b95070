"""Provides ``make bench``: runs every ``tests/bench/bench_*.py`` and writes docs/benchmarks.*.

Each benchmark module exposes ``run() -> list[dict]``; a row has ``what``, ``setting``, ``median``
and ``unit`` (or ``median_ms``), optionally ``spread``, ``comparison`` and ``ratio``. Figures are
medians of several runs and comparisons are made side by side in the same run, never as timing
assertions in unit tests.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import tests.bench as bench_package

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _normalise(module: str, row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    if "median" not in row:
        for key in ("median_ms", "value", "median_s"):
            if key in row:
                row["median"] = row.pop(key)
                row.setdefault("unit", {"median_ms": "ms", "median_s": "s"}.get(key, ""))
                break
    row.setdefault("unit", "")
    row.setdefault("setting", "")
    row.setdefault("spread", "")
    row.setdefault("comparison", "")
    row.setdefault("ratio", "")
    row["module"] = module
    return row


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def write_report(rows: list[dict[str, Any]], failures: list[str], seconds: float) -> None:
    """Write docs/benchmarks.md and docs/benchmarks.json."""
    DOCS.mkdir(exist_ok=True)
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
        "seconds": round(seconds, 1),
    }
    (DOCS / "benchmarks.json").write_text(
        json.dumps({"meta": meta, "rows": rows, "failures": failures}, indent=2, default=str) + "\n"
    )
    lines = [
        "# Benchmarks",
        "",
        f"Written by `make bench` on {meta['date']} ({meta['machine']}, Python {meta['python']}).",
        "Each figure is the median of several runs; comparisons ran side by side in the same run.",
        "",
        "| what | setting | median | spread | comparison | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        median = f"{_fmt(row['median'])} {row['unit']}".strip()
        lines.append(
            f"| {row['what']} | {row['setting']} | {median} | {_fmt(row['spread'])} "
            f"| {row['comparison']} | {_fmt(row['ratio'])} |"
        )
    if failures:
        lines += ["", "## Benchmarks that failed", ""] + [f"- {f}" for f in failures]
    (DOCS / "benchmarks.md").write_text("\n".join(lines) + "\n")


def _previous_rows(exclude: set[str]) -> list[dict[str, Any]]:
    """Rows of the last full report whose module is not in ``exclude``."""
    try:
        previous = json.loads((DOCS / "benchmarks.json").read_text())
    except (OSError, ValueError):
        return []
    return [row for row in previous.get("rows", []) if row.get("module") not in exclude]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks (all, or those whose module name contains a filter word)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("only", nargs="*", help="run only modules whose name contains one of these")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    names = sorted(
        info.name
        for info in pkgutil.iter_modules(bench_package.__path__)
        if info.name.startswith("bench_")
    )
    for name in names:
        if args.only and not any(word in name for word in args.only):
            continue
        print(f"== {name}", flush=True)
        try:
            module = importlib.import_module(f"tests.bench.{name}")
            for row in module.run():
                row = _normalise(name, row)
                rows.append(row)
                print(
                    f"   {row['what']} [{row['setting']}]: {_fmt(row['median'])} {row['unit']}",
                    flush=True,
                )
        except Exception:
            failures.append(f"{name}: {traceback.format_exc(limit=3).splitlines()[-1]}")
            traceback.print_exc()
    if args.only:
        # A partial run refreshes its own modules' rows and keeps the others' from the last run.
        rows = _previous_rows(exclude={row["module"] for row in rows}) + rows
    write_report(rows, failures, time.perf_counter() - started)
    print(f"wrote {DOCS / 'benchmarks.md'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
