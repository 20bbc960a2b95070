"""Provides the files pixmart ships: demo catalogue, ImageNet class names and starter tags.

Installed as the ``pixmart_data`` package (see ``[tool.setuptools.package-dir]`` in
pyproject.toml), so ``importlib.resources.files("pixmart_data")`` finds these files in a wheel,
an sdist or an editable install alike, whatever the current folder.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ["data_file"]


def data_file(*parts: str) -> Path:
    """Return the path of a shipped file, e.g. ``data_file("demo", "catalogue.json")``.

    pip unpacks wheels, sdists and editable installs as plain files, so the path is real.
    """
    return Path(str(files(__name__).joinpath(*parts)))
