"""Provides the calibration pictures for quantising the network to int8.

Full-integer quantisation needs a *representative dataset*: real pictures whose activations set
the int8 range of every tensor. The demo catalogue's photographs (``data/demo/*.jpg``: landscapes,
animals, food, objects, textures, night scenes, all under redistributable licences, see
``data/demo/SOURCES.md``) are varied enough for that and already ship with the product, so the
conversion needs no download and no extra files.

The set is pinned by :data:`CALIBRATION_SHA256` because it shapes the quantised model: changing a
demo photo would silently change every embedding made afterwards. Whoever changes the photos must
update the digest *and* bump the embedder's pipeline revision, so stored embeddings are redone.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps
from pixmart_data import data_file

from backend.vision.preprocess import preprocess

#: SHA-256 over the sorted file names and contents of the calibration pictures.
CALIBRATION_SHA256: Final = "b957af928b739f092e5304184a3cfb2ba5a3b6dc2334ab20054e08befc728cc7"
#: Share of each side kept by the second, zoomed-in view of every picture.
_ZOOM: Final = 0.7


class CalibrationError(RuntimeError):
    """Raised when the shipped calibration pictures are missing or not the pinned set."""


def calibration_files(folder: Path | None = None) -> list[Path]:
    """Return the calibration pictures in a stable order."""
    return sorted((folder or data_file("demo")).glob("*.jpg"))


def calibration_digest(files: list[Path]) -> str:
    """Return the SHA-256 over the names and contents of ``files`` (in the given order)."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode("utf-8") + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def calibration_batch(folder: Path | None = None) -> NDArray[np.uint8]:
    """Return the preprocessed calibration pictures, uint8 ``[N, 224, 224, 3]``.

    Every photograph contributes two views: the product's own preprocessing of the whole
    picture, and a mirrored centre crop (close-ups and flipped compositions are what sellers
    upload too, and they widen the activation ranges the quantiser sees).

    Raises:
        CalibrationError: The pictures are missing or differ from the pinned set.
    """
    files = calibration_files(folder)
    if not files:
        raise CalibrationError(f"no calibration pictures in {folder or data_file('demo')}")
    digest = calibration_digest(files)
    if digest != CALIBRATION_SHA256:
        raise CalibrationError(
            f"calibration pictures changed (SHA-256 {digest}); update CALIBRATION_SHA256 and bump"
            " PIPELINE_REVISION in backend/vision/embedder.py so stored embeddings are redone"
        )
    views: list[NDArray[np.uint8]] = []
    for path in files:
        with Image.open(path) as opened:
            picture = opened.convert("RGB")
        views.append(preprocess(picture))
        views.append(preprocess(ImageOps.mirror(_centre_crop(picture, _ZOOM))))
    return np.stack(views)


def _centre_crop(picture: Image.Image, share: float) -> Image.Image:
    """Return the centre ``share`` of each side of ``picture``."""
    width, height = picture.size
    left = round(width * (1 - share) / 2)
    top = round(height * (1 - share) / 2)
    return picture.crop((left, top, width - left, height - top))
