"""Retrieval quality of pipeline variants on a labelled folder, all from one pass of the network.

``python -m tests.bench.vision_variants DIR`` decodes every picture of DIR's class folders as an
upload would (:func:`backend.vision.evaluate.load_picture` without the product's preprocessing),
makes four network inputs of it (the centred square the product used up to pipeline revision
2, the whole picture letterboxed on white of revision 3, the picture cropped to its content and
then letterboxed that it uses now, the whole picture squashed), runs the product's int8 model
once per input and prints leave-one-out P@1/5/10 (as ``python -m backend.vision.evaluate``
computes them) for:

- poolings of the last feature map: average (the classifier's), GeM p = 2, 3, 4, max, R-MAC;
- two views averaged (letterbox + centre crop, letterbox + squash): twice the network's work;
- PCA, with or without whitening, fitted on the set's own embeddings (unsupervised, as a shop
  would fit it on its catalogue);
- centring on the shipped mean embedding (:mod:`backend.vision.centring`; fitted on this very
  set when DIR is the development set, so read the next line for unseen pictures) and, on
  random halves of the classes, centring on the other half's mean against the half's own;
- query expansion (the query plus its nearest neighbours, weighted by similarity cubed);
- on the content letterbox, each also on random halves of the classes centred on the other
  half's mean (the honest estimate for pictures the shipped mean never saw): CroW spatial and
  channel weighting, power normalisation, GeM p chosen on the other half, the last but one
  stage's map beside the last one (the product's descriptor of pipeline revision 5 among them),
  and the embedding cosine blended with the cosine of the class probabilities;
- with ``--pool DIR`` (unlabelled pictures, ``python -m tests.support.vision_pool``): the
  product's embedding (revision 5's, centred on the shipped mean) whitened by shrunk PCA maps
  fitted on the pool (:func:`backend.vision.whitening.fit`) at several powers and shrinks, on
  the whole set and on halves of the classes, beside the shipped map of revision 6, and one
  fitted on the pool's drawings alone.

Images per second: the network's throughput on each input; variants that add a view halve it,
variants after pooling do not change it measurably. This is a study, not a benchmark target:
``make bench`` does not run it.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from backend.media.derivatives import decode_for_model
from backend.media.errors import MediaError
from backend.media.validate import inspect_image
from backend.vision.centring import centre_rows
from backend.vision.embedder import Embedder, NetworkOutputs, normalise_rows, softmax
from backend.vision.evaluate import default_model_cache, find_pictures, precision_at_k
from backend.vision.fit_mean import describe_files, picture_files
from backend.vision.pooling import HEAD_CHANNELS, describe, gem_pool
from backend.vision.preprocess import WHITE, preprocess
from backend.vision.types import IMAGE_SIZE
from backend.vision.whitening import fit, shipped_whitening

Matrix = NDArray[np.float32]


def centre_square(image: Image.Image) -> NDArray[np.uint8]:
    """The network input of pipeline revision 2: the centred square, shorter side to 224."""
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    square = image.convert("RGB").resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC,
                                         box=(left, top, left + side, top + side))
    return np.asarray(square, dtype=np.uint8)


def squashed(image: Image.Image) -> NDArray[np.uint8]:
    """The whole picture stretched to the square, ignoring its aspect ratio."""
    resized = image.convert("RGB").resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC)
    return np.asarray(resized, dtype=np.uint8)


def letterboxed(image: Image.Image) -> NDArray[np.uint8]:
    """The network input of pipeline revision 3: the whole picture (margins and all)
    letterboxed on white."""
    rgb = image.convert("RGB")
    scale = IMAGE_SIZE / max(rgb.size)
    inner = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
    canvas = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), WHITE)
    canvas.paste(rgb.resize(inner, Image.Resampling.BICUBIC),
                 ((IMAGE_SIZE - inner[0]) // 2, (IMAGE_SIZE - inner[1]) // 2))
    return np.asarray(canvas, dtype=np.uint8)


INPUTS: dict[str, Callable[[Image.Image], NDArray[np.uint8]]] = {
    "centre crop": centre_square,
    "letterbox": letterboxed,
    "content letterbox": preprocess,
    "squash": squashed,
}


def rmac(feature_map: Matrix, levels: int = 3) -> Matrix:
    """Regional maximum activations: max-pooled square regions at ``levels`` scales, summed."""
    count, height, width, channels = feature_map.shape
    total = np.zeros((count, channels), np.float32)
    for level in range(1, levels + 1):
        side = max(1, round(2 * min(height, width) / (level + 1)))
        starts = np.linspace(0, height - side, level).round().astype(int)
        for top in starts:
            for left in starts:
                region = feature_map[:, top : top + side, left : left + side, :]
                total += normalise_rows(region.max(axis=(1, 2)))
    return total


POOLINGS: dict[str, Callable[[Matrix], Matrix]] = {
    "average": lambda m: m.mean(axis=(1, 2)),
    "GeM p=2": lambda m: gem_pool(m, 2.0),
    "GeM p=3": lambda m: gem_pool(m, 3.0),
    "GeM p=4": lambda m: gem_pool(m, 4.0),
    "max": lambda m: m.max(axis=(1, 2)),
    "R-MAC": rmac,
}


def pca(embeddings: Matrix, dims: int, whiten: bool) -> Matrix:
    """Project centred unit ``embeddings`` on their first ``dims`` principal axes."""
    centred = normalise_rows(embeddings) - normalise_rows(embeddings).mean(axis=0)
    _, singular, axes = np.linalg.svd(centred, full_matrices=False)
    dims = min(dims, len(singular))
    projection = axes[:dims].T
    if whiten:
        projection = projection / np.maximum(singular[:dims], 1e-6)
    return normalise_rows((centred @ projection).astype(np.float32))


def expanded_precision(embeddings: Matrix, labels: NDArray[np.int64], neighbours: int,
                       ks: Sequence[int] = (1, 5, 10)) -> dict[int, float]:
    """Leave-one-out P@k when each query is first expanded with its nearest neighbours."""
    unit = normalise_rows(embeddings)
    scores = unit @ unit.T
    np.fill_diagonal(scores, -np.inf)
    nearest = np.argsort(-scores, axis=1, kind="stable")[:, :neighbours]
    weights = np.maximum(np.take_along_axis(scores, nearest, axis=1), 0) ** 3
    queries = normalise_rows(unit + np.einsum("qn,qnd->qd", weights, unit[nearest]))
    expanded = queries @ unit.T
    np.fill_diagonal(expanded, -np.inf)
    ranked = np.argsort(-expanded, axis=1, kind="stable")[:, : max(ks)]
    same = labels[ranked] == labels[:, None]
    return {k: float(same[:, :k].mean()) for k in ks}


def class_disjoint_centring(
    embeddings: Matrix, labels: NDArray[np.int64], splits: int = 20
) -> dict[str, dict[int, float]]:
    """P@k on random halves of the classes: plain, centred on the other half's mean (pictures
    never searched, like a shipped mean) and centred on the half's own mean (like a mean fitted
    on the catalogue searched), averaged over ``splits`` splits."""
    rng = np.random.default_rng(0)
    classes = np.unique(labels)
    totals: dict[str, dict[int, float]] = {}
    for _ in range(splits):
        held = np.isin(labels, rng.choice(classes, len(classes) // 2, replace=False))
        half, half_labels = embeddings[held], labels[held]
        for name, mean in (("plain", np.zeros_like(half[0])),
                           ("other classes' mean", embeddings[~held].mean(axis=0)),
                           ("own mean", half.mean(axis=0))):
            found = precision_at_k(normalise_rows(half - mean), half_labels)
            into = totals.setdefault(name, dict.fromkeys(found, 0.0))
            for k, value in found.items():
                into[k] += value / splits
    return totals


#: Builds unit embeddings of the pictures ``use`` with whatever is fitted (a mean) taken from
#: the pictures ``fit``: both index arrays into the study's pictures.
Builder = Callable[[NDArray[np.int64], NDArray[np.int64]], Matrix]


def class_halves(labels: NDArray[np.int64], splits: int = 20) -> Iterator[NDArray[np.bool_]]:
    """Yield ``splits`` random halves of the classes (as masks of pictures), the same for every
    variant (seed 0, as :func:`class_disjoint_centring`)."""
    rng = np.random.default_rng(0)
    classes = np.unique(labels)
    for _ in range(splits):
        yield np.isin(labels, rng.choice(classes, len(classes) // 2, replace=False))


def whole_and_halves(build: Builder, labels: NDArray[np.int64],
                     splits: int = 20) -> tuple[dict[int, float], dict[int, float]]:
    """P@k of a variant on the whole set (fitted on it) and on random halves of the classes,
    each searched on its own with what is fitted taken from the other half, averaged."""
    everyone = np.arange(len(labels))
    whole = precision_at_k(build(everyone, everyone), labels)
    halves = dict.fromkeys(whole, 0.0)
    for held in class_halves(labels, splits):
        found = precision_at_k(build(np.flatnonzero(~held), np.flatnonzero(held)), labels[held])
        for k, value in found.items():
            halves[k] += value / splits
    return whole, halves


def centred_parts(parts: Sequence[tuple[Matrix, float]]) -> Builder:
    """A variant made of several pooled descriptors: each L2-normalised, centred on its mean
    over the fitted pictures, normalised again, scaled by the root of its weight, all side by
    side (so the cosine is the weighted mean of the parts' cosines)."""
    units = [(normalise_rows(part), weight) for part, weight in parts]

    def build(fit: NDArray[np.int64], use: NDArray[np.int64]) -> Matrix:
        return normalise_rows(np.concatenate(
            [np.sqrt(weight) * normalise_rows(unit[use] - unit[fit].mean(axis=0))
             for unit, weight in units], axis=1).astype(np.float32))

    return build


def crow_spatial(feature_map: Matrix) -> Matrix:
    """CroW's spatial weights: the map summed over channels, L2-normalised over positions,
    square-rooted; ``[N, H, W, 1]``."""
    total = feature_map.sum(axis=3)
    norms = np.linalg.norm(total.reshape(len(total), -1), axis=1)[:, None, None]
    weights: Matrix = np.sqrt(total / np.maximum(norms, 1e-12))[..., None]
    return weights


def crow_channel(feature_map: Matrix) -> Matrix:
    """CroW's channel weights: the log inverse of how often each channel fires, ``[N, C]``."""
    count, height, width, channels = feature_map.shape
    firing = (feature_map > 0).reshape(count, height * width, channels).mean(axis=1)
    weights: Matrix = np.log(firing.sum(axis=1, keepdims=True) / (1e-4 + firing))
    return weights


def learned_gem_power(feature_map: Matrix, labels: NDArray[np.int64],
                      powers: Sequence[float] = (2.0, 3.0, 4.0, 5.0),
                      splits: int = 20) -> tuple[dict[int, float], list[float]]:
    """P@k on the halves when GeM's p is the one with the best P@5 on the *other* half (its own
    mean, leave-one-out); returns the averaged P@k and the p chosen for each split."""
    pooled = {power: normalise_rows(gem_pool(feature_map, power)) for power in powers}
    totals: dict[int, float] = {}
    chosen: list[float] = []
    for held in class_halves(labels, splits):
        fit, use = np.flatnonzero(~held), np.flatnonzero(held)
        best = max(powers, key=lambda power: precision_at_k(
            normalise_rows(pooled[power][fit] - pooled[power][fit].mean(axis=0)),
            labels[fit])[5])
        chosen.append(best)
        found = precision_at_k(
            normalise_rows(pooled[best][use] - pooled[best][fit].mean(axis=0)), labels[use])
        for k, value in found.items():
            totals[k] = totals.get(k, 0.0) + value / splits
    return totals, chosen


def revision5_study(outputs: NetworkOutputs, labels: NDArray[np.int64],
                    rate: float) -> list[str]:
    """Rows of the variants tried for pipeline revision 5, on the content letterbox: each with
    P@k on the whole set and on the halves of the classes (see :func:`whole_and_halves`)."""
    head_map, mid_map = outputs.feature_map, outputs.mid_map
    head = gem_pool(head_map)
    mid = gem_pool(mid_map)
    probabilities = softmax(outputs.logits)
    spatial = crow_spatial(head_map)
    variants: dict[str, Builder] = {
        "GeM p=3 (revision 4)": centred_parts([(head, 1.0)]),
        "average": centred_parts([(head_map.mean(axis=(1, 2)), 1.0)]),
        "CroW (spatial and channel weights, summed)": centred_parts(
            [((head_map * spatial).sum(axis=(1, 2)) * crow_channel(head_map), 1.0)]),
        "CroW spatial weights, summed": centred_parts([((head_map * spatial).sum(axis=(1, 2)),
                                                        1.0)]),
        "CroW spatial weights, then GeM p=3": centred_parts([(gem_pool(head_map * spatial),
                                                              1.0)]),
        "GeM p=3 x CroW channel weights": centred_parts([(head * crow_channel(head_map), 1.0)]),
        "GeM p=3, power 0.5": centred_parts([(np.sqrt(head), 1.0)]),
        "GeM p=3, power 0.3": centred_parts([(head**0.3, 1.0)]),
        "mid map alone, GeM p=3": centred_parts([(mid, 1.0)]),
    }
    for weight in (0.25, 0.5, 1.0):
        variants[f"GeM p=3 + {weight} x mid map GeM p=3 (1472 wide)"] = centred_parts(
            [(head, 1.0), (mid, weight)])
    variants["GeM p=3 + 0.5 x mid map, power 0.5 (1472 wide)"] = centred_parts(
        [(np.sqrt(head), 1.0), (np.sqrt(mid), 0.5)])
    variants["GeM p=3 first 1088 channels + 0.5 x mid map (1280 wide)"] = centred_parts(
        [(head[:, :HEAD_CHANNELS], 1.0), (mid, 0.5)])
    descriptors = describe(head_map, mid_map)
    variants["revision 5: first 1088 channels + 0.5 x mid map, power 0.5"] = (
        lambda fit, use: centre_rows(descriptors[use].copy(), descriptors[fit].mean(axis=0)))
    for weight in (0.1, 0.25):
        variants[f"GeM p=3 + {weight} x class probabilities (cosines blended)"] = centred_parts(
            [(head, 1.0), (probabilities, weight)])
        variants[f"GeM p=3 + {weight} x root class probabilities (cosines blended)"] = (
            centred_parts([(head, 1.0), (np.sqrt(probabilities), weight)]))
    rows = []
    for name, build in variants.items():
        whole, halves = whole_and_halves(build, labels)
        rows.append(_row(f"content letterbox, {name}", whole, rate))
        rows.append(_row(f"content letterbox, {name}, half the classes", halves, rate))
    learned, chosen = learned_gem_power(head_map, labels)
    rows.append(_row("content letterbox, GeM p chosen on the other half (p: "
                     + ", ".join(f"{p:g}" for p in sorted(set(chosen))) + "), half the classes",
                     learned, rate))
    rows.append(_row("content letterbox, revision 5, centred on the shipped mean",
                     precision_at_k(centre_rows(descriptors.copy()), labels), rate))
    return rows


def revision6_study(outputs: NetworkOutputs, labels: NDArray[np.int64], rate: float,
                    pool: Matrix, pool_names: Sequence[str]) -> list[str]:
    """Rows of whitening maps fitted on the unlabelled ``pool`` (centred embeddings named by
    their files), applied to the product's centred embedding; each on the whole set and on
    random halves of the classes (the maps are fitted apart from the set, so both are honest)."""
    descriptors = describe(outputs.feature_map, outputs.mid_map)
    centred = centre_rows(descriptors.copy())
    emoji = np.array([Path(name).name.startswith("emoji-") for name in pool_names])
    variants: dict[str, Callable[[Matrix], Matrix]] = {
        "revision 5 (centred on the shipped mean, not whitened)": lambda rows: rows,
        "revision 6: the shipped map": shipped_whitening().apply,
    }
    for power in (0.25, 0.35, 0.5):
        for shrink in (0.0, 0.1, 0.5, 1.0, 2.0):
            variants[f"whitened, power {power}, shrink {shrink}"] = fit(pool, power, shrink).apply
    # The emoji alone (about 1,200) and the set itself (399) are too few for a 1280-wide fit.
    drawings = fit(pool[~emoji])
    variants["whitened on the pool's drawings alone (power 0.5, shrink 1)"] = drawings.apply
    rows = []
    for name, whiten in variants.items():
        def build(_: NDArray[np.int64], use: NDArray[np.int64],
                  whiten: Callable[[Matrix], Matrix] = whiten) -> Matrix:
            return whiten(centred[use])

        whole, halves = whole_and_halves(build, labels)
        rows.append(_row(f"content letterbox, {name}", whole, rate))
        rows.append(_row(f"content letterbox, {name}, half the classes", halves, rate))
    return rows


def _row(name: str, precision: dict[int, float], rate: float | str) -> str:
    figures = " ".join(f"{precision[k]:.4f}" for k in (1, 5, 10))
    speed = f"{rate:.1f}" if isinstance(rate, float) else rate
    return f"| {name} | {figures.replace(' ', ' | ')} | {speed} |"


def study(root: Path, embedder: Embedder, pool: Path | None = None) -> list[str]:
    """Return the table rows (markdown) of every variant on the pictures under ``root``
    (and, given an unlabelled ``pool`` folder, the whitening variants fitted on it)."""
    pictures: list[Image.Image] = []
    labels_list: list[int] = []
    for path, label in find_pictures(root):
        try:
            pictures.append(decode_for_model(path, inspect_image(path)))
        except (MediaError, OSError) as exc:
            print(f"skipping {path}: {exc}", file=sys.stderr)
            continue
        labels_list.append(label)
    labels = np.asarray(labels_list, dtype=np.int64)
    maps: dict[str, Matrix] = {}
    rates: dict[str, float] = {}
    product_outputs: NetworkOutputs | None = None
    for name, make in INPUTS.items():
        batch = np.stack([make(picture) for picture in pictures])
        started = time.perf_counter()
        outputs = embedder.network_outputs(batch)
        rates[name] = len(batch) / (time.perf_counter() - started)
        maps[name] = outputs.feature_map
        if make is preprocess:
            product_outputs = outputs
    assert product_outputs is not None

    rows = ["| variant | P@1 | P@5 | P@10 | network images/s |", "| --- | --- | --- | --- | --- |"]
    pooled: dict[tuple[str, str], Matrix] = {}
    for input_name, feature_map in maps.items():
        for pool_name, pooling in POOLINGS.items():
            pooled[input_name, pool_name] = normalise_rows(pooling(feature_map))
            rows.append(_row(f"{input_name}, {pool_name}",
                             precision_at_k(pooled[input_name, pool_name], labels),
                             rates[input_name]))
    half = f"~{rates['letterbox'] / 2:.1f} (two passes)"
    for other in ("centre crop", "squash"):
        for pool_name in ("average", "GeM p=3"):
            both = normalise_rows(pooled["letterbox", pool_name] + pooled[other, pool_name])
            rows.append(_row(f"letterbox + {other} averaged, {pool_name}",
                             precision_at_k(both, labels), half))
    for input_name in ("letterbox", "content letterbox"):
        base = pooled[input_name, "GeM p=3"]
        rows.append(_row(f"{input_name}, GeM p=3, centred on the shipped mean",
                         precision_at_k(centre_rows(base.copy()), labels), rates[input_name]))
        for name, found in class_disjoint_centring(base, labels).items():
            rows.append(_row(f"{input_name}, GeM p=3, half the classes, {name}", found,
                             rates[input_name]))
    for pool_name in ("average", "GeM p=3"):
        base = pooled["letterbox", pool_name]
        for dims in (64, 128, 256, 1280):
            for whiten in (False, True):
                kind = "PCA-whitening" if whiten else "PCA"
                rows.append(_row(f"letterbox, {pool_name}, {kind} to {dims}",
                                 precision_at_k(pca(base, dims, whiten), labels),
                                 rates["letterbox"]))
        for neighbours in (1, 2, 3):
            rows.append(_row(f"letterbox, {pool_name}, query expansion k={neighbours}",
                             expanded_precision(base, labels, neighbours), rates["letterbox"]))
    rows += revision5_study(product_outputs, labels, rates["content letterbox"])
    if pool is not None:
        files = picture_files([pool])
        pool_rows = centre_rows(describe_files(files, embedder))
        rows += revision6_study(product_outputs, labels, rates["content letterbox"], pool_rows,
                                [path.name for path in files])
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m tests.bench.vision_variants")
    parser.add_argument("directory", type=Path, help="folder whose subfolders are classes")
    parser.add_argument("--cache-dir", type=Path, default=None, help="model cache folder")
    parser.add_argument("--pool", type=Path, default=None,
                        help="unlabelled pictures to fit whitening maps on "
                             "(python -m tests.support.vision_pool)")
    args = parser.parse_args(argv)
    embedder = Embedder(args.cache_dir or default_model_cache())
    print("\n".join(study(args.directory, embedder, args.pool)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
