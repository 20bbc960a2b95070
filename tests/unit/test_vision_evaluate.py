"""Tests for ``python -m backend.vision.evaluate``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend.vision.evaluate import main, precision_at_k
from tests.unit.vision_fixtures import (
    ALTERATIONS,
    sample_picture,
    shared_cache_dir,
    shared_embedder,
)


def test_precision_at_k_on_hand_made_embeddings() -> None:
    # Two tight clusters of three; within a cluster the neighbours are the other two members.
    base = np.array([[1.0, 0.0], [0.99, 0.14], [0.98, 0.2], [0.0, 1.0], [0.1, 0.99], [0.2, 0.98]])
    unit = (base / np.linalg.norm(base, axis=1, keepdims=True)).astype(np.float32)
    labels = np.array([0, 0, 0, 1, 1, 1])
    result = precision_at_k(unit, labels, ks=(1, 2, 5))
    assert result[1] == 1.0
    assert result[2] == 1.0
    assert result[5] == pytest.approx(2 / 5)  # only 2 of any 5 neighbours can share the class


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("eval-set")
    for name in ("chelsea", "coffee", "rocket"):
        folder = root / name
        folder.mkdir()
        picture = Image.fromarray(sample_picture(name))
        picture.save(folder / "original.png")
        for kind, alter in ALTERATIONS.items():
            alter(picture).convert("RGB").save(folder / f"{kind}.jpg", quality=90)
    (root / "chelsea" / "notes.txt").write_text("not a picture", encoding="utf-8")
    (root / ".hidden").mkdir()
    return root


def test_json_report_has_exactly_the_promised_keys(
    dataset: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    shared_embedder(tmp_path_factory)  # the cache is built once per session
    status = main([str(dataset), "--json", "--cache-dir", str(shared_cache_dir(tmp_path_factory))])
    assert status == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    report = json.loads(out[0])
    assert set(report) == {"p@1", "p@5", "p@10", "images", "classes", "images_per_second"}
    assert report["images"] == 18 and report["classes"] == 3
    assert report["p@1"] == 1.0 and report["p@5"] == 1.0
    assert report["p@10"] == pytest.approx(0.5)  # 5 same-class neighbours exist per picture
    assert report["images_per_second"] > 0


def test_human_report_and_bad_folder(
    dataset: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    shared_embedder(tmp_path_factory)
    cache = str(shared_cache_dir(tmp_path_factory))
    assert main([str(dataset), "--cache-dir", cache]) == 0
    captured = capsys.readouterr()
    assert "P@1" in captured.out and "18 in 3 classes" in captured.out
    assert "notes.txt" in captured.err
    empty = tmp_path_factory.mktemp("empty")
    assert main([str(empty), "--cache-dir", cache]) == 2
