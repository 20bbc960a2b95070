"""Provides the location of the files the product ships in the repository's ``data/`` folder."""

from __future__ import annotations

from pathlib import Path

#: The ``data/`` folder at the top of the project (demo catalogue, ImageNet labels, starter tags).
DATA_DIR: Path = Path(__file__).resolve().parent.parent / "data"


def data_file(*parts: str) -> Path:
    """Return the path of a shipped data file, e.g. ``data_file("imagenet_labels.txt")``."""
    return DATA_DIR.joinpath(*parts)
