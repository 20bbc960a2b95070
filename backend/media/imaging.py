"""Provides small Pillow helpers shared by uploads, thumbnails and the vision pipeline."""

from __future__ import annotations

from PIL import Image, ImageOps


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
