"""Provides :class:`StartupError` and the quick checks that let a doomed start fail at once.

A server that cannot serve should say so within a second or two, in one line that names the
cause and the fix, exit non-zero and let go of its data dir. Everything slow (the image model)
happens after the server listens, so these checks only look at what can be known at once.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from pixmart_data import data_file

#: Files the server reads at run time from the ``pixmart_data`` package.
SHIPPED_FILES: tuple[tuple[str, ...], ...] = (
    ("starter_tags.txt",),
    ("imagenet_labels.txt",),
    ("imagenet_hypernyms.txt",),
    ("demo", "catalogue.json"),
)
#: The image model is calibrated on the demo photographs; fewer means a damaged install.
MIN_DEMO_PICTURES = 30

_REINSTALL = "reinstall pixmart: pip install --force-reinstall 'pixmart[server]'"


class StartupError(RuntimeError):
    """The server cannot start; ``str()`` is one line naming the cause and the fix."""

    def __init__(self, cause: str, fix: str) -> None:
        super().__init__(f"{cause}; {fix}")
        self.cause = cause
        self.fix = fix


def check_shipped_files() -> None:
    """Raise :class:`StartupError` if a file the server reads is missing from the install."""
    for parts in SHIPPED_FILES:
        path = data_file(*parts)
        if not path.is_file():
            raise StartupError(f"the installation lacks the data file {path}", _REINSTALL)
    pictures = data_file("demo")
    if len(list(pictures.glob("*.jpg"))) < MIN_DEMO_PICTURES:
        raise StartupError(
            f"the installation lacks the model's calibration pictures in {pictures}", _REINSTALL
        )


def check_writable_dir(path: Path, what: str, fix: str) -> None:
    """Raise :class:`StartupError` unless ``path`` is (or can become) a folder we can write.

    Tries a real write: permission bits say nothing for root or on a read-only mount.
    """
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise StartupError(f"cannot write the {what} {path}: {reason}", fix) from None
    if not os.access(path, os.R_OK | os.X_OK):
        raise StartupError(f"cannot read the {what} {path}", fix)
