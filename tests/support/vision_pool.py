"""Builds the unlabelled picture pool the shipped whitening is fitted on, from Debian packages.

``python -m tests.support.vision_pool OUT`` downloads the development set's two packages with
``apt-get download`` (no install) and writes into ``OUT`` every picture of them that the
development set (:mod:`tests.support.vision_devset`) does not use: each openclipart drawing
(public domain; the package has a few files twice, in two folders, kept once) and each emoji of
Noto Color Emoji (Apache-2.0) that is one code point in the pictographic blocks, drawn as the set
draws its own. Pictures are reduced as the set's are (longer side at most
:data:`~tests.support.vision_devset.MAX_SIDE`) and stored as PNG (the set's WebP at its effort
takes a second a picture with transparency), flat in ``OUT``, with ``SOURCES.md`` naming the
packages, their versions and the licences.

The pool is not labelled and not committed (7,831 pictures, about 80 MB): it only has to be
broad, and apart from the development set so that the set's figures stay honest. The shipped
whitening (``data/vision_whitening.npy``) is fitted on it with::

    python -m tests.support.vision_pool /tmp/pool
    python -m backend.vision.fit_whitening /tmp/pool --out data/vision_whitening.npy

Tux Paint's stamps are left out, as from the development set: the held-out check uses them.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final

from PIL import Image

from tests.support.vision_devset import (
    CLASSES,
    CLIPART_ROOT,
    LICENCES,
    Picture,
    clipart_files,
    download,
    draw_emoji,
    emoji_font,
    emoji_source,
    reduced,
)

#: Unicode blocks whose single code points are tried as emoji: Miscellaneous Symbols and
#: Dingbats, and the pictographic planes' blocks from Miscellaneous Symbols and Pictographs to
#: Symbols and Pictographs Extended-A. Code points the font has no glyph for draw nothing.
EMOJI_BLOCKS: Final = ((0x2600, 0x27BF), (0x1F300, 0x1FAFF))


def clipart_pool(root: Path, version: str) -> Iterator[Picture]:
    """Every openclipart drawing under ``root`` the development set does not use."""
    used = {path.stem.lower() for spec in CLASSES for path in clipart_files(root, spec)}
    seen: set[str] = set()
    for path in sorted((root / CLIPART_ROOT).rglob("*.png")):
        name = path.stem.lower()
        if name in used or name in seen:
            continue
        seen.add(name)
        try:
            with Image.open(path) as opened:
                opened.draft("RGB", (512, 512))
                image = opened.convert("RGBA")
        except (OSError, Image.DecompressionBombError):
            continue  # a handful of the package's files are damaged, one is 231 megapixels
        relative = path.relative_to(root)
        yield Picture(image, f"clipart-{path.parent.name}-{path.stem}",
                      f"Debian `openclipart-png` {version}: `/{relative}`",
                      LICENCES["openclipart-png"])


def emoji_pool(root: Path, version: str) -> Iterator[Picture]:
    """Every single-code-point emoji of :data:`EMOJI_BLOCKS` the development set does not use."""
    used = {character for spec in CLASSES for character in spec.emoji}
    font = emoji_font(root)
    for first, last in EMOJI_BLOCKS:
        for point in range(first, last + 1):
            if chr(point) in used:
                continue
            image = draw_emoji(font, chr(point))
            if image is not None:
                yield Picture(image, f"emoji-u{point:04x}", emoji_source(version, f"{point:04x}"),
                              LICENCES["fonts-noto-color-emoji"])


def save(picture: Picture, folder: Path) -> None:
    """Store ``picture`` reduced (:func:`~tests.support.vision_devset.reduced`) as PNG."""
    reduced(picture).save(folder / f"{picture.stem}.png", "PNG")


def build(out: Path) -> int:
    """Write the pool into ``out`` (which must not exist yet); return the number of pictures."""
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="pixmart-pool-") as scratch:
        work = Path(scratch)
        versions = download(sorted(LICENCES), work)
        root = work / "root"
        count = 0
        # One picture at a time: the drawings decoded at once would take gigabytes.
        for picture in itertools.chain(clipart_pool(root, versions["openclipart-png"]),
                                       emoji_pool(root, versions["fonts-noto-color-emoji"])):
            save(picture, out)
            count += 1
    listed = "\n".join(f"- `{package}` {version}: {LICENCES[package]}"
                       for package, version in sorted(versions.items()))
    (out / "SOURCES.md").write_text(
        f"# Whitening pool: {count} unlabelled pictures\n\nMade by `python -m "
        f"tests.support.vision_pool OUT` from these Debian packages, leaving out every picture "
        f"of the development set:\n\n{listed}\n", encoding="utf-8")
    return count


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m tests.support.vision_pool")
    parser.add_argument("out", type=Path, help="folder to create")
    args = parser.parse_args(argv)
    print(f"{build(args.out)} pictures written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
