"""Provides :func:`read_pinned`: the bytes of a file shipped with the pipeline, checked by digest.

The mean descriptor (:mod:`backend.vision.centring`) and the whitening map
(:mod:`backend.vision.whitening`) shape every embedding: a file that is not the one a pipeline
revision was measured with must stop the embedder, never change its output quietly.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def read_pinned(source: Path, sha256: str, name: str, error: type[Exception]) -> bytes:
    """Return the content of ``source`` if its SHA-256 is ``sha256``.

    Raises:
        error: (with ``name`` in its message) The file cannot be read or is not the pinned one.
    """
    try:
        content = source.read_bytes()
    except OSError as exc:
        raise error(f"the {name} {source} cannot be read: {exc}") from None
    if hashlib.sha256(content).hexdigest() != sha256:
        raise error(f"the {name} {source} is not the pinned one")
    return content
