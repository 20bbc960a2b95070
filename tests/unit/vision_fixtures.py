"""Provides shared test data and one model build per test session for the vision tests.

Building the TFLite model takes ~10 s, so every vision test module gets the same
:class:`Embedder` through :func:`shared_embedder` (cached here for the whole session, built in a
session temp folder, or in the folder of the whole run that ``make test`` names). Sample
pictures come from scikit-image's bundled data (no download).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skimage.data
from numpy.typing import NDArray
from PIL import Image, ImageEnhance

from backend.vision.embedder import Embedder
from backend.vision.preprocess import preprocess

_cache: dict[str, Any] = {}

# Bundled scikit-image pictures (no pooch download needed), chosen to be visually distinct.
SAMPLE_NAMES = (
    "chelsea",
    "coffee",
    "rocket",
    "astronaut",
    "camera",
    "motorcycle",
    "clock",
    "coins",
    "brick",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "colorwheel",
    "moon",
    "page",
)


def sample_picture(name: str) -> NDArray[np.uint8]:
    """Return a scikit-image sample as an RGB uint8 array."""
    if name == "motorcycle":
        array = skimage.data.stereo_motorcycle()[0]  # type: ignore[no-untyped-call]
    else:
        array = getattr(skimage.data, name)()
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return np.ascontiguousarray(array[..., :3].astype(np.uint8))


def jpeg_of(name: str, *, brighten: float = 1.0, quality: int = 90) -> bytes:
    """A scikit-image sample as JPEG bytes, optionally brightened and re-compressed."""
    image = Image.fromarray(sample_picture(name))
    if brighten != 1.0:
        image = ImageEnhance.Brightness(image).enhance(brighten)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


#: A model cache folder shared by every worker of every pass of one ``make test`` run (the
#: Makefile makes it empty for each run), so the model is converted about once per run instead
#: of once per worker and pass; unset, each test session converts into a folder of its own.
SHARED_CACHE_VARIABLE = "PIXMART_TEST_MODEL_CACHE"


def shared_cache_dir(factory: pytest.TempPathFactory) -> Path:
    """Return the session's model cache folder (the run's, if :data:`SHARED_CACHE_VARIABLE`).

    Workers that find it empty at the same time each convert; the cache's writes are atomic
    and a reader checks the manifest and hash, so they never see half a model.
    """
    if "cache_dir" not in _cache:
        shared = os.environ.get(SHARED_CACHE_VARIABLE)
        _cache["cache_dir"] = Path(shared) if shared else factory.mktemp("vision-models")
    path: Path = _cache["cache_dir"]
    return path


def shared_embedder(factory: pytest.TempPathFactory) -> Embedder:
    """Return the session's TFLite embedder, building it on first use."""
    if "tflite" not in _cache:
        _cache["tflite"] = Embedder(shared_cache_dir(factory))
    embedder: Embedder = _cache["tflite"]
    return embedder


def shared_keras_embedder(factory: pytest.TempPathFactory) -> Embedder:
    """Return the session's Keras (reference runtime) embedder."""
    if "keras" not in _cache:
        _cache["keras"] = Embedder(shared_cache_dir(factory), runtime="keras")
    embedder: Embedder = _cache["keras"]
    return embedder


def _crop80(image: Image.Image) -> Image.Image:
    width, height = image.size
    dx, dy = int(width * 0.1), int(height * 0.1)
    return image.crop((dx, dy, width - dx, height - dy))


def _rotate10(image: Image.Image) -> Image.Image:
    return image.rotate(10, resample=Image.Resampling.BICUBIC, expand=False)


def _half(image: Image.Image) -> Image.Image:
    return image.resize((image.width // 2, image.height // 2), Image.Resampling.BICUBIC)


def _brighter(image: Image.Image) -> Image.Image:
    return ImageEnhance.Brightness(image).enhance(1.2)


def _jpeg40(image: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=40)
    buffer.seek(0)
    return Image.open(buffer)


#: The alterations a re-upload might have gone through.
ALTERATIONS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "crop80": _crop80,
    "rotate10": _rotate10,
    "half": _half,
    "brightness+20%": _brighter,
    "jpeg40": _jpeg40,
}


def preprocessed(array: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Run an RGB array through the product's preprocessing."""
    return preprocess(Image.fromarray(array))
