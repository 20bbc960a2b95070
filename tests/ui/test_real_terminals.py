"""Pictures checked where people see them: a real terminal emulator under Xvfb, read back.

A card-sized picture (:mod:`tests.support.picture_app`) is shown in the terminal, the screen is
captured, and the picture's region is compared with the picture itself: placeholder boxes, stray
pixels or a picture drawn elsewhere make the comparison fail. Xvfb and the terminals are
installed from Debian when missing.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageStat

from tests.support.debian import ensure_program
from tests.support.xserver import Display, terminal, xvfb

ROOT = Path(__file__).resolve().parents[2]
#: Mean difference per channel (0-255) allowed between the picture and what the terminal shows:
#: half-cells average each half cell's colours, so a smooth picture comes back close.
TOLERANCE = 24


def panorama() -> Image.Image:
    """A wide picture (5:1, like the demo shop's panoramas) with a smooth two-way gradient."""
    width, height = 400, 80
    picture = Image.new("RGB", (width, height))
    picture.putdata(
        [
            (40 + 180 * x // width, 60 + 150 * y // height, 200)
            for y in range(height)
            for x in range(width)
        ]
    )
    return picture


@pytest.fixture(scope="module")
def display() -> Iterator[Display]:
    with xvfb() as running:
        yield running


def _child_env() -> dict[str, str]:
    """This environment, minus what would make the picture app pick its renderer otherwise."""
    env = {k: v for k, v in os.environ.items() if k not in {"TMUX", "PIXMART_GRAPHICS", "STY"}}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _shown_picture(screen: Image.Image) -> Image.Image:
    """The part of ``screen`` that is not black (the app draws nothing else)."""
    box = screen.convert("L").point(lambda value: 255 if value > 16 else 0).getbbox()
    assert box is not None, "nothing was drawn"
    return screen.crop(box)


def _difference(shown: Image.Image, picture: Image.Image) -> float:
    expected = picture.resize(shown.size, Image.Resampling.BILINEAR)
    return max(ImageStat.Stat(ImageChops.difference(shown, expected)).mean)


def test_kitty_026_shows_pictures_in_half_cells(display: Display, tmp_path: Path) -> None:
    """kitty 0.26 answers the graphics query but draws Unicode placeholders as boxes: pixmart
    asks its version and falls back to half-cells, which show the picture."""
    kitty = ensure_program("kitty")
    source = tmp_path / "panorama.png"
    panorama().save(source)
    report = tmp_path / "renderer.txt"
    argv = [
        kitty, "--config", "NONE",
        "-o", "background=#000000", "-o", "font_size=10", "-o", "cursor_blink_interval=0",
        "-o", "initial_window_width=80c", "-o", "initial_window_height=24c",
        sys.executable, "-m", "tests.support.picture_app", str(source), str(report),
    ]  # fmt: skip
    with terminal(display, argv, env=_child_env(), cwd=ROOT):
        screen = display.steady_screenshot(report.exists)
    assert report.read_text() == "HalfcellImage"
    shown = _shown_picture(screen)
    width, height = shown.size
    assert 3.5 < width / height < 6.5, f"the picture is drawn {width}x{height}"
    assert _difference(shown, panorama()) < TOLERANCE
