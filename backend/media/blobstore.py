"""Provides content-addressed storage of pictures: every file is named by its own SHA-256.

Layout on disk, for a blob whose hex SHA-256 is ``abcdef...``::

    root/ab/cd/abcdef...        (64 lowercase hex digits, no extension)
    root/ab/cd/.tmp-XXXXXXXX    (a write in progress, or left over by a crash)

The two leading byte pairs fan the blobs out over 65,536 directories so none grows huge.
Originals and derivatives are stored the same way: each is a blob named by the hash of its own
bytes, and the catalogue row records which blob is the original, the sanitised original, the
preview and the thumbnail, with their MIME types. Hence:

* identical bytes are stored once, so :meth:`BlobStore.delete` is for blobs no row references
  any more (the caller checks; the store keeps no reference counts);
* a blob never changes once written: its name proves its content (:meth:`BlobStore.verify`)
  and clients may cache it forever;
* the start-up sweep is: :meth:`BlobStore.sweep_temp_files`, then compare
  :meth:`BlobStore.iter_all` with the hashes the catalogue references and delete the rest. Run
  it before serving: while uploads are in flight a blob exists briefly before its row does.

Files are created 0600 and directories 0700: the pictures belong to customers (originals may
carry GPS positions) and only the server process ever reads them.

All methods are synchronous and safe to call from several threads at once.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, Final

from backend.media.fsutil import (
    DIR_MODE,
    FILE_MODE,
    TEMP_PREFIX,
    atomic_writer,
    copy_stream,
    fsync_dir,
    make_dirs,
    sha256_of,
)

_SHA256: Final = re.compile(r"[0-9a-f]{64}")
_FAN_OUT: Final = re.compile(r"[0-9a-f]{2}")
#: Store-level documents (the keyring): letters, digits and dots, starting with a letter.
_META_NAME: Final = re.compile(r"[a-z][a-z0-9.]{0,40}")


def _modified(entry: os.DirEntry[str]) -> float:
    """Return the entry's modification time, or +infinity if it vanished meanwhile."""
    try:
        return entry.stat(follow_symlinks=False).st_mtime
    except FileNotFoundError:
        return float("inf")


def _meta_file(meta_name: str) -> str:
    """The file of a store-level document: a plain name, never a blob's or a fan-out folder's."""
    if not _META_NAME.fullmatch(meta_name):
        raise ValueError(f"not a store document name: {meta_name!r}")
    return meta_name


def is_sha256(value: str) -> bool:
    """Return whether ``value`` is a blob name: 64 lowercase hex digits."""
    return _SHA256.fullmatch(value) is not None


class BlobStore:
    """Content-addressed, write-once file storage (see the module docstring for the layout)."""

    def __init__(self, root: Path) -> None:
        """Open the store at ``root``, creating the directory if needed.

        Args:
            root: The store's directory. Keep it on the same filesystem as the upload area so
                :meth:`put_file` can move files in instead of copying them.
        """
        root.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        self._root = root

    @property
    def root(self) -> Path:
        """Return the store's directory."""
        return self._root

    def path_for(self, sha256: str) -> Path:
        """Return where the blob named ``sha256`` lives (whether or not it exists).

        Raises:
            ValueError: ``sha256`` is not 64 lowercase hex digits. Validate names coming from
                clients with :func:`is_sha256` first.
        """
        if not is_sha256(sha256):
            raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
        return self._root / sha256[0:2] / sha256[2:4] / sha256

    def put(self, data: bytes) -> str:
        """Store ``data`` and return its SHA-256; storing the same bytes again does nothing.

        The blob appears atomically and durably (see :mod:`backend.media.fsutil`).
        """
        sha256 = hashlib.sha256(data).hexdigest()
        target = self.path_for(sha256)
        if target.exists():
            return sha256
        make_dirs(target.parent, self._root)
        with atomic_writer(target) as stream:
            stream.write(data)
        return sha256

    def put_file(self, path: Path, expected_sha256: str | None = None) -> str:
        """Move the file at ``path`` into the store and return its SHA-256.

        The file is consumed: renamed into place when on the same filesystem, copied and then
        removed otherwise, and simply removed when the store already has the same bytes.

        Args:
            path: A complete file the server wrote itself, e.g. a finished upload.
            expected_sha256: The file's SHA-256 when the caller has just hashed it and flushed
                it to disk (a finished upload): it is then neither read to hash it again nor
                flushed again.
        """
        if expected_sha256 is not None:
            sha256 = expected_sha256  # path_for below refuses anything but a hex digest
        else:
            # r+b rather than rb: Windows can only fsync a handle opened for writing.
            with open(path, "r+b") as stream:
                sha256 = sha256_of(stream)
                os.fsync(stream.fileno())
        if self.path_for(sha256).exists():
            path.unlink()
            return sha256
        self.put_named_file(sha256, path)
        return sha256

    def put_named(self, name: str, data: bytes) -> None:
        """Store ``data`` as the blob ``name`` (atomically, durably), whatever it hashes to.

        For stores whose names are not their content's hash (sealed pictures). An existing
        blob of that name is replaced.
        """
        target = self.path_for(name)
        make_dirs(target.parent, self._root)
        with atomic_writer(target) as stream:
            stream.write(data)

    def put_named_file(self, name: str, path: Path) -> None:
        """Move the complete, flushed file at ``path`` in as the blob ``name``."""
        target = self.path_for(name)
        make_dirs(target.parent, self._root)
        try:
            os.chmod(path, FILE_MODE)
            os.replace(path, target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            with open(path, "rb") as source, atomic_writer(target) as stream:
                copy_stream(source, stream)
            path.unlink()
            return
        fsync_dir(target.parent)

    def rewrite_head(self, name: str, head: bytes) -> None:
        """Overwrite the first ``len(head)`` bytes of blob ``name`` in place, durably.

        One small positioned write: a process killed during it leaves the old or the new
        bytes, never a mix (the write is a single syscall well inside one page).

        Raises:
            FileNotFoundError: The blob is not stored.
        """
        fd = os.open(self.path_for(name), os.O_WRONLY)
        try:
            if os.pwrite(fd, head, 0) != len(head):
                raise OSError(errno.EIO, f"short write rewriting the head of {name}")
            os.fsync(fd)
        finally:
            os.close(fd)

    def read_meta(self, meta_name: str) -> bytes | None:
        """The store-level file ``meta_name`` beside the fan-out folders, or ``None``."""
        try:
            return (self._root / _meta_file(meta_name)).read_bytes()
        except FileNotFoundError:
            return None

    def write_meta(self, meta_name: str, data: bytes) -> None:
        """Replace the store-level file ``meta_name`` atomically and durably."""
        with atomic_writer(self._root / _meta_file(meta_name)) as stream:
            stream.write(data)

    def exists(self, sha256: str) -> bool:
        """Return whether the blob is stored."""
        return self.path_for(sha256).is_file()

    def size(self, sha256: str) -> int:
        """Return the blob's size in bytes.

        Raises:
            FileNotFoundError: The blob is not stored.
        """
        return self.path_for(sha256).stat().st_size

    def read(self, sha256: str) -> bytes:
        """Return the blob's bytes.

        Raises:
            FileNotFoundError: The blob is not stored.
        """
        return self.path_for(sha256).read_bytes()

    def open(self, sha256: str) -> BinaryIO:
        """Return the blob opened for reading in binary mode; the caller closes it.

        Raises:
            FileNotFoundError: The blob is not stored.
        """
        return open(self.path_for(sha256), "rb")

    def read_range_into(self, name: str, offset: int, buffer: memoryview) -> tuple[int, int]:
        """Fill ``buffer`` with blob ``name``'s bytes from ``offset``; return the blob's size
        and how many bytes were read (fewer than asked only at its end).

        Raises:
            FileNotFoundError: The blob is not stored.
        """
        with open(self.path_for(name), "rb", buffering=0) as stream:
            total = os.fstat(stream.fileno()).st_size
            want = max(0, min(len(buffer), total - offset))
            stream.seek(offset)
            filled = 0
            while filled < want:
                got = stream.readinto(buffer[filled:want])
                if not got:
                    break  # shortened meanwhile: what was read is what there is
                filled += got
        return total, filled

    def read_through(
        self,
        name: str,
        offset: int,
        length: int,
        buffer: memoryview,
        each: Callable[[memoryview], object],
    ) -> int:
        """Read blob ``name``'s ``length`` bytes from ``offset`` a bufferful at a time into
        ``buffer``, handing each bufferful to ``each`` before the next is read; return how many
        were read (fewer than asked only at its end).

        Every bufferful but the last fills ``buffer`` whole.

        Raises:
            FileNotFoundError: The blob is not stored.
        """
        done = 0
        with open(self.path_for(name), "rb", buffering=0) as stream:
            stream.seek(offset)
            while done < length:
                want = min(len(buffer), length - done)
                filled = 0
                while filled < want:
                    got = stream.readinto(buffer[filled:want])
                    if not got:
                        break
                    filled += got
                if filled:
                    each(buffer[:filled])
                done += filled
                if filled < want:
                    break
        return done

    def delete(self, sha256: str) -> bool:
        """Remove the blob; return whether it existed.

        Only for blobs no catalogue row references: identical content is stored once.
        """
        try:
            self.path_for(sha256).unlink()
        except FileNotFoundError:
            return False
        return True

    def verify(self, sha256: str) -> bool:
        """Return whether the blob's content still hashes to its name (detects disk rot).

        Raises:
            FileNotFoundError: The blob is not stored.
        """
        with self.open(sha256) as stream:
            return sha256_of(stream) == sha256

    def iter_all(self) -> Iterator[str]:
        """Yield the name of every stored blob, in no particular order.

        Temporary files and anything else that is not a blob in its right place are skipped.
        """
        for first in self._subdirectories(self._root):
            for second in self._subdirectories(first):
                prefix = first.name + second.name
                with os.scandir(second) as entries:
                    for entry in entries:
                        if (
                            is_sha256(entry.name)
                            and entry.name.startswith(prefix)
                            and entry.is_file(follow_symlinks=False)
                        ):
                            yield entry.name

    def sweep_temp_files(self, older_than_seconds: float = 3600.0) -> int:
        """Remove temporary files left by interrupted writes; return how many were removed.

        Args:
            older_than_seconds: Only files untouched for this long are removed, so a write in
                progress in another thread survives. At start-up, before any writes, 0 is safe.
        """
        cutoff = time.time() - older_than_seconds
        removed = 0
        for first in self._subdirectories(self._root):
            for second in self._subdirectories(first):
                with os.scandir(second) as entries:
                    stale = [
                        Path(entry.path)
                        for entry in entries
                        if entry.name.startswith(TEMP_PREFIX) and _modified(entry) <= cutoff
                    ]
                for path in stale:
                    try:
                        path.unlink()
                    except FileNotFoundError:
                        continue  # its writer finished or failed meanwhile
                    removed += 1
        return removed

    @staticmethod
    def _subdirectories(directory: Path) -> Iterator[Path]:
        """Yield the fan-out subdirectories (two hex digits) of ``directory``."""
        with os.scandir(directory) as entries:
            names = [
                entry.name
                for entry in entries
                if _FAN_OUT.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False)
            ]
        for name in names:
            yield directory / name
