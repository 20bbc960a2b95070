"""Provides the area where chunked uploads accumulate until they are complete.

Each upload is one file directly in the area's directory, named by a server-generated id::

    root/<id>.part    receiving chunks
    root/<id>.done    complete and hashed, waiting for the caller to validate and store it

Ids come from :meth:`PartialUploads.begin` (``secrets.token_urlsafe``: 32 characters of
``[A-Za-z0-9_-]``) and are checked against exactly that pattern whenever a client sends one
back, so a client never chooses a file name; an id failing the check is treated as unknown.

Chunks must arrive in order: :meth:`PartialUploads.append` accepts a chunk only at the current
end, so a client that lost its connection asks :meth:`PartialUploads.size` and resumes from
there. Chunks are not fsynced one by one (that would make uploads crawl): after a crash a file
may be shorter than what was acknowledged, and ``size`` tells the client where to resume.
:meth:`PartialUploads.finish` fsyncs the complete file.

The expected flow::

    upload_id = uploads.begin()
    uploads.append(upload_id, offset, chunk)        # repeatedly
    finished = uploads.finish(upload_id, announced_sha256)
    info = inspect_image(finished.path)             # on MediaError: uploads.discard(upload_id)
    sha256 = blobs.put_file(finished.path)          # moves the file into the BlobStore

and, periodically, ``uploads.discard`` every id ``uploads.abandoned(...)`` lists.

Files are 0600 in a 0700 directory. Keep the area on the same filesystem as the
:class:`~backend.media.blobstore.BlobStore` so ``put_file`` is a rename, not a copy.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from backend.media.errors import ChecksumMismatch, OffsetMismatch, TooLarge, UnknownUpload
from backend.media.fsutil import DIR_MODE, FILE_MODE, fsync_dir, sha256_of
from backend.media.limits import DEFAULT_MAX_BYTES

_UPLOAD_ID: Final = re.compile(r"[A-Za-z0-9_-]{32}")
_PART: Final = ".part"
_DONE: Final = ".done"
# Windows would otherwise translate line endings in the chunks.
_BINARY: Final = getattr(os, "O_BINARY", 0)


def is_upload_id(value: str) -> bool:
    """Return whether ``value`` has the exact shape of an id :meth:`PartialUploads.begin` makes."""
    return _UPLOAD_ID.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class FinishedUpload:
    """A complete upload, hashed and flushed to disk.

    Attributes:
        upload_id: The upload's id.
        path: Where the complete file is; hand it to ``inspect_image`` and then ``put_file``.
        sha256: Hex SHA-256 of the file.
        size: Size of the file in bytes.
    """

    upload_id: str
    path: Path
    sha256: str
    size: int


class PartialUploads:
    """In-progress chunked uploads (see the module docstring for the protocol and layout).

    All methods are synchronous and safe to call from several threads at once.
    """

    def __init__(self, root: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        """Open the upload area at ``root``, creating the directory if needed.

        Args:
            root: The area's directory, used for nothing else.
            max_bytes: The largest upload accepted; chunks going past it are refused.
        """
        root.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        self._root = root
        self._max_bytes = max_bytes
        # One lock for all uploads: an append is a short write into the page cache, and the
        # lock makes "check the offset, then write" atomic against a concurrent append.
        self._lock = threading.Lock()

    @property
    def root(self) -> Path:
        """Return the area's directory."""
        return self._root

    def begin(self) -> str:
        """Start an empty upload and return its new id."""
        while True:
            upload_id = secrets.token_urlsafe(24)
            try:
                fd = os.open(
                    self._root / (upload_id + _PART),
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL | _BINARY,
                    FILE_MODE,
                )
            except FileExistsError:
                continue  # 192 random bits colliding: astronomically unlikely, but cheap to handle
            os.close(fd)
            return upload_id

    def append(self, upload_id: str, offset: int, chunk: bytes) -> int:
        """Append ``chunk`` to the upload if it starts exactly where the upload ends.

        Args:
            upload_id: The id :meth:`begin` returned.
            offset: Where the client says the chunk starts in the file.
            chunk: The bytes.

        Returns:
            The upload's size after the chunk, i.e. the offset of the next chunk.

        Raises:
            UnknownUpload: No upload in progress has this id.
            OffsetMismatch: ``offset`` is not the upload's current size; ``expected`` says
                where to resume.
            TooLarge: The chunk would take the upload past ``max_bytes``; the upload is
                discarded.
        """
        path = self._path(upload_id, _PART)
        with self._lock:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | _BINARY)
            except FileNotFoundError:
                raise UnknownUpload() from None
            with os.fdopen(fd, "ab") as stream:
                current = os.fstat(fd).st_size
                if offset != current:
                    raise OffsetMismatch(expected=current, got=offset)
                too_large = current + len(chunk) > self._max_bytes
                if not too_large:
                    stream.write(chunk)
            if too_large:
                # Removed after closing: Windows cannot delete an open file.
                path.unlink(missing_ok=True)
                raise TooLarge.file_size(None, self._max_bytes)
            return current + len(chunk)

    def size(self, upload_id: str) -> int:
        """Return how many bytes the upload has received, i.e. where the client resumes.

        Raises:
            UnknownUpload: No upload in progress has this id.
        """
        try:
            return self._path(upload_id, _PART).stat().st_size
        except FileNotFoundError:
            raise UnknownUpload() from None

    def finish(self, upload_id: str, expected_sha256: str | None = None) -> FinishedUpload:
        """Close the upload to further chunks, flush it to disk and hash it.

        Finishing an already finished upload returns the same result again, so a client may
        safely retry the request.

        Args:
            upload_id: The id :meth:`begin` returned.
            expected_sha256: The hex SHA-256 the client announced, if any.

        Returns:
            The complete file's path, hash and size.

        Raises:
            UnknownUpload: No upload has this id.
            ChecksumMismatch: The file does not hash to ``expected_sha256``; the upload is
                discarded.
        """
        part = self._path(upload_id, _PART)
        done = self._path(upload_id, _DONE)
        with self._lock:
            try:
                os.replace(part, done)
            except FileNotFoundError:
                if not done.is_file():
                    raise UnknownUpload() from None
        # Hash outside the lock: it reads the whole file and nothing can append to .done.
        try:
            with open(done, "r+b") as stream:
                sha256 = sha256_of(stream)
                size = os.fstat(stream.fileno()).st_size
                os.fsync(stream.fileno())
        except FileNotFoundError:
            raise UnknownUpload() from None  # discarded meanwhile
        fsync_dir(self._root)
        if expected_sha256 is not None and expected_sha256.lower() != sha256:
            done.unlink(missing_ok=True)
            raise ChecksumMismatch()
        return FinishedUpload(upload_id=upload_id, path=done, sha256=sha256, size=size)

    def discard(self, upload_id: str) -> bool:
        """Delete the upload, finished or not; return whether there was anything to delete."""
        if not is_upload_id(upload_id):
            return False
        removed = False
        # Under the lock so that no append has the file open (Windows cannot delete it then).
        with self._lock:
            for suffix in (_PART, _DONE):
                try:
                    (self._root / (upload_id + suffix)).unlink()
                except FileNotFoundError:
                    continue
                removed = True
        return removed

    def abandoned(self, older_than_seconds: float) -> list[str]:
        """Return the ids of uploads, finished or not, untouched for ``older_than_seconds``.

        Every append refreshes an upload's modification time, so a slow but live upload is
        not listed. The caller discards the listed ids.
        """
        cutoff = time.time() - older_than_seconds
        found: set[str] = set()
        with os.scandir(self._root) as entries:
            for entry in entries:
                stem, dot, suffix = entry.name.rpartition(".")
                if not dot or "." + suffix not in (_PART, _DONE) or not is_upload_id(stem):
                    continue
                try:
                    modified = entry.stat(follow_symlinks=False).st_mtime
                except FileNotFoundError:
                    continue  # finished, discarded or moved into the store meanwhile
                if modified <= cutoff:
                    found.add(stem)
        return sorted(found)

    def _path(self, upload_id: str, suffix: str) -> Path:
        """Return the file of ``upload_id``, refusing ids :meth:`begin` cannot have made."""
        if not is_upload_id(upload_id):
            raise UnknownUpload()
        return self._root / (upload_id + suffix)
