"""Benchmark of the image search's retrieval quality on the labelled development set.

Runs ``python -m backend.vision.evaluate``'s measurement (every picture through the upload path,
the product's int8 model, leave-one-out cosine ranking) over ``tests/data/vision-devset`` and
reports P@1, P@5 and P@10 with the whole pipeline's images per second. Quality does not vary
run to run; the speed does with the machine's load. ``docs/vision-quality.md`` explains the set
and the variants measured before the product's pipeline was chosen.

Run with ``.venv/bin/python -m tests.bench.bench_vision_quality``; ``make bench`` collects
``run()``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from backend.vision.embedder import MODEL_VERSION, Embedder
from backend.vision.evaluate import evaluate

DEVSET = Path(__file__).resolve().parents[1] / "data" / "vision-devset"


def run() -> list[dict[str, Any]]:
    """Retrieval precision of the product's pipeline on the development set; one row per k."""
    with tempfile.TemporaryDirectory() as cache:
        report = evaluate(DEVSET, Embedder(Path(cache)))
    setting = f"{report.images} pictures, {report.classes} classes, {MODEL_VERSION}"
    rows: list[dict[str, Any]] = [
        {"what": f"retrieval P@{k} (dev set)", "setting": setting, "value": round(value, 4),
         "unit": "", "spread": "deterministic"}
        for k, value in report.precision.items()
    ]
    rows.append({"what": "evaluate throughput (dev set)",
                 "setting": "validate, decode, letterbox, int8 + GeM, batch 32",
                 "value": round(report.images_per_second, 1), "unit": "images/s",
                 "spread": "single run"})
    return rows


def main() -> None:
    """Print the figures."""
    for row in run():
        print(f"{row['what']:<32} {row['setting']:<60} {row['value']} {row['unit']}")


if __name__ == "__main__":
    main()
