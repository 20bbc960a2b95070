"""Tests the int8 model's similarity scores, with tolerances, on the pictures the UI tests list.

Scores follow the int8 model's numerics. Another quantisation of the same network (calibration
pictures decoded by another Pillow/libjpeg, another TensorFlow) or the same pictures decoded by
another libjpeg moves them by a few tenths of a point: Coffee-to-Motorcycle scores 24.47% with
one quantisation, 24.56% with another and 24.57% in float32 Keras, so "24%" or "25%" on a card.
That is why the UI snapshot shows fixed scores and no test asserts an exact score or the order of
a near tie; the real scores are checked here, against the float32 Keras reference and against
what the pictures show, with margins far larger than that noise.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest
from numpy.typing import NDArray

from backend.config import ServerConfig
from backend.media.derivatives import decode_for_model
from backend.media.validate import inspect_image
from backend.vision.embedder import Embedder
from backend.vision.preprocess import preprocess
from tests.unit.vision_fixtures import jpeg_of, shared_embedder, shared_keras_embedder

#: The samples the UI tests list (tests/ui/test_vision.py), as uploaded there.
LISTED = ("chelsea", "coffee", "rocket", "astronaut", "motorcycle")

#: Most an int8 score may differ from the float32 reference's for the same two pictures.
#: Measured on these pictures: at most 0.026 (mean 0.006), for two different quantisations.
SCORE_TOLERANCE = 0.05

#: Similarity of two pictures by name, both orders.
Scores = dict[tuple[str, str], float]


def as_served(data: bytes) -> NDArray[np.uint8]:
    """What the server feeds the network for an uploaded or example picture."""
    return preprocess(decode_for_model(data, inspect_image(data)))


@pytest.fixture(scope="module")
def pictures() -> dict[str, NDArray[np.uint8]]:
    """The listed samples, a re-compressed copy of Coffee and the brightened cat query."""
    served = {name: as_served(jpeg_of(name)) for name in LISTED}
    served["coffee-q60"] = as_served(jpeg_of("coffee", quality=60))
    served["cat.jpg"] = as_served(jpeg_of("chelsea", brighten=1.15, quality=60))
    return served


def scores_of(embedder: Embedder, pictures: dict[str, NDArray[np.uint8]]) -> Scores:
    """Cosine similarity of every pair of ``pictures`` (both orders), as the index scores it."""
    vectors = dict(
        zip(pictures, embedder.embed(np.stack(list(pictures.values()))).embeddings, strict=True)
    )
    scores: Scores = {}
    for a, b in combinations(pictures, 2):
        scores[a, b] = scores[b, a] = float(vectors[a] @ vectors[b])
    return scores


@pytest.fixture(scope="module")
def int8(
    tmp_path_factory: pytest.TempPathFactory, pictures: dict[str, NDArray[np.uint8]]
) -> Scores:
    return scores_of(shared_embedder(tmp_path_factory), pictures)


@pytest.fixture(scope="module")
def reference(
    tmp_path_factory: pytest.TempPathFactory, pictures: dict[str, NDArray[np.uint8]]
) -> Scores:
    return scores_of(shared_keras_embedder(tmp_path_factory), pictures)


def test_int8_scores_stay_within_tolerance_of_the_float_reference(
    int8: Scores, reference: Scores
) -> None:
    differences = {pair: abs(int8[pair] - reference[pair]) for pair in reference}
    worst = max(differences, key=differences.__getitem__)
    assert differences[worst] <= SCORE_TOLERANCE, (
        f"{worst}: int8 {int8[worst]:.4f}, float32 {reference[worst]:.4f}"
    )


def test_int8_ranks_like_the_reference_wherever_the_reference_is_clear(
    int8: Scores, reference: Scores
) -> None:
    # Only gaps larger than twice the tolerance must keep their order: a near tie (Motorcycle
    # 24.5% vs Astronaut 23.1% for Coffee) may go either way under another quantisation.
    for example in LISTED:
        others = [name for name in LISTED if name != example]
        for a, b in combinations(others, 2):
            gap = reference[example, a] - reference[example, b]
            if abs(gap) > 2 * SCORE_TOLERANCE:
                assert (int8[example, a] - int8[example, b]) * gap > 0, (example, a, b)


def test_the_matching_item_comes_first_with_a_clear_margin(
    int8: Scores,
) -> None:
    # What the UI's search by picture shows: the cat first, at 80% or more, the rest far below.
    # Measured (pipeline revision 6): 0.983 for the cat, at most 0.11 for the others.
    scores = {name: int8["cat.jpg", name] for name in LISTED}
    best = max(scores, key=scores.__getitem__)
    runner_up = max(score for name, score in scores.items() if name != best)
    assert best == "chelsea"
    assert scores[best] >= 0.9
    assert scores[best] - runner_up >= 0.5


def test_unrelated_samples_score_low_and_a_recompressed_copy_high(
    int8: Scores,
) -> None:
    # The snapshot's scene: Coffee against the other samples, measured 0.05-0.15 (pipeline
    # revision 6; revision 3's GeM pooling gave 0.28-0.41, average pooling 0.08-0.25, but also
    # a near duplicate further from 1).
    assert all(0.0 <= int8["coffee", name] <= 0.5 for name in LISTED if name != "coffee")
    # The upload test's near duplicate: measured 0.983 (revision 6; revision 2: 0.956).
    assert int8["coffee", "coffee-q60"] >= ServerConfig.near_duplicate_threshold
