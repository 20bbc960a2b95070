"""Pictures checked where people see them: a real terminal emulator under Xvfb, read back.

A card-sized picture (:mod:`tests.support.picture_app`) is shown in the terminal, the screen is
captured, and the picture's region is compared with the picture itself: placeholder boxes, stray
pixels or a picture drawn elsewhere make the comparison fail. Xvfb and the terminals are
installed from Debian when missing. Each test takes a few seconds, most of it the terminal and
the Python app starting; the screen is read once it has settled, with no fixed waits.
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


def _show(
    display: Display, terminal_argv: list[str], tmp_path: Path
) -> tuple[str, Image.Image]:
    """Show :func:`panorama` in the terminal; the renderer it used and the picture as shown."""
    source = tmp_path / "panorama.png"
    panorama().save(source)
    report = tmp_path / "renderer.txt"
    argv = [
        *terminal_argv,
        sys.executable, "-m", "tests.support.picture_app", str(source), str(report),
    ]  # fmt: skip
    with terminal(display, argv, env=_child_env(), cwd=ROOT):
        screen = display.steady_screenshot(report.exists)
    return report.read_text(), _shown_picture(screen)


def _assert_looks_like_the_panorama(shown: Image.Image) -> None:
    width, height = shown.size
    assert 3.5 < width / height < 6.5, f"the picture is drawn {width}x{height}"
    assert _difference(shown, panorama()) < TOLERANCE


def test_xterm_vt340_shows_sixel_pictures_without_stray_pixels(
    display: Display, tmp_path: Path
) -> None:
    """xterm as a VT340 draws Sixel graphics; a band in which a colour register is defined came
    out in the wrong colours, so pictures had stray pixels along their top edge."""
    xterm = ensure_program("xterm")
    renderer, shown = _show(
        display,
        [
            xterm, "-ti", "vt340", "-bg", "black", "-fg", "white", "-b", "0", "-bw", "0",
            "+sb", "-geometry", "80x24+0+0", "-fa", "Monospace", "-fs", "10", "-e",
        ],
        tmp_path,
    )  # fmt: skip
    assert renderer == "SixelPicture"
    _assert_looks_like_the_panorama(shown)
    top_row = shown.crop((0, 0, shown.width, 1))
    expected = panorama().resize(shown.size, Image.Resampling.BILINEAR).crop((0, 0, shown.width, 1))
    assert max(ImageStat.Stat(ImageChops.difference(top_row, expected)).mean) < TOLERANCE


def test_kitty_026_shows_pictures_in_half_cells(display: Display, tmp_path: Path) -> None:
    """kitty 0.26 answers the graphics query but draws Unicode placeholders as boxes: pixmart
    asks its version and falls back to half-cells, which show the picture."""
    kitty = ensure_program("kitty")
    renderer, shown = _show(
        display,
        [
            kitty, "--config", "NONE",
            "-o", "background=#000000", "-o", "font_size=10", "-o", "cursor_blink_interval=0",
            "-o", "initial_window_width=80c", "-o", "initial_window_height=24c",
        ],
        tmp_path,
    )  # fmt: skip
    assert renderer == "HalfcellImage"
    _assert_looks_like_the_panorama(shown)
