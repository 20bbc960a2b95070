"""Provides the one place where Pillow opens untrusted bytes, with its safety settings pinned.

Pillow keeps its safety switches in module globals, so they cannot be set per call. Importing
this module therefore sets them for the whole process, once:

* ``ImageFile.LOAD_TRUNCATED_IMAGES = False``: a truncated file must fail to decode rather than
  come back with grey bands (it is re-asserted before every open, as a cheap guard against any
  other code flipping it).
* ``Image.MAX_IMAGE_PIXELS = DEFAULT_MAX_PIXELS``: Pillow's own decompression-bomb guard sits at
  our limit, so Pillow warns at the limit and refuses outright at twice the limit, before any
  pixel memory is allocated. :func:`open_image` raises the guard (never lowers it) if a caller's
  limit is higher, so a picture we accept is never refused by Pillow.
* ``DecompressionBombWarning`` is turned into an error, so no code path in the server decodes a
  picture over the guard. Our own header check would refuse it anyway; this is defence in depth.
* Pillow allocates pixels in blocks of :data:`PIXEL_BLOCK_BYTES` instead of 16 MiB. glibc serves
  blocks under its mmap threshold (which climbs to 32 MiB after the first large free) from the
  decoding thread's own heap and keeps them when they are freed, so every decoding thread came
  to hold a large picture's worth of memory for good: two threads taking turns at one 49 MP
  decode at a time held 410 MB instead of 200. Larger blocks are mapped and unmapped each time.

Every Pillow exception raised while opening or decoding is translated into a
:class:`~backend.media.errors.MediaError`, so callers handle exactly one family of exceptions.
"""

from __future__ import annotations

import io
import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Final

from PIL import Image, ImageFile, UnidentifiedImageError, _imaging

from backend.media.errors import MediaError, TooLarge, UnsupportedMedia
from backend.media.limits import DEFAULT_MAX_PIXELS

#: What Pillow reports as ``Image.format`` for each format we accept. Camera JPEGs carrying a
#: Multi-Picture (MPF) index are reported as "MPO"; the first picture is the ordinary photo.
PILLOW_NAMES: Final[dict[str, frozenset[str]]] = {
    "JPEG": frozenset({"JPEG", "MPO"}),
    "PNG": frozenset({"PNG"}),
    "WEBP": frozenset({"WEBP"}),
}

#: Pillow's pixel block size: above glibc's largest mmap threshold (32 MiB), so the blocks of a
#: large picture go back to the system as soon as it is freed. Smaller pictures fit one block
#: of their own size, so nothing is allocated in vain.
PIXEL_BLOCK_BYTES: Final = 64 * 1024 * 1024

_guard_lock = threading.Lock()


def harden_pillow(max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """Pin Pillow's process-wide safety settings (see the module docstring).

    Called on import; calling it again is harmless.

    Args:
        max_pixels: The pixel limit Pillow's decompression-bomb guard is set to.
    """
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    with _guard_lock:
        Image.MAX_IMAGE_PIXELS = max_pixels
    warnings.filterwarnings("error", category=Image.DecompressionBombWarning)
    _imaging.set_block_size(PIXEL_BLOCK_BYTES)  # what Image.core is


def _allow_pixels(max_pixels: int) -> None:
    """Raise Pillow's bomb guard to ``max_pixels`` if it is lower or switched off."""
    with _guard_lock:
        current = Image.MAX_IMAGE_PIXELS
        if current is None or current < max_pixels:
            Image.MAX_IMAGE_PIXELS = max_pixels


@contextmanager
def source_stream(source: bytes | Path) -> Iterator[tuple[BinaryIO, int]]:
    """Yield a readable, seekable stream over ``source`` and its size in bytes.

    Args:
        source: The file's bytes, or the path of a file the server itself wrote (an upload or a
            stored blob; never a name a client chose).
    """
    if isinstance(source, bytes):
        yield io.BytesIO(source), len(source)
        return
    with open(source, "rb") as stream:
        # fstat on the open file, not stat on the path: the size then describes what we read.
        yield stream, os.fstat(stream.fileno()).st_size


@contextmanager
def translated_errors(claimed: str, max_pixels: int) -> Iterator[None]:
    """Translate any exception Pillow raises in the ``with`` body into a MediaError.

    The body must only run Pillow on untrusted data: a bug of ours inside it would be reported
    as a damaged picture.

    Args:
        claimed: The format the file's first bytes announce, for the error message.
        max_pixels: The pixel limit, for the error message.

    Raises:
        TooLarge: Pillow's decompression-bomb guard fired.
        UnsupportedMedia: Pillow could not identify or decode the data.
    """
    try:
        yield
    except MediaError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise TooLarge.bomb(max_pixels) from exc
    except UnidentifiedImageError as exc:
        raise UnsupportedMedia.mismatch(claimed) from exc
    except MemoryError:
        # Running out of memory is the server's problem, not a property of the file.
        raise
    except Exception as exc:
        # Decoders of hostile input raise a zoo of types (OSError, SyntaxError, ValueError,
        # struct.error, EOFError, IndexError...); all of them mean "this file is bad".
        raise UnsupportedMedia.damaged() from exc


@contextmanager
def open_image(stream: BinaryIO, fmt: str, max_pixels: int) -> Iterator[ImageFile.ImageFile]:
    """Open ``stream`` lazily with only the Pillow plugin for ``fmt``; nothing is decoded yet.

    Restricting Pillow to the one plugin the magic bytes name keeps its dozens of other parsers
    (EPS, FITS, ...) away from untrusted data. Exceptions raised in the ``with`` body are
    translated as by :func:`translated_errors`, so keep the body to Pillow calls.

    Args:
        stream: A readable, seekable binary stream positioned anywhere.
        fmt: ``"JPEG"``, ``"PNG"`` or ``"WEBP"``, as sniffed from the first bytes.
        max_pixels: The caller's pixel limit; Pillow's guard is raised to it if lower.

    Yields:
        The opened image; its ``size`` comes from the header.

    Raises:
        TooLarge: The header declares more pixels than Pillow's guard allows.
        UnsupportedMedia: The data is not a valid ``fmt`` picture.
    """
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    _allow_pixels(max_pixels)
    with translated_errors(fmt, max_pixels), Image.open(stream, formats=[fmt]) as image:
        if image.format not in PILLOW_NAMES[fmt]:
            raise UnsupportedMedia.mismatch(fmt)
        yield image


harden_pillow()
