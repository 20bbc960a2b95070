"""Tests that an altered copy of a picture still finds its original by embedding similarity."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from backend.vision.embedder import Embedder
from backend.vision.index import VectorIndex
from backend.vision.preprocess import preprocess
from tests.unit.vision_fixtures import ALTERATIONS, SAMPLE_NAMES, sample_picture, shared_embedder


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    return shared_embedder(tmp_path_factory)


def test_altered_copies_find_their_original(embedder: Embedder) -> None:
    originals = [Image.fromarray(sample_picture(name)) for name in SAMPLE_NAMES]
    assert len(originals) >= 10
    original_vectors = embedder.embed(np.stack([preprocess(p) for p in originals])).embeddings
    index = VectorIndex(mode="exact")
    index.add_many(range(len(originals)), original_vectors, [0] * len(originals),
                   [True] * len(originals))

    queries, truth, kinds = [], [], []
    for number, picture in enumerate(originals):
        for kind, alter in ALTERATIONS.items():
            queries.append(preprocess(alter(picture)))
            truth.append(number)
            kinds.append(f"{SAMPLE_NAMES[number]}/{kind}")
    query_vectors = embedder.embed(np.stack(queries)).embeddings

    misses = [kind for vector, expected, kind in zip(query_vectors, truth, kinds, strict=True)
              if index.search(vector, 1)[0].item_id != expected]
    hit_rate = 1 - len(misses) / len(queries)
    assert hit_rate >= 0.95, f"hit rate {hit_rate:.3f}, misses: {misses}"
