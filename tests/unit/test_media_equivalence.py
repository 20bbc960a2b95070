"""Tests that the upload pipeline's derivatives look as they did before issue 19.

The new pipeline (one decode, libvips resizing, the model picture from the preview, orientation
and colour on the small outputs, WebP method 2) is compared with the old one, kept verbatim in
:mod:`tests.support.reference_pipeline`, on the demo photos and on a media set covering every
path through the pipeline: large JPEGs reduced while decoding, EXIF orientations, an ICC
profile, transparency, a palette, 16-bit grey, CMYK, greyscale, lossless and lossy WebP, a
panorama and a picture too small to resize.

What people see must not change:

* the same sizes for the thumbnail, the preview and the model picture;
* files within 15% of the old ones' byte sizes;
* the model picture (never encoded) with SSIM at least 0.99 against the old one;
* each encoded file as faithful to the picture as the old file was: its SSIM against the old
  pipeline's unencoded pixels at most 0.01 below the old file's;
* every encoded file looks like the old one, picture by picture: multi-scale SSIM (MS-SSIM,
  Wang, Simoncelli and Bovik 2003) of new against old at least :data:`MIN_FILE_MS_SSIM`. This is
  the issue's "equivalent perceptual check" in place of plain SSIM >= 0.97 per file, which no
  change of encoder effort can meet: two lossy encodings of one picture differ from each other
  about as much as each differs from the picture, and plain SSIM at full resolution counts that
  pixel-level noise. The old pipeline's own pixels encoded at method 2 instead of 4 have plain
  SSIM 0.948 against its files (a meadow's thumbnail) but MS-SSIM 0.987 at least. The bound is
  stricter than it looks: the old preview blurred by a Gaussian of 1 pixel (0.975), or encoded
  again at quality 60 (0.976), fails it;
* plain SSIM of new against old still at least 0.93 for every file and 0.97 on average;
* the same colours: the files' mean red, green and blue within 2 levels of the old ones'.

SSIM is the standard one (Gaussian window of sigma 1.5) on luma, and MS-SSIM is made of it over
up to five scales with the paper's weights; colour is checked by the means.
The module runs both pipelines on about 50 pictures (a few seconds on an idle machine); each
picture is its own test.
"""

from __future__ import annotations

import io
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Final

import numpy as np
import pytest
from PIL import Image, ImageFilter
from scipy.ndimage import gaussian_filter
from skimage.metrics import structural_similarity

from backend.media.derivatives import Derivatives, make_derivatives
from backend.media.validate import inspect_image
from tests.support.reference_pipeline import reference_outputs
from tests.unit.test_media_samples import encode, exif_with_gps, srgb_icc

MAX_SIZE_CHANGE: Final = 0.15
MIN_MODEL_SSIM: Final = 0.99
MAX_FIDELITY_LOSS: Final = 0.01
MIN_FILE_SSIM: Final = 0.93
MIN_FILE_MS_SSIM: Final = 0.98
MIN_MEAN_FILE_SSIM: Final = 0.97
MAX_COLOUR_SHIFT: Final = 2.0

DEMO: Final = resources.files("pixmart_data") / "demo"
DEMO_PHOTOS: Final = sorted(entry.name for entry in DEMO.iterdir() if entry.name.endswith(".jpg"))


def _photo(name: str = "fig-in-red-bowl.jpg") -> Image.Image:
    with Image.open(io.BytesIO((DEMO / name).read_bytes())) as image:
        return image.convert("RGB")


def _enlarged(size: tuple[int, int]) -> Image.Image:
    return _photo().resize(size, Image.Resampling.BICUBIC)


def _cutout() -> Image.Image:
    """The photo on a transparent background with a soft edge, as product shots are."""
    photo = _photo().resize((1600, 1083))
    mask = Image.new("L", photo.size, 0)
    mask.paste(255, (300, 200, 1300, 883))
    alpha = mask.resize((160, 108)).resize(photo.size, Image.Resampling.BILINEAR)
    photo.putalpha(alpha)
    return photo


#: The media set: how to make each picture's file.
MEDIA_SET: Final[dict[str, Callable[[], bytes]]] = {
    "large-jpeg": lambda: encode(_enlarged((3072, 2079)), "JPEG", quality=90),
    "large-jpeg-rotated-6": lambda: encode(
        _enlarged((3072, 2079)), "JPEG", quality=90, exif=exif_with_gps(orientation=6)
    ),
    "jpeg-icc-rotated-3": lambda: encode(
        _enlarged((1800, 1218)),
        "JPEG",
        quality=90,
        icc_profile=srgb_icc(),
        exif=exif_with_gps(orientation=3),
    ),
    "png-transparent-cutout": lambda: encode(_cutout(), "PNG", compress_level=1),
    "png-palette-transparency": lambda: encode(
        _cutout().resize((800, 541)).convert("RGB").quantize(64), "PNG", transparency=0
    ),
    "png-16-bit-grey": lambda: encode(
        Image.fromarray(np.asarray(_enlarged((1200, 812)).convert("L"), "<u2") * 257),
        "PNG",
    ),
    "jpeg-cmyk": lambda: encode(_enlarged((1200, 812)).convert("CMYK"), "JPEG", quality=90),
    "jpeg-greyscale": lambda: encode(_enlarged((2000, 1353)).convert("L"), "JPEG", quality=90),
    "webp-lossless": lambda: encode(_photo().resize((700, 474)), "WEBP", lossless=True, method=0),
    "webp-rotated-8": lambda: encode(
        _enlarged((1500, 1015)), "WEBP", quality=90, exif=exif_with_gps(orientation=8)
    ),
    "jpeg-panorama": lambda: encode(_enlarged((4000, 800)), "JPEG", quality=90),
    "jpeg-small": lambda: encode(_photo().resize((200, 135)), "JPEG", quality=90),
}


@dataclass(frozen=True, slots=True)
class FileLook:
    """How one new encoded file compares with the old one."""

    size_ratio: float
    #: SSIM of the new file against the old file.
    similarity: float
    #: MS-SSIM of the new file against the old file.
    ms_similarity: float
    #: SSIM of the new and of the old file against the old pipeline's unencoded pixels.
    new_fidelity: float
    old_fidelity: float
    #: Largest difference between the two files' mean red, green or blue, in levels.
    colour_shift: float


@dataclass(frozen=True, slots=True)
class Comparison:
    """Old and new derivatives of one picture, side by side."""

    old: Derivatives
    new: Derivatives
    model_similarity: float
    files: dict[str, FileLook]


@cache
def compare(name: str) -> Comparison:
    """Run both pipelines on the demo photo or media-set picture called ``name``."""
    data = MEDIA_SET[name]() if name in MEDIA_SET else (DEMO / name).read_bytes()
    info = inspect_image(data)
    reference = reference_outputs(data, info)
    old, new = reference.derivatives, make_derivatives(data, info)
    files = {
        "thumbnail": _look(old.thumbnail, new.thumbnail, reference.thumbnail_pixels),
        "preview": _look(old.preview, new.preview, reference.preview_pixels),
    }
    return Comparison(old, new, ssim(new.model_image, old.model_image), files)


def _look(old_file: bytes, new_file: bytes, pixels: Image.Image) -> FileLook:
    old_look, new_look = decoded(old_file), decoded(new_file)
    assert new_look.size == old_look.size == pixels.size
    old_means = np.asarray(old_look, np.float32).mean(axis=(0, 1))
    new_means = np.asarray(new_look, np.float32).mean(axis=(0, 1))
    return FileLook(
        size_ratio=len(new_file) / len(old_file),
        similarity=ssim(new_look, old_look),
        ms_similarity=ms_ssim(new_look, old_look),
        new_fidelity=ssim(new_look, pixels),
        old_fidelity=ssim(old_look, pixels),
        colour_shift=float(np.abs(new_means - old_means).max()),
    )


def ssim(a: Image.Image, b: Image.Image) -> float:
    """The standard SSIM of two pictures' luma (ITU-R 601, as Pillow converts to L)."""
    return float(
        structural_similarity(  # type: ignore[no-untyped-call]  # scikit-image has no hints
            np.asarray(a.convert("L"), np.float32),
            np.asarray(b.convert("L"), np.float32),
            data_range=255,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
    )


#: MS-SSIM's weights of its five scales, finest first (Wang, Simoncelli and Bovik 2003).
MS_SSIM_WEIGHTS: Final = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
#: The Gaussian window's reach (sigma 1.5, 11 pixels across), as in :func:`ssim`.
_WINDOW: Final = 11


def ms_ssim(a: Image.Image, b: Image.Image) -> float:
    """The multi-scale SSIM of two pictures' luma, over as many of five scales as fit.

    Each scale halves the last by averaging 2 x 2 pixels; the contrast-structure term is taken at
    every scale and the luminance term at the coarsest. A small picture (a thumbnail 170 pixels
    high) uses the scales at which it is still a window high, with the weights renormalised.
    """
    x = np.asarray(a.convert("L"), np.float64)
    y = np.asarray(b.convert("L"), np.float64)
    scales = 1
    while scales < len(MS_SSIM_WEIGHTS) and min(x.shape) >> scales >= _WINDOW:
        scales += 1
    weights = np.asarray(MS_SSIM_WEIGHTS[:scales]) / sum(MS_SSIM_WEIGHTS[:scales])
    result = 1.0
    for scale, weight in enumerate(weights):
        similarity, contrast_structure = _ssim_terms(x, y)
        if scale == scales - 1:
            return float(result * max(similarity, 0.0) ** weight)
        result *= float(max(contrast_structure, 0.0) ** weight)
        x, y = _halved(x), _halved(y)
    raise AssertionError("unreachable")


def _ssim_terms(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Mean SSIM and mean contrast-structure term of two luma planes (borders left out)."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(plane: np.ndarray) -> np.ndarray:
        return np.asarray(gaussian_filter(plane, 1.5, truncate=3.5, mode="reflect"))

    mean_x, mean_y = blur(x), blur(y)
    var_x = blur(x * x) - mean_x * mean_x
    var_y = blur(y * y) - mean_y * mean_y
    covariance = blur(x * y) - mean_x * mean_y
    contrast_structure = (2 * covariance + c2) / (var_x + var_y + c2)
    luminance = (2 * mean_x * mean_y + c1) / (mean_x**2 + mean_y**2 + c1)
    inner = (slice(_WINDOW // 2, -(_WINDOW // 2)),) * 2
    return (
        float((luminance * contrast_structure)[inner].mean()),
        float(contrast_structure[inner].mean()),
    )


def _halved(plane: np.ndarray) -> np.ndarray:
    """The plane at half the size, each pixel the mean of 2 x 2 (an odd last row or column
    dropped)."""
    height, width = plane.shape[0] // 2 * 2, plane.shape[1] // 2 * 2
    return np.asarray(plane[:height, :width].reshape(height // 2, 2, width // 2, 2).mean((1, 3)))


def decoded(data: bytes) -> Image.Image:
    """A WebP file's pixels."""
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "WEBP"
        return image.convert("RGB")


ALL_PICTURES: Final = [*DEMO_PHOTOS, *MEDIA_SET]


@pytest.mark.parametrize("name", ALL_PICTURES)
def test_derivatives_look_as_before(name: str) -> None:
    comparison = compare(name)
    old, new = comparison.old, comparison.new

    assert (new.thumb_size, new.preview_size) == (old.thumb_size, old.preview_size)
    assert new.model_image.size == old.model_image.size
    assert new.model_image.mode == "RGB" and new.model_image.info == {}
    assert comparison.model_similarity >= MIN_MODEL_SSIM
    for kind, look in comparison.files.items():
        assert abs(look.size_ratio - 1) <= MAX_SIZE_CHANGE, (kind, look)
        assert look.new_fidelity >= look.old_fidelity - MAX_FIDELITY_LOSS, (kind, look)
        assert look.ms_similarity >= MIN_FILE_MS_SSIM, (kind, look)
        assert look.similarity >= MIN_FILE_SSIM, (kind, look)
        assert look.colour_shift <= MAX_COLOUR_SHIFT, (kind, look)


def test_files_look_as_before_on_average() -> None:
    similarities = [
        look.similarity for name in ALL_PICTURES for look in compare(name).files.values()
    ]

    assert statistics.mean(similarities) >= MIN_MEAN_FILE_SSIM


def test_ms_ssim_tells_a_visible_change_from_another_encoding() -> None:
    old = decoded(compare("fig-in-red-bowl.jpg").old.preview)
    buffer = io.BytesIO()
    old.save(buffer, "WEBP", quality=60)

    assert ms_ssim(old, old) == pytest.approx(1.0)
    assert ms_ssim(old.filter(ImageFilter.GaussianBlur(1.0)), old) < MIN_FILE_MS_SSIM
    assert ms_ssim(decoded(buffer.getvalue()), old) < MIN_FILE_MS_SSIM
