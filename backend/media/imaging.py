"""Provides small Pillow helpers shared by uploads, thumbnails and the vision pipeline."""

from __future__ import annotations

import io
from typing import Final

from PIL import ExifTags, Image, ImageCms, ImageOps

#: How to turn a picture stored with EXIF orientation N into the picture as people see it.
_TRANSPOSE_FOR_ORIENTATION: Final[dict[int, Image.Transpose]] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

#: Orientations whose transposition swaps width and height.
SWAPPING_ORIENTATIONS: Final = frozenset({5, 6, 7, 8})

#: Modes that resampling, colour management and :func:`flatten_onto_white` all handle well.
_WORKING_MODES: Final = frozenset({"L", "LA", "RGB", "RGBA", "CMYK"})


def flatten_onto_white(image: Image.Image) -> Image.Image:
    """Return an RGB copy of ``image`` with any transparency composited onto white.

    Product cut-outs are often PNGs with a transparent background; compositing onto black (what a
    plain ``convert("RGB")`` does to premultiplied pixels) would turn them into dark blobs.
    """
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        background.alpha_composite(rgba)
        return background.convert("RGB")
    if image.mode != "RGB":
        return image.convert("RGB")
    return image


def upright(image: Image.Image) -> Image.Image:
    """Return ``image`` rotated/flipped as its EXIF orientation tag says."""
    return ImageOps.exif_transpose(image) or image


def exif_orientation(image: Image.Image) -> int:
    """Return the EXIF orientation (1-8) of ``image``, reading EXIF the way :func:`upright` does.

    Returns 1 (as stored) when the tag is absent, out of range or the EXIF cannot be parsed: a
    malformed EXIF block must not make an otherwise good picture unusable.
    """
    try:
        value = image.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:
        # Pillow's EXIF parser raises assorted types on hostile input; all mean "no usable tag".
        return 1
    return value if isinstance(value, int) and value in range(1, 9) else 1


def apply_orientation(image: Image.Image, orientation: int) -> Image.Image:
    """Return ``image`` transposed for an EXIF ``orientation`` read earlier (1 is a no-op).

    Unlike :func:`upright` this neither reads nor rewrites EXIF, so the caller decides which
    orientation counts: the media pipeline uses the one recorded when the upload was validated,
    which is also the one written into the sanitised original.
    """
    method = _TRANSPOSE_FOR_ORIENTATION.get(orientation)
    return image if method is None else image.transpose(method)


def needs_working_conversion(image: Image.Image) -> bool:
    """Return whether :func:`to_working_mode` converts ``image`` (a full-size copy) or keeps it."""
    if "transparency" in image.info and image.mode in ("P", "L", "RGB"):
        return True
    return image.mode not in _WORKING_MODES


def to_working_mode(image: Image.Image) -> Image.Image:
    """Return ``image`` in one of L, LA, RGB, RGBA or CMYK, keeping transparency.

    Resampling palette ("P") images falls back to nearest-neighbour and 16-bit greyscale
    ("I;16") would be clipped to white by a plain ``convert("L")``, so both are converted first.
    """
    mode = image.mode
    if "transparency" in image.info and mode in ("P", "L", "RGB"):
        return image.convert("RGBA")
    if mode in _WORKING_MODES:
        return image
    if mode == "PA":
        return image.convert("RGBA")
    if mode == "1":
        return image.convert("L")
    if mode.startswith("I"):
        # Scale 16-bit samples down to 8 bits; ``convert("L")`` alone would clip them at 255.
        return image.convert("I").point(lambda value: value / 256).convert("L")
    return image.convert("RGB")


def to_srgb(image: Image.Image) -> Image.Image:
    """Return ``image`` converted from its embedded ICC profile to sRGB, without the profile.

    Derivatives are served without an ICC profile, so pictures in wide-gamut spaces (Display P3
    from phones, Adobe RGB from cameras) must be converted or they look washed out. Images
    without a profile are taken to be sRGB already and returned unchanged. When the profile
    cannot be used (malformed, or of the wrong colour space for the mode) the pixels are kept
    as they are, which is what a viewer ignoring the profile would show.

    Args:
        image: A picture in one of the modes :func:`to_working_mode` returns.

    Returns:
        A picture without ``icc_profile`` in its info: RGB or RGBA if it was converted, the
        input's mode otherwise.
    """
    icc = image.info.get("icc_profile")
    if not icc:
        return image
    output_mode = "RGBA" if image.mode in ("RGBA", "LA") else "RGB"
    converted: Image.Image | None
    try:
        # Profiles are built per call: LittleCMS profile objects are not safe to share between
        # the worker threads the pipeline runs in.
        converted = ImageCms.profileToProfile(
            image,
            ImageCms.ImageCmsProfile(io.BytesIO(icc)),
            ImageCms.createProfile("sRGB"),
            outputMode=output_mode,
        )
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        converted = None
    result = converted if converted is not None else image.copy()
    result.info.pop("icc_profile", None)
    return result
