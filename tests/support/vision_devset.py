"""Builds the labelled development set of the image search from Debian packages.

``python -m tests.support.vision_devset OUT`` downloads a few Debian packages with
``apt-get download`` (no install), unpacks them with ``dpkg-deb -x`` and writes one folder per
visual class under ``OUT``, the layout ``python -m backend.vision.evaluate`` reads, plus
``SOURCES.md`` naming the package, path and licence of every picture. The result is committed in
``tests/data/vision-devset`` so neither the tests nor a measurement need apt; this script is how
it was made and how to make it again.

Where the pictures come from, all under licences that allow redistribution and changes:

- ``openclipart-png``: drawings with transparency, public domain (the Open Clip Art Library's
  dedication), sorted by the package into folders such as ``animals/mammals/dogs``;
- ``fonts-noto-color-emoji``: Google's emoji artwork (Apache-2.0), drawn at 109 px with Pillow,
  transparent around the figure: a second drawing style for most classes;
- photographs already in the repository (``data/demo``, see its ``SOURCES.md``) and bundled with
  the scikit-image test dependency.

Tux Paint's stamps are left out on purpose: the held-out check of the issue uses them.

Every picture is reduced so its longer side is at most :data:`MAX_SIDE` pixels (never enlarged)
and stored as WebP (lossy, alpha kept), so the whole set stays a few megabytes.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from PIL import Image, ImageDraw, ImageFont

#: Longest side of a stored picture.
MAX_SIDE: Final = 256
#: Drawings taken from openclipart per class at most (spread evenly over the sorted files).
MAX_CLIPART: Final = 24
_WEBP_QUALITY: Final = 82
CLIPART_ROOT: Final = "usr/share/openclipart/png"
_EMOJI_FONT: Final = "usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
#: The only size at which Noto Color Emoji has bitmaps.
_EMOJI_SIZE: Final = 109
_REPO_ROOT: Final = Path(__file__).resolve().parents[2]

LICENCES: Final = {
    "openclipart-png": "Public domain (Open Clip Art Library dedication)",
    "fonts-noto-color-emoji": "Apache-2.0",
}


@dataclass(frozen=True, slots=True)
class VisualClass:
    """One folder of the set: which clipart files, emoji and photographs belong to it."""

    name: str
    #: Folders under ``/usr/share/openclipart/png`` (not recursive).
    folders: tuple[str, ...]
    #: File names (without ``.png``) must match this, when given.
    keep: str = ""
    #: File names matching this are left out (wrong subject, text, near-duplicates).
    drop: str = ""
    emoji: tuple[str, ...] = ()
    #: Photographs: ``demo:NAME.jpg`` (``data/demo``) or ``skimage:NAME``.
    photos: tuple[str, ...] = field(default=())


CLASSES: Final = (
    VisualClass("bird", ("animals/birds", "animals/birds/penguin"),
                emoji=("\U0001F426", "\U0001F427", "\U0001F985", "\U0001F986", "\U0001F989",
                       "\U0001F99C", "\U0001F413", "\U0001F54A", "\U0001F9A2", "\U0001F9A9")),
    VisualClass("boat", ("transportation/boating",), drop=r"rules|knot|labels|points|tacks",
                emoji=("\u26F5", "\U0001F6A4", "\U0001F6E5", "\U0001F6A2", "\u26F4",
                       "\U0001F6F6")),
    VisualClass("cake", ("food/desserts",), keep=r"cake|pie|muffin|cupcake|torte|tart|gateau",
                emoji=("\U0001F370", "\U0001F382", "\U0001F9C1", "\U0001F967")),
    VisualClass("car", ("transportation/vehicles", "transportation"),
                keep=r"car|auto|truck|bus|van|jeep|taxi|police|ambulance|hummer|vehicle|beetle"
                     r"|fire_engine|pickup|limo|racing",
                drop=r"cart|card|carrot|scarf|sign|symbol|road",
                emoji=("\U0001F697", "\U0001F695", "\U0001F699", "\U0001F68C", "\U0001F693",
                       "\U0001F691", "\U0001F692", "\U0001F69A", "\U0001F3CE")),
    VisualClass("cat", ("animals/mammals/housecats", "animals/mammals/big_cats",
                        "animals/mammals"),
                keep=r"cat|kitt|lion|tiger|leopard|panther|cheetah|jaguar|lynx",
                drop=r"caterp|catal|camel",
                emoji=("\U0001F408", "\U0001F431", "\U0001F981", "\U0001F42F", "\U0001F405",
                       "\U0001F406"),
                photos=("skimage:chelsea", "demo:chelsea-the-cat.jpg")),
    VisualClass("dog", ("animals/mammals/dogs", "animals/mammals"),
                keep=r"dog|pupp|lab|beagle|terrier|poodle|wolf",
                emoji=("\U0001F415", "\U0001F436", "\U0001F9AE", "\U0001F429", "\U0001F43A"),
                photos=("demo:two-dogs-at-the-window.jpg",)),
    VisualClass("fish", ("animals/fish",),
                drop=r"crawfish|grenade|amibe|paesaggio|whale|orca|dolphin",
                emoji=("\U0001F41F", "\U0001F420", "\U0001F421", "\U0001F988")),
    VisualClass("flower", ("plants/flowers", "plants"),
                keep=r"flower|rose|tulip|daisy|lily|sunflower|orchid|poppy|blossom|bloom|iris"
                     r"|daffodil|violet|carnation|hibiscus|lotus|dahlia",
                emoji=("\U0001F338", "\U0001F339", "\U0001F33B", "\U0001F337", "\U0001F33C",
                       "\U0001F490", "\U0001F33A"),
                photos=("demo:orange-dahlia.jpg", "demo:dandelion-clocks.jpg")),
    VisualClass("fruit", ("food/fruit",), drop=r"juice|grenade|tote|platter|pie_",
                emoji=("\U0001F34E", "\U0001F34C", "\U0001F34B", "\U0001F34A", "\U0001F347",
                       "\U0001F353", "\U0001F352", "\U0001F351", "\U0001F34D", "\U0001F95D",
                       "\U0001F349", "\U0001F350"),
                photos=("demo:citrus-slices.jpg", "demo:fig-in-red-bowl.jpg")),
    VisualClass("hat", ("people/clothing/hats",),
                emoji=("\U0001F3A9", "\U0001F452", "\U0001F9E2", "\u26D1", "\U0001F393")),
    VisualClass("horse", ("animals/mammals/horses", "animals/mammals"),
                keep=r"horse|pony|cavall|stallion|mare|foal|zebra|unicorn",
                emoji=("\U0001F40E", "\U0001F434", "\U0001F993", "\U0001F984")),
    VisualClass("house", ("buildings/homes", "buildings"),
                keep=r"house|home|hut|cottage|cabin|villa|casa|chalet|bungalow|farm|barn|igloo"
                     r"|shack|building",
                emoji=("\U0001F3E0", "\U0001F3E1", "\U0001F3D8", "\U0001F6D6")),
    VisualClass("insect", ("animals/bugs",),
                drop=r"spider|snail|worm|scorpion|web",
                emoji=("\U0001F41D", "\U0001F41E", "\U0001F98B", "\U0001F41C", "\U0001FAB2",
                       "\U0001F997"),
                photos=("demo:honey-bee-on-aster.jpg",)),
    VisualClass("instrument", ("recreation/music",),
                keep=r"guitar|violin|cello|trumpet|drum|harp|flute|oboe|saxophone|piano_geraint"
                     r"|xylophone|maracas|trombone|horn|dulcimer|derbouk|djamb|tpt",
                emoji=("\U0001F3B8", "\U0001F3B9", "\U0001F3BA", "\U0001F3BB", "\U0001F941",
                       "\U0001F3B7", "\U0001FA97"),
                photos=("demo:living-room-djembe.jpg",)),
    VisualClass("telephone", ("office/telephone", "office", "electronics"),
                keep=r"phone|telefon|mobile|cell",
                drop=r"headphone|microphone",
                emoji=("\U0001F4DE", "\u260E", "\U0001F4F1", "\U0001F4F2")),
)


@dataclass(frozen=True, slots=True)
class Picture:
    """One picture of the set and where it came from."""

    image: Image.Image
    stem: str
    source: str
    licence: str


def download(packages: Sequence[str], into: Path) -> dict[str, str]:
    """Fetch and unpack ``packages`` into ``into`` (no install); return package -> version."""
    debs = into / "debs"
    debs.mkdir()
    subprocess.run(["apt-get", "download", *packages], cwd=debs, check=True,
                   capture_output=True)
    versions: dict[str, str] = {}
    for deb in sorted(debs.glob("*.deb")):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(into / "root")], check=True)
        fields = subprocess.run(["dpkg-deb", "-f", str(deb), "Package", "Version"],
                                check=True, capture_output=True, text=True).stdout
        package, version = (line.split(": ", 1)[1] for line in fields.splitlines())
        versions[package] = version
    return versions


def spread(items: Sequence[Path], count: int) -> list[Path]:
    """Return ``count`` items spread evenly over ``items`` (all of them when there are fewer)."""
    if len(items) <= count:
        return list(items)
    step = len(items) / count
    return [items[int(i * step)] for i in range(count)]


def clipart_files(root: Path, spec: VisualClass) -> list[Path]:
    """The class's openclipart drawings (unpacked under ``root``), filtered by name."""
    files: list[Path] = []
    seen: set[str] = set()  # the package has a few files twice, in two folders
    for folder in spec.folders:
        for path in sorted((root / CLIPART_ROOT / folder).glob("*.png")):
            name = path.stem.lower()
            if spec.keep and not re.search(spec.keep, name):
                continue
            if (spec.drop and re.search(spec.drop, name)) or name in seen:
                continue
            seen.add(name)
            files.append(path)
    return spread(files, MAX_CLIPART)


def clipart(root: Path, spec: VisualClass, version: str) -> Iterator[Picture]:
    """The class's openclipart drawings, filtered by name."""
    for path in clipart_files(root, spec):
        with Image.open(path) as opened:
            image = opened.convert("RGBA")
        relative = path.relative_to(root)
        yield Picture(image, f"clipart-{path.stem}",
                      f"Debian `openclipart-png` {version}: `/{relative}`",
                      LICENCES["openclipart-png"])


def emoji_font(root: Path) -> ImageFont.FreeTypeFont:
    """Noto Color Emoji (unpacked under ``root``) at the one size it has bitmaps for."""
    return ImageFont.truetype(str(root / _EMOJI_FONT), _EMOJI_SIZE)


def draw_emoji(font: ImageFont.FreeTypeFont, character: str) -> Image.Image | None:
    """``character`` drawn in colour on a transparent canvas, cropped to the figure; ``None``
    when the font draws nothing for it."""
    canvas = Image.new("RGBA", (_EMOJI_SIZE * 2, _EMOJI_SIZE * 2), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((8, 8), character, font=font, embedded_color=True)
    box = canvas.getbbox()
    return None if box is None else canvas.crop(box)


def emoji_source(version: str, code: str) -> str:
    """Where the glyph of code points ``code`` (hex, dash-separated) comes from."""
    return (f"Debian `fonts-noto-color-emoji` {version}: `/{_EMOJI_FONT}`, "
            f"glyph U+{code.upper()} drawn at {_EMOJI_SIZE} px")


def emoji(root: Path, spec: VisualClass, version: str) -> Iterator[Picture]:
    """The class's emoji, drawn in colour on a transparent canvas and cropped to the figure."""
    font = emoji_font(root)
    for character in spec.emoji:
        image = draw_emoji(font, character)
        if image is None:
            raise RuntimeError(f"the emoji font draws nothing for U+{ord(character[0]):04X}")
        code = "-".join(f"{ord(c):04x}" for c in character)
        yield Picture(image, f"emoji-u{code}", emoji_source(version, code),
                      LICENCES["fonts-noto-color-emoji"])


def photos(spec: VisualClass) -> Iterator[Picture]:
    """The class's photographs from ``data/demo`` and scikit-image's bundled data."""
    for ref in spec.photos:
        kind, name = ref.split(":", 1)
        if kind == "demo":
            with Image.open(_REPO_ROOT / "data" / "demo" / name) as opened:
                image = opened.convert("RGB")
            yield Picture(image, f"photo-{Path(name).stem}",
                          f"`data/demo/{name}` of this repository",
                          "see `data/demo/SOURCES.md`")
        elif kind == "skimage":
            from importlib.metadata import version

            import skimage.data

            image = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
            yield Picture(image, f"photo-skimage-{name}",
                          f"PyPI `scikit-image` {version('scikit-image')}: "
                          f"`skimage.data.{name}()`",
                          "CC0 (scikit-image's data/README)")
        else:
            raise ValueError(f"unknown photo source {ref!r}")


def reduced(picture: Picture) -> Image.Image:
    """A copy of ``picture``'s image whose longer side is at most :data:`MAX_SIDE` pixels."""
    image = picture.image.copy()
    image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    return image


def save(picture: Picture, folder: Path) -> str:
    """Store ``picture`` reduced to :data:`MAX_SIDE` as WebP; return the file name."""
    name = f"{picture.stem}.webp"
    reduced(picture).save(folder / name, "WEBP", quality=_WEBP_QUALITY, method=6)
    return name


def build(out: Path) -> int:
    """Write the set into ``out`` (which must not exist yet); return the number of pictures."""
    out.mkdir(parents=True)
    rows: list[str] = []
    with tempfile.TemporaryDirectory(prefix="pixmart-devset-") as scratch:
        work = Path(scratch)
        versions = download(sorted(LICENCES), work)
        root = work / "root"
        for spec in CLASSES:
            folder = out / spec.name
            folder.mkdir()
            pictures = [*clipart(root, spec, versions["openclipart-png"]),
                        *emoji(root, spec, versions["fonts-noto-color-emoji"]),
                        *photos(spec)]
            for picture in pictures:
                name = save(picture, folder)
                rows.append(f"| `{spec.name}/{name}` | {picture.source} | {picture.licence} |")
    (out / "SOURCES.md").write_text(_sources_text(rows), encoding="utf-8")
    return len(rows)


def _sources_text(rows: list[str]) -> str:
    header = f"""# Vision development set: where every picture comes from

Made by `python -m tests.support.vision_devset OUT` (see that module): {len(rows)} pictures in
{len(CLASSES)} classes, one folder per class, for `python -m backend.vision.evaluate`.
Every picture was decoded, reduced so that its longer side is at most {MAX_SIDE} px (Lanczos,
never enlarged) and stored as WebP (lossy, quality {_WEBP_QUALITY}, transparency kept).
Emoji were drawn with Pillow at {_EMOJI_SIZE} px onto a transparent canvas and cropped to the
figure. The licence given is the one the package states for the file; openclipart's
public-domain dedication is quoted in `/usr/share/doc/openclipart-png/copyright`, Noto's
Apache-2.0 notice in `/usr/share/doc/fonts-noto-color-emoji/copyright` (the artwork; the font
file itself is under the SIL OFL 1.1).

| File | Package (version) and path inside it | Licence |
| --- | --- | --- |
"""
    return header + "\n".join(rows) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m tests.support.vision_devset")
    parser.add_argument("out", type=Path, help="folder to create")
    args = parser.parse_args(argv)
    count = build(args.out)
    print(f"{count} pictures in {len(CLASSES)} classes written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
