"""Benchmarks of the vision stack: index search latency and embedding throughput.

1. Top-24 search over 10k, 100k and 1M synthetic unit vectors (1280-d, 90% public rows, a
   viewer with some private rows), side by side with numpy (float32 matrix-vector product plus
   ``argpartition``, visibility applied as a mask) and faiss-cpu ``IndexFlatIP`` (float32, no
   visibility filter: a lower bound for any exact scan). Medians over several queries.
2. Embedding throughput in images per second on decoded uint8 224x224 batches of 32: the int8
   TFLite model (the product's runtime), a plain float32 TFLite conversion and Keras
   ``predict_on_batch``, plus the asyncio worker fed by 64 concurrent single-picture requests.

Run with ``.venv/bin/python -m tests.bench.bench_vision [--sizes 10000,100000]``;
``make bench`` collects ``run()``. The machine is shared, so figures vary run to run.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from backend.vision.embedder import Embedder
from backend.vision.index import VectorIndex
from backend.vision.worker import EmbeddingWorker

DIM = 1280
K = 24
SIZES = (10_000, 100_000, 1_000_000)
QUERIES = 15
VIEWER = 7


def _summary(samples_ms: Sequence[float]) -> tuple[float, str]:
    ordered = sorted(samples_ms)
    deciles = statistics.quantiles(ordered, n=10, method="inclusive")
    return statistics.median(ordered), f"p10 {deciles[0]:.1f} - p90 {deciles[8]:.1f} ms"


def _time_ms(action: Callable[[], object], repeats: int) -> list[float]:
    action()  # warm-up (XLA compile, caches)
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def _synthetic(count: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    vectors = np.empty((count, DIM), np.float32)
    for start in range(0, count, 65536):  # chunked: bounded float64 scratch
        block = rng.standard_normal((min(65536, count - start), DIM), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        vectors[start : start + len(block)] = block
    owners = rng.integers(0, 1000, count)
    public = rng.random(count) < 0.9
    return vectors, owners, public


def _numpy_ms(vectors: np.ndarray, owners: np.ndarray, public: np.ndarray,
              queries: np.ndarray) -> list[float]:
    visible = public | (owners == VIEWER)
    picks = iter(range(10**9))

    def search() -> object:
        scores = vectors @ queries[next(picks) % len(queries)]
        scores[~visible] = -np.inf
        top = np.argpartition(-scores, K)[:K]
        return top[np.argsort(-scores[top])]

    return _time_ms(search, len(queries))


def _faiss_ms(vectors: np.ndarray, queries: np.ndarray) -> list[float]:
    import faiss

    flat = faiss.IndexFlatIP(DIM)
    flat.add(vectors)
    picks = iter(range(10**9))
    return _time_ms(lambda: flat.search(queries[next(picks) % len(queries)][None], K),
                    len(queries))


def _index_ms(index: VectorIndex, queries: np.ndarray) -> tuple[float, list[float]]:
    started = time.perf_counter()
    index.search(queries[0], K, viewer_id=VIEWER)
    first_ms = (time.perf_counter() - started) * 1000
    picks = iter(range(10**9))
    samples = _time_ms(
        lambda: index.search(queries[next(picks) % len(queries)], K, viewer_id=VIEWER),
        len(queries))
    return first_ms, samples


def _search_rows(count: int) -> list[dict[str, Any]]:
    vectors, owners, public = _synthetic(count, seed=count)
    rng = np.random.default_rng(1)
    noise = rng.standard_normal((QUERIES, DIM)).astype(np.float32) * 0.02
    queries = vectors[rng.integers(0, count, QUERIES)] + noise
    numpy_ms, numpy_spread = _summary(_numpy_ms(vectors, owners, public, queries))
    faiss_ms, faiss_spread = _summary(_faiss_ms(vectors, queries))
    gc.collect()
    index = VectorIndex(DIM)
    started = time.perf_counter()
    index.add_many(np.arange(count), vectors, owners, public)
    load_s = time.perf_counter() - started
    first_ms, samples = _index_ms(index, queries)
    ours_ms, ours_spread = _summary(samples)
    label = f"{count:,} x {DIM}"
    return [
        {"what": "top-24 search", "setting": f"{label}, VectorIndex (int8 scan + exact f16)",
         "median_ms": round(ours_ms, 2), "spread": ours_spread,
         "comparison": "baseline", "ratio": 1.0},
        {"what": "top-24 search", "setting": f"{label}, numpy f32 matvec + argpartition",
         "median_ms": round(numpy_ms, 2), "spread": numpy_spread,
         "comparison": "vs VectorIndex", "ratio": round(numpy_ms / ours_ms, 2)},
        {"what": "top-24 search", "setting": f"{label}, faiss IndexFlatIP f32 (no filter)",
         "median_ms": round(faiss_ms, 2), "spread": faiss_spread,
         "comparison": "vs VectorIndex", "ratio": round(faiss_ms / ours_ms, 2)},
        {"what": "index bulk load", "setting": f"{label}, add_many",
         "median_s": round(load_s, 1), "spread": "single run"},
        {"what": "first search (XLA compile)", "setting": label,
         "median_ms": round(first_ms, 1), "spread": "single run"},
    ]


def bench_search(sizes: Sequence[int] = SIZES) -> list[dict[str, Any]]:
    """Top-24 search latency: VectorIndex vs numpy float32 vs faiss IndexFlatIP."""
    rows: list[dict[str, Any]] = []
    for count in sizes:
        rows += _search_rows(count)
        gc.collect()  # the next size needs the memory (1M rows: ~10 GB in flight)
    return rows


def _float32_tflite_embed(keras_model: Any) -> Callable[[np.ndarray], object]:  # noqa: ANN401
    """Return a function running a plain float32 TFLite conversion of ``keras_model``.

    The product ships the int8 model; this is the conversion it replaced, kept here so every
    report shows what quantisation buys on the machine of the day. It runs on the product's
    own interpreter wrapper, so only the model differs.
    """
    from backend.vision.embedder import _TfliteNetwork
    from backend.vision.tfenv import quiet_native_stderr, tensorflow

    tf = tensorflow()
    with tempfile.TemporaryDirectory() as scratch, quiet_native_stderr():
        keras_model.export(f"{scratch}/saved", format="tf_saved_model", verbose=False)
        flatbuffer = tf.lite.TFLiteConverter.from_saved_model(f"{scratch}/saved").convert()
    network = _TfliteNetwork(flatbuffer, num_threads=2)
    return lambda batch: network.run(batch.astype(np.float32))


def bench_embedding(batches: int = 6) -> list[dict[str, Any]]:
    """Images per second on uint8 224x224 batches of 32, per runtime and through the worker."""
    from backend.vision.model import build_keras_model
    from backend.vision.weights import load_state_dict

    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (32, 224, 224, 3), dtype=np.uint8)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as cache:
        tflite = Embedder(Path(cache))
        keras = Embedder(Path(cache), runtime="keras")
        float32 = _float32_tflite_embed(build_keras_model(load_state_dict()))
        ours = "TFLite int8 (LiteRT XNNPACK, 2 threads)"
        runtimes: tuple[tuple[str, Callable[[np.ndarray], object]], ...] = (
            (ours, tflite.embed),
            ("TFLite float32 (LiteRT XNNPACK, 2 threads)", float32),
            ("Keras float32 predict_on_batch", keras.embed),
        )
        rates: dict[str, float] = {}
        for name, embed in runtimes:
            samples = _time_ms(functools.partial(embed, batch), batches)
            per_second = sorted(32_000 / ms for ms in samples)
            rates[name] = statistics.median(per_second)
            rows.append({
                "what": "embedding throughput", "setting": f"{name}, batch 32",
                "value": round(rates[name], 1), "unit": "images/s",
                "spread": f"{per_second[0]:.0f} - {per_second[-1]:.0f} images/s",
            })
        rows[0]["comparison"] = "vs TFLite float32 / Keras"
        rows[0]["ratio"] = " / ".join(
            f"{rates[ours] / rates[name]:.2f}" for name, _ in runtimes[1:])

        async def through_worker() -> float:
            pictures = list(batch) * 2
            async with EmbeddingWorker(lambda: tflite) as worker:
                await worker.embed(pictures[0])
                started = time.perf_counter()
                await asyncio.gather(*(worker.embed(p) for p in pictures))
                return len(pictures) / (time.perf_counter() - started)

        worker_rates = sorted(asyncio.run(through_worker()) for _ in range(3))
        rows.append({
            "what": "embedding throughput",
            "setting": "EmbeddingWorker, 64 concurrent single requests (TFLite int8)",
            "value": round(statistics.median(worker_rates), 1), "unit": "images/s",
            "spread": f"{worker_rates[0]:.0f} - {worker_rates[-1]:.0f} images/s",
        })
    return rows


def bench_machine() -> list[dict[str, Any]]:
    """Memory read bandwidth and single-core compute now: context for the figures above.

    The development machine is shared; when other work runs, both drop and every latency
    here rises with them, so each report carries its own yardstick.
    """
    data = np.ones(1 << 28, np.float32)  # 1 GiB
    read_ms = _time_ms(lambda: float(data.sum()), 5)
    gb_per_s = sorted(data.nbytes / 1e9 / (ms / 1000) for ms in read_ms)
    matrix = np.ones((1024, 1024), np.float32)
    gemm_ms = _time_ms(lambda: matrix @ matrix, 5)
    gflops = sorted(2 * 1024**3 / 1e9 / (ms / 1000) for ms in gemm_ms)
    return [
        {"what": "machine: memory read", "setting": "numpy sum of 1 GiB float32",
         "value": round(statistics.median(gb_per_s), 1), "unit": "GB/s",
         "spread": f"{gb_per_s[0]:.1f} - {gb_per_s[-1]:.1f} GB/s"},
        {"what": "machine: compute", "setting": "numpy 1024^3 sgemm",
         "value": round(statistics.median(gflops), 1), "unit": "GFLOP/s",
         "spread": f"{gflops[0]:.0f} - {gflops[-1]:.0f} GFLOP/s"},
    ]


def run(sizes: Sequence[int] = SIZES) -> list[dict[str, Any]]:
    """Run all vision benchmarks; one row per figure."""
    return bench_machine() + bench_embedding() + bench_search(sizes) + bench_machine()


def main() -> None:
    """Print the figures as a table."""
    parser = argparse.ArgumentParser(prog="python -m tests.bench.bench_vision")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)),
                        help="comma-separated index sizes")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",") if size]
    for row in run(sizes):
        figure = next((f"{row[key]} {unit}" for key, unit in
                       (("median_ms", "ms"), ("median_s", "s"), ("value", row.get("unit", "")))
                       if key in row), "")
        extra = f"  {row['comparison']} x{row['ratio']}" if row.get("ratio") not in (None, "") \
            else ""
        print(f"{row['what']:<27} {row['setting']:<58} {figure:>16}  ({row['spread']}){extra}")


if __name__ == "__main__":
    main()
