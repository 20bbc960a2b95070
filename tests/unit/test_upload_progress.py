"""Tests for the progress bar of ``pixmart upload`` (and so of ``pixmart-server import``)."""

from __future__ import annotations

import io
from pathlib import Path

from tui.commands.catalogue import ProgressBar


class Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_pictures_per_second_and_time_left() -> None:
    clock = Clock()
    bar = ProgressBar(Terminal(), files=200, total_bytes=200_000_000, clock=clock)
    for n in range(50):
        bar.update(Path(f"{n}.jpg"), 1_000_000)
        bar.file_done()
    clock.now += 10.0

    line = bar.line()

    assert "50/200 files" in line
    assert "5.0 pictures/s" in line
    assert "5.0 MB/s" in line
    assert "ETA 0:30" in line  # 150 files left at 5 a second
    assert line.startswith("[#######.")  # a quarter of the bytes


def test_time_left_comes_from_bytes_until_a_file_is_done() -> None:
    clock = Clock()
    bar = ProgressBar(Terminal(), files=2, total_bytes=4_000_000, clock=clock)
    assert "ETA --:--" in bar.line()

    bar.update(Path("a.jpg"), 1_000_000)
    clock.now += 2.0

    assert "ETA 0:06" in bar.line()  # 3 MB left at 0.5 MB/s


def test_long_runs_show_hours() -> None:
    clock = Clock()
    bar = ProgressBar(Terminal(), files=10_000, total_bytes=1, clock=clock)
    bar.file_done()
    clock.now += 1.0

    assert "ETA 2:46:39" in bar.line()  # 9,999 files at one a second


def test_the_bar_is_drawn_on_a_terminal_only() -> None:
    terminal, pipe = Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        bar = ProgressBar(stream, files=1, total_bytes=10, clock=Clock())
        bar.update(Path("a.jpg"), 10)
        bar.file_done()
        bar.close()

    assert "pictures/s" in terminal.getvalue()
    assert pipe.getvalue() == ""
