"""Provides the durable file operations the blob store and the upload area share.

Durability recipe for a new file: write it under a temporary name in the directory it will
live in, flush and fsync it, rename it over the final name (atomic on POSIX and Windows), then
fsync the directory so the rename itself survives a power cut. Readers therefore see either no
file or the complete file, never a partial one.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, BinaryIO, Final

#: Leftover temporary files are recognised by this prefix; no stored name starts with a dot.
TEMP_PREFIX: Final = ".tmp-"

#: Files hold customers' pictures (originals may carry GPS positions) and are only ever read by
#: the server process, so nobody else gets access.
FILE_MODE: Final = 0o600
DIR_MODE: Final = 0o700

_CHUNK: Final = 1024 * 1024


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries (new, renamed or removed names) to disk.

    A no-op where directories cannot be opened (Windows), which persists renames without it.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        # Some filesystems (and all of Windows) refuse fsync on a directory; nothing to do.
        pass
    finally:
        os.close(fd)


def make_dirs(path: Path, stop: Path) -> None:
    """Create ``path`` and missing parents below ``stop``, fsyncing each new directory's parent.

    Args:
        path: The directory that must exist.
        stop: An existing ancestor of ``path``; nothing above it is touched.
    """
    missing: list[Path] = []
    current = path
    while current != stop and not current.is_dir():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue  # another thread created it first
        fsync_dir(directory.parent)


@contextmanager
def atomic_writer(target: Path) -> Iterator[BinaryIO]:
    """Yield a stream whose content replaces ``target`` durably and atomically on success.

    If the ``with`` body raises, the temporary file is removed and ``target`` is untouched.
    The file is created with mode :data:`FILE_MODE` (``mkstemp`` guarantees 0600).

    Args:
        target: The final path; its directory must exist. An existing file is replaced.
    """
    fd, temp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=target.parent)
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def copy_stream(source: IO[bytes], target: IO[bytes]) -> None:
    """Copy the rest of ``source`` into ``target`` in bounded memory."""
    while chunk := source.read(_CHUNK):
        target.write(chunk)


def sha256_of(stream: IO[bytes]) -> str:
    """Return the hex SHA-256 of the rest of ``stream``, read in bounded memory."""
    digest = hashlib.sha256()
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()
