"""Tests that the committed vision development set is what its SOURCES.md and the issue promise."""

from __future__ import annotations

import re
from pathlib import Path

from PIL import Image

from backend.media.validate import inspect_image
from backend.vision.evaluate import find_pictures
from tests.support.vision_devset import CLASSES, MAX_SIDE, spread

DEVSET = Path(__file__).resolve().parents[1] / "data" / "vision-devset"


def test_every_picture_is_listed_with_a_licence_and_nothing_else_is() -> None:
    listed = dict(re.findall(r"^\| `([^`]+)` \| .+ \| (.+) \|$",
                             (DEVSET / "SOURCES.md").read_text(encoding="utf-8"), re.MULTILINE))
    present = {path.relative_to(DEVSET).as_posix() for path, _ in find_pictures(DEVSET)}
    assert set(listed) == present
    assert all(licence.strip() for licence in listed.values())


def test_the_set_is_large_varied_and_small_on_disk() -> None:
    pictures = find_pictures(DEVSET)
    classes = {label for _, label in pictures}
    assert len(pictures) >= 300 and len(classes) >= 12
    assert sorted(p.name for p in DEVSET.iterdir() if p.is_dir()) == sorted(
        spec.name for spec in CLASSES)
    assert sum(path.stat().st_size for path, _ in pictures) < 5_000_000
    transparent = photos = 0
    for path, _ in pictures:
        info = inspect_image(path)  # an upload of it would be accepted
        assert max(info.width, info.height) <= MAX_SIDE
        with Image.open(path) as image:
            if image.mode == "RGBA":
                lowest, _ = image.getchannel("A").getextrema()
                transparent += isinstance(lowest, int) and lowest < 255
        photos += path.name.startswith("photo-")
    assert transparent >= 100 and photos >= 5


def test_spread_takes_evenly_from_the_whole_list() -> None:
    items = [Path(str(i)) for i in range(10)]
    assert spread(items, 20) == items
    assert [int(p.name) for p in spread(items, 5)] == [0, 2, 4, 6, 8]
