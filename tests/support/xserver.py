"""Provides a headless X server (Xvfb) with real terminal emulators in it, and screenshots.

For tests that check pictures where people see them: a terminal emulator (xterm, kitty) runs a
program on a private Xvfb display, and the test reads the screen back with Pillow. Xvfb and the
terminals are installed from Debian when missing (:func:`tests.support.debian.ensure_program`).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageChops, ImageGrab

from tests.support.debian import ensure_program

START_TIMEOUT = 20.0


@dataclass(frozen=True)
class Display:
    """A running Xvfb display, e.g. ``:7``."""

    name: str

    def screenshot(self) -> Image.Image:
        """The whole screen, as RGB."""
        return ImageGrab.grab(xdisplay=self.name).convert("RGB")

    def steady_screenshot(
        self, ready: Callable[[], bool], timeout: float = START_TIMEOUT
    ) -> Image.Image:
        """The screen once ``ready()`` holds and two screenshots in a row are the same.

        Raises:
            AssertionError: not so within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        previous: Image.Image | None = None
        while time.monotonic() < deadline:
            if ready():
                shot = self.screenshot()
                if previous is not None and ImageChops.difference(shot, previous).getbbox() is None:
                    return shot
                previous = shot
            time.sleep(0.1)
        raise AssertionError(f"the screen of {self.name} did not settle in {timeout} s")


@contextmanager
def xvfb(size: tuple[int, int] = (1024, 768)) -> Iterator[Display]:
    """A private Xvfb display (the server picks a free number) for the duration of the block."""
    program = ensure_program("Xvfb", "xvfb")
    read_end, write_end = os.pipe()
    process = subprocess.Popen(
        [program, "-displayfd", str(write_end), "-screen", "0", f"{size[0]}x{size[1]}x24",
         "-nolisten", "tcp"],
        pass_fds=(write_end,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    try:
        with os.fdopen(read_end) as reply:
            number = reply.readline().strip()  # written once the server accepts connections
        if not number:
            raise RuntimeError("Xvfb did not start")
        yield Display(f":{number}")
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def terminal(
    display: Display, argv: Sequence[str], *, env: dict[str, str], cwd: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` (a terminal emulator and its program) on ``display``; ended after the block."""
    process = subprocess.Popen(
        list(argv),
        env={**env, "DISPLAY": display.name},
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


__all__ = ["Display", "terminal", "xvfb"]
