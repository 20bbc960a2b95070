"""Benchmarks of the vision stack: index search latency and embedding throughput.

1. Top-24 search over 100k (and, with ``--sizes 100000,1000000``, 1M) synthetic unit vectors
   (1280-d; 90% public rows, a viewer with some private rows), side by side in one run on the
   same rows and queries: the product's :class:`~backend.vision.index.VectorIndex` (IVF-SQ8
   candidates re-ranked exactly at these sizes, lists probed as calibrated on the catalogue),
   the :class:`~backend.vision.exact_index.ExactIndex` (the reference every recall@24 is
   measured against), numpy (float32 matrix-vector product plus ``argpartition``, visibility
   as a mask) and faiss-cpu ``IndexFlatIP`` (float32, visibility as a bitmap selector).
   Medians over several queries, plus the index's load + list build time and size. Beside
   them, the same lists probed more or less widely. ``--data`` chooses the vectors (see
   ``_catalogue``): ``clustered`` (grouped like a shop's pictures), ``spectrum`` (a Gaussian
   with the mean and covariance of the development set's real embeddings: no groups at all,
   the hard case for inverted lists) or ``mixed`` (random mixtures of real embeddings plus
   noise).
2. Embedding throughput in images per second on decoded uint8 224x224 batches of 32: the int8
   TFLite model with GeM pooling (the product's runtime), the int8 model of the previous
   pipeline (average pooling in the graph; the product must keep at least 0.8 of its rate), a
   plain float32 TFLite conversion and Keras ``predict_on_batch``, plus the asyncio worker fed
   by 64 concurrent single-picture requests.

Run with ``.venv/bin/python -m tests.bench.bench_vision [--sizes 100000,1000000]
[--only search] [--data clustered|spectrum|mixed]``; ``make bench`` collects ``run()`` (100k
only, clustered). The machine is shared, so figures vary run to run.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import resource
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from backend.vision.embedder import Embedder
from backend.vision.index import VectorIndex
from backend.vision.pooling import gem_pool
from backend.vision.worker import EmbeddingWorker

DIM = 1280
K = 24
#: Index sizes of ``make bench``; ``--sizes 100000,1000000`` adds the million (about 15 minutes
#: and 6 GB at the peak, most of it generating rows and the float32 comparisons).
SIZES = (100_000,)
QUERIES = 15
#: Lists probed beside the product's calibrated choice, 100 candidates re-ranked exactly.
PROBES = (4, 16, 64, 256)
IVF_CANDIDATES = 100
#: Vectors to search: see ``_catalogue``.
KINDS = ("clustered", "spectrum", "mixed")
VIEWER = 7
PARTS = ("embedding", "search")
#: Items per group of near-alike pictures, and per category, in the synthetic catalogue.
GROUP = 30
CATEGORY = 1000
#: Rows generated (and added to each index) at a time.
_CHUNK = 65536


def _summary(samples_ms: Sequence[float]) -> tuple[float, str]:
    ordered = sorted(samples_ms)
    deciles = statistics.quantiles(ordered, n=10, method="inclusive")
    return statistics.median(ordered), f"p10 {deciles[0]:.1f} - p90 {deciles[8]:.1f} ms"


def _time_ms(action: Callable[[], object], repeats: int) -> list[float]:
    action()  # warm-up (caches)
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def _catalogue(count: int, seed: int, kind: str = "clustered",
               ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``count`` unit vectors of ``kind`` with owners and public flags.

    ``clustered``: pictures come in groups of about :data:`GROUP` near-alike ones (a product
    photographed several ways, a series of drawings), groups in categories of about
    :data:`CATEGORY` items (dogs, lemons): within-group cosine about 0.75, within-category
    0.35, otherwise about 0. Uniformly random vectors would make every ranking below the first
    hit arbitrary noise, which no index, exact or not, is asked to reproduce in a shop.
    Inverted lists find such groups easily (a group falls in one list), so two harder kinds
    are built from the development set's real embeddings (``_devset_embeddings``):
    ``spectrum``, a Gaussian with their mean and covariance (their spectrum, no groups at all:
    the 24th neighbour of a query is barely nearer than the 1000th), and ``mixed``, random
    mixtures of one to three real pictures plus noise.

    Yielded in chunks of :data:`_CHUNK` rows (vectors, owners, public flags): a million float32
    rows are 5 GB, and the benchmark keeps to a few GB by never holding them twice. The same
    ``seed`` gives the same rows.
    """
    rng = np.random.default_rng(seed)
    make = _clustered(count, rng) if kind == "clustered" else _from_real(kind, rng)
    for start in range(0, count, _CHUNK):
        rows = min(_CHUNK, count - start)
        block = make(rows)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        yield block, rng.integers(0, 1000, rows), rng.random(rows) < 0.9


def _clustered(count: int, rng: np.random.Generator) -> Callable[[int], np.ndarray]:
    categories = rng.standard_normal((max(1, count // CATEGORY), DIM), dtype=np.float32)
    groups = rng.standard_normal((max(1, count // GROUP), DIM), dtype=np.float32) * 0.85
    groups += categories[rng.integers(0, len(categories), len(groups))]

    def make(rows: int) -> np.ndarray:
        block = rng.standard_normal((rows, DIM), dtype=np.float32) * 0.75
        block += groups[rng.integers(0, len(groups), rows)]
        return block

    return make


def _from_real(kind: str, rng: np.random.Generator) -> Callable[[int], np.ndarray]:
    real = _devset_embeddings()
    mean = real.mean(axis=0)
    _, singular, directions = np.linalg.svd(real - mean, full_matrices=False)
    basis = (singular[:, None] / np.sqrt(len(real) - 1) * directions).astype(np.float32)
    # Beyond the development set's 398 directions: isotropic noise as small as the last one.
    floor = np.float32(singular[-2] / np.sqrt(len(real) - 1) / np.sqrt(DIM))

    def spectrum(rows: int) -> np.ndarray:
        block: np.ndarray = rng.standard_normal((rows, len(basis)), dtype=np.float32) @ basis
        block += mean + rng.standard_normal((rows, DIM), dtype=np.float32) * floor
        return block

    def mixed(rows: int) -> np.ndarray:
        weights = rng.dirichlet(np.full(3, 0.5), rows).astype(np.float32)
        block: np.ndarray = np.einsum("rk,rkd->rd", weights,
                                      real[rng.integers(0, len(real), (rows, 3))])
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        noise = rng.uniform(0.3, 0.8, (rows, 1)).astype(np.float32) / np.float32(np.sqrt(DIM))
        block += rng.standard_normal((rows, DIM), dtype=np.float32) * noise
        return block

    return spectrum if kind == "spectrum" else mixed


@functools.cache
def _devset_embeddings() -> np.ndarray:
    """The development set's pictures embedded by the product's pipeline (cached under /tmp)."""
    from backend.vision.embedder import MODEL_VERSION
    from backend.vision.evaluate import default_model_cache, find_pictures, load_picture

    cache = Path(tempfile.gettempdir()) / f"pixmart-devset-{MODEL_VERSION.replace('/', '_')}.npy"
    if cache.exists():
        cached: np.ndarray = np.load(cache)
        return cached
    embedder = Embedder(default_model_cache())
    pictures = [load_picture(path) for path, _ in
                find_pictures(Path(__file__).parents[1] / "data" / "vision-devset")]
    vectors = np.concatenate([embedder.embed(np.stack(pictures[start : start + 32])).embeddings
                              for start in range(0, len(pictures), 32)]).astype(np.float32)
    np.save(cache, vectors)
    return vectors


def _queries(catalogue: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]], count: int,
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pictures like stored ones (a stored vector plus noise: cosine about 0.8 to it), taken
    from the rows of ``catalogue`` as they pass; returns them with the owners and flags."""
    rng = np.random.default_rng(1)
    chosen = np.sort(rng.integers(0, count, QUERIES))
    noise = rng.standard_normal((QUERIES, DIM)).astype(np.float32) * 0.02
    queries = np.empty((QUERIES, DIM), np.float32)
    owners, public, start = [], [], 0
    for vectors, owner_ids, flags in catalogue:
        inside = (chosen >= start) & (chosen < start + len(vectors))
        queries[inside] = vectors[chosen[inside] - start]
        owners.append(owner_ids)
        public.append(flags)
        start += len(vectors)
    return queries + noise, np.concatenate(owners), np.concatenate(public)


def _timed(search: Callable[[np.ndarray], list[int]], queries: np.ndarray,
           ) -> tuple[list[float], list[list[int]]]:
    """Time ``search`` over ``queries`` (after one warm-up); return the times and the results."""
    search(queries[-1])
    samples, found = [], []
    for query in queries:
        started = time.perf_counter()
        found.append(search(query))
        samples.append((time.perf_counter() - started) * 1000)
    return samples, found


def _numpy_search(vectors: np.ndarray, visible: np.ndarray) -> Callable[[np.ndarray], list[int]]:
    def search(query: np.ndarray) -> list[int]:
        scores = vectors @ query
        scores[~visible] = -np.inf
        top = np.argpartition(-scores, K)[:K]
        return [int(row) for row in top[np.argsort(-scores[top])]]

    return search


def _faiss_flat(count: int, kind: str) -> tuple[Any, np.ndarray]:
    """faiss ``IndexFlatIP`` (float32) over the catalogue's rows, and a numpy view of them.

    numpy searches faiss's own copy of the rows, so the two share one matrix (5 GB at 1M).
    """
    import faiss

    flat = faiss.IndexFlatIP(DIM)
    for vectors, _, _ in _catalogue(count, count, kind):
        flat.add(vectors)
    rows: np.ndarray = faiss.rev_swig_ptr(flat.get_xb(), count * DIM).reshape(count, DIM)
    return flat, rows


def _faiss_flat_search(flat: Any, visible: np.ndarray,  # noqa: ANN401 - faiss has no types
                       ) -> tuple[Any, Callable[[np.ndarray], list[int]]]:
    """Search ``flat`` with the visibility as a bitmap selector."""
    import faiss

    bitmap = np.packbits(visible, bitorder="little")
    params = faiss.SearchParameters()
    params.sel = faiss.IDSelectorBitmap(len(visible), faiss.swig_ptr(bitmap))

    def search(query: np.ndarray) -> list[int]:
        _, labels = flat.search(query[None].astype(np.float32), K, params=params)
        return [int(label) for label in labels[0]]

    return (bitmap, params), search


def _recall(found: list[list[int]], truth: list[list[int]]) -> float:
    """Mean share of the exact top-24 that a method found (recall@24)."""
    pairs = zip(found, truth, strict=True)
    return statistics.fmean(len(set(got) & set(want)) / len(want) for got, want in pairs)


def _search_rows(count: int, kind: str = "clustered") -> list[dict[str, Any]]:
    """One size: the exact index, IVF, numpy and faiss flat on the same rows and queries.

    The rows are generated three times from one seed (queries and flags, the float32 matrix,
    the index) rather than held: at 1M the matrix (5 GB) is freed before the index (3.8 GB of
    float16 rows and 8-bit codes, plus 1.3 GB of list codes) is loaded.
    """
    queries, owners, public = _queries(_catalogue(count, count, kind), count)
    visible = public | (owners == VIEWER)
    label = f"{count:,} x {DIM} {kind}"
    results: dict[str, tuple[list[float], list[list[int]], str]] = {}

    flat, matrix = _faiss_flat(count, kind)
    samples, found = _timed(_numpy_search(matrix, visible), queries)
    results["numpy"] = (samples, found, f"{label}, numpy f32 matvec + argpartition, masked")
    keep, search = _faiss_flat_search(flat, visible)
    samples, found = _timed(search, queries)
    results["faiss"] = (samples, found, f"{label}, faiss IndexFlatIP f32, bitmap filter")
    del flat, matrix, keep, search
    gc.collect()

    index = VectorIndex(DIM)
    started = time.perf_counter()
    with index.bulk_load():  # as the server loads: one list build once every row is in
        first = 0
        for vectors, owner_ids, flags in _catalogue(count, count, kind):
            index.add_many(np.arange(first, first + len(vectors)), vectors, owner_ids, flags)
            first += len(vectors)
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    built = index.wait_until_built()  # first: the build would slow every other search down
    build_s = time.perf_counter() - started
    exact = index.exact  # the reference: the same rows, never through the lists

    def by_exact(query: np.ndarray) -> list[int]:
        return [hit.item_id for hit in exact.search(query, K, viewer_id=VIEWER)]

    samples, truth = _timed(by_exact, queries)
    results["exact"] = (samples, truth, f"{label}, ExactIndex (int8 scan + exact f16), reference")

    def by_index(query: np.ndarray) -> list[int]:
        return [hit.item_id for hit in index.search(query, K, viewer_id=VIEWER)]

    samples, found = _timed(by_index, queries)
    lists = index.lists
    mode = (f"IVF-SQ8 {lists.lists} lists, {lists.probes} probed (calibrated) + exact f16 re-rank"
            if built and lists is not None else "exact (below the lists' size)")
    results["index"] = (samples, found, f"{label}, VectorIndex: {mode}")
    names = ["index", "exact", "numpy", "faiss"]
    if built and lists is not None:
        for probes in PROBES:
            def by_probes(query: np.ndarray, probes: int = probes) -> list[int]:
                unit = (query / np.linalg.norm(query)).astype(np.float32)
                found = lists.search(unit, IVF_CANDIDATES, viewer_id=VIEWER, probes=probes)
                return [hit.item_id for hit in exact.rank(query, found, K, VIEWER)]

            name = f"same lists, {IVF_CANDIDATES} candidates, nprobe {probes}"
            samples, found = _timed(by_probes, queries)
            results[name] = (samples, found, f"{label}, {name}, exact re-rank")
            names.append(name)

    exact_ms = statistics.median(results["exact"][0])
    rows = []
    for name in names:
        samples, found, setting = results[name]
        median, spread = _summary(samples)
        rows.append({
            "what": "top-24 search", "setting": f"{setting}; recall@24 {_recall(found, truth):.3f}",
            "median_ms": round(median, 2), "spread": spread,
            "comparison": "vs ExactIndex", "ratio": round(median / exact_ms, 3),
            "recall": round(_recall(found, truth), 4),
        })
    rows.append({"what": "index bulk load", "setting": f"{label}, add_many in chunks",
                 "median_s": round(load_s, 1), "spread": "single run"})
    rows.append({"what": "list build", "setting": f"{label}, train + add + calibrate, background",
                 "median_s": round(build_s, 1), "spread": "single run"})
    rows.append({"what": "index memory", "setting": f"{label}, exact rows + lists",
                 "value": round(index.nbytes / 1e6), "unit": "MB", "spread": "allocated"})
    rows.append({"what": "benchmark peak RSS", "setting": f"up to {label}",
                 "value": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3),
                 "unit": "MB", "spread": "ru_maxrss"})
    return rows


def bench_search(sizes: Sequence[int] = SIZES, kind: str = "clustered") -> list[dict[str, Any]]:
    """Top-24 search latency and recall@24: VectorIndex, ExactIndex, numpy, faiss flat."""
    rows: list[dict[str, Any]] = []
    for count in sizes:
        rows += _search_rows(count, kind)
        gc.collect()  # the next size needs the memory
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
    return lambda batch: gem_pool(network.run(batch.astype(np.float32))[0])


def _average_pooled_int8_embed(keras_model: Any) -> Callable[[np.ndarray], object]:  # noqa: ANN401
    """Return a function running the int8 model of pipeline revision 2: average pooling inside
    the graph, so only the 1280 features leave it (the product now pools the feature map
    outside the graph with GeM). Same calibration and interpreter settings as the product."""
    import keras
    from ai_edge_litert.interpreter import Interpreter

    from backend.vision.calibration import calibration_batch
    from backend.vision.embedder import normalise_rows, quantise

    pooled = keras.Model(keras_model.input,
                         [keras_model.get_layer("features").output, keras_model.outputs[1]])
    flatbuffer = quantise(pooled, calibration_batch().astype(np.float32))
    runner = Interpreter(model_content=flatbuffer, num_threads=2).get_signature_runner(
        "serving_default")

    def embed(batch: np.ndarray) -> object:
        outputs = runner(pixels=batch.astype(np.float32))
        features = next(value for value in outputs.values() if value.shape[-1] == 1280)
        return normalise_rows(np.asarray(features, np.float32))

    return embed


def bench_embedding(batches: int = 12) -> list[dict[str, Any]]:
    """Images per second on uint8 224x224 batches of 32, per runtime and through the worker.

    The product's int8 model (feature maps out, pooled, centred and whitened in numpy) is
    compared with the int8 model of the previous pipeline (average pooling inside the graph), a
    float32 TFLite conversion and Keras, all in the same run. The runtimes take turns, one batch
    each per round (the order rotating from round to round), so a change in the machine's load
    falls on all of them alike; each ratio is the median of the rounds' ratios.
    """
    from backend.vision.model import build_keras_model
    from backend.vision.weights import load_state_dict

    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (32, 224, 224, 3), dtype=np.uint8)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as cache:
        tflite = Embedder(Path(cache))
        keras = Embedder(Path(cache), runtime="keras")
        keras_model = build_keras_model(load_state_dict())
        float32 = _float32_tflite_embed(keras_model)
        average_pooled = _average_pooled_int8_embed(keras_model)
        ours = "TFLite int8 + GeM (LiteRT XNNPACK, 2 threads)"
        runtimes: tuple[tuple[str, Callable[[np.ndarray], object]], ...] = (
            (ours, tflite.embed),
            ("TFLite int8, average pooled in the graph (v2)", average_pooled),
            ("TFLite float32 (LiteRT XNNPACK, 2 threads)", float32),
            ("Keras float32 predict_on_batch", keras.embed),
        )
        samples: dict[str, list[float]] = {name: [] for name, _ in runtimes}
        for _, embed in runtimes:
            embed(batch)  # warm-up (caches)
        for round_number in range(batches):
            shift = round_number % len(runtimes)
            for name, embed in runtimes[shift:] + runtimes[:shift]:
                started = time.perf_counter()
                embed(batch)
                samples[name].append(32_000 / ((time.perf_counter() - started) * 1000))
        for name, _ in runtimes:
            per_second = sorted(samples[name])
            rows.append({
                "what": "embedding throughput", "setting": f"{name}, batch 32",
                "value": round(statistics.median(per_second), 1), "unit": "images/s",
                "spread": f"{per_second[0]:.0f} - {per_second[-1]:.0f} images/s",
            })
        rows[0]["comparison"] = "vs int8 v2 / TFLite float32 / Keras"
        rows[0]["ratio"] = " / ".join(
            "{:.2f}".format(statistics.median(
                mine / theirs for mine, theirs in zip(samples[ours], samples[name], strict=True)))
            for name, _ in runtimes[1:])

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


def run(sizes: Sequence[int] = SIZES, parts: Sequence[str] = PARTS, kind: str = "clustered",
        ) -> list[dict[str, Any]]:
    """Run the vision benchmarks (``parts``: embedding, search); one row per figure."""
    rows = bench_machine()
    if "embedding" in parts:
        rows += bench_embedding()
    if "search" in parts:
        rows += bench_search(sizes, kind)
    return rows + bench_machine()


def main() -> None:
    """Print the figures as a table."""
    parser = argparse.ArgumentParser(prog="python -m tests.bench.bench_vision")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)),
                        help="comma-separated index sizes (add 1000000 for the million)")
    parser.add_argument("--only", choices=PARTS, action="append",
                        help="run only this part (may be given twice)")
    parser.add_argument("--data", choices=KINDS, default="clustered",
                        help="vectors the search part runs on (see _catalogue)")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",") if size]
    for row in run(sizes, args.only or PARTS, args.data):
        figure = next((f"{row[key]} {unit}" for key, unit in
                       (("median_ms", "ms"), ("median_s", "s"), ("value", row.get("unit", "")))
                       if key in row), "")
        extra = f"  {row['comparison']} x{row['ratio']}" if row.get("ratio") not in (None, "") \
            else ""
        print(f"{row['what']:<27} {row['setting']:<58} {figure:>16}  ({row['spread']}){extra}")


if __name__ == "__main__":
    main()
