"""Provides the area where chunked uploads accumulate until they are complete.

Each upload is one file directly in the area's directory, named by a server-generated id::

    root/<id>.part    receiving chunks
    root/<id>.closed  (sealed uploads only) complete, taking no more chunks, being opened
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

With a sealer (pictures encrypted at rest), a ``.part`` file holds the chunks sealed as records
(:mod:`backend.atrest.records`) under a data key of its own, and ``finish`` opens them into the
``.done`` file, which lives only until the picture is validated and sealed into the store. It
first renames the ``.part`` to ``.closed`` (under the lock: no chunk comes after that) and opens
it outside the lock, hashing as it writes, so other uploads' chunks do not wait for the
decryption and its fsync; a ``.closed`` file a kill left is opened by the next ``finish``.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from backend.atrest.envelope import HEADER_BYTES, SealBroken, Sealer
from backend.atrest.keys import WrongKey
from backend.atrest.records import (
    new_file_header,
    open_cipher,
    open_records,
    scan,
    seal_record,
    upload_context,
)
from backend.media.errors import ChecksumMismatch, OffsetMismatch, TooLarge, UnknownUpload
from backend.media.fsutil import (
    DIR_MODE,
    FILE_MODE,
    TEMP_PREFIX,
    atomic_writer,
    fsync_dir,
    sha256_of,
)
from backend.media.limits import DEFAULT_MAX_BYTES

_UPLOAD_ID: Final = re.compile(r"[A-Za-z0-9_-]{32}")
_PART: Final = ".part"
_CLOSED: Final = ".closed"
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

    def __init__(
        self, root: Path, max_bytes: int = DEFAULT_MAX_BYTES, sealer: Sealer | None = None
    ) -> None:
        """Open the upload area at ``root``, creating the directory if needed.

        Args:
            root: The area's directory, used for nothing else.
            max_bytes: The largest upload accepted; chunks going past it are refused.
            sealer: Seals the chunks on disk; ``None`` keeps them as they came.
        """
        self._sealer = sealer
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
            try:
                if self._sealer is not None:
                    os.write(fd, new_file_header(self._sealer, upload_context(upload_id)))
            finally:
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
            if self._sealer is not None:
                os.close(fd)
                return self._append_sealed(path, upload_id, offset, chunk)
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

    def _append_sealed(self, path: Path, upload_id: str, offset: int, chunk: bytes) -> int:
        """:meth:`append` of a sealed upload (the lock is held)."""
        assert self._sealer is not None
        context = upload_context(upload_id)
        with open(path, "r+b") as stream:
            cipher = self._cipher(stream, context)
            extent = scan(stream)
            if offset != extent.plaintext:
                raise OffsetMismatch(expected=extent.plaintext, got=offset)
            too_large = extent.plaintext + len(chunk) > self._max_bytes
            if not too_large:
                # Over a torn tail a crash may have left: it was never acknowledged.
                stream.seek(extent.end)
                stream.truncate()
                stream.write(seal_record(cipher, context, offset, chunk))
        if too_large:
            path.unlink(missing_ok=True)
            raise TooLarge.file_size(None, self._max_bytes)
        return offset + len(chunk)

    def _cipher(self, stream: BinaryIO, context: bytes) -> AESGCM:
        """The data key of a sealed upload's open file.

        Raises:
            UnknownUpload: the file is no sealed upload of this server's keys (e.g. begun before
                encryption, or under a key it no longer holds): the client begins again.
        """
        assert self._sealer is not None
        stream.seek(0)
        try:
            return open_cipher(self._sealer, stream.read(HEADER_BYTES), context)
        except (SealBroken, WrongKey):
            raise UnknownUpload() from None

    def size(self, upload_id: str) -> int:
        """Return how many bytes the upload has received, i.e. where the client resumes.

        Raises:
            UnknownUpload: No upload in progress has this id.
        """
        path = self._path(upload_id, _PART)
        try:
            if self._sealer is None:
                return path.stat().st_size
            with open(path, "rb") as stream:
                self._cipher(stream, upload_context(upload_id))
                return scan(stream).plaintext
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
        if self._sealer is not None:
            opened = self._finish_sealed(upload_id, part, done)
            if opened is not None:
                return self._checked(upload_id, done, *opened, expected_sha256)
        else:
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
        return self._checked(upload_id, done, sha256, size, expected_sha256)

    def _checked(
        self, upload_id: str, done: Path, sha256: str, size: int, expected_sha256: str | None
    ) -> FinishedUpload:
        """The finished upload, or :class:`ChecksumMismatch` (and it is discarded)."""
        if expected_sha256 is not None and expected_sha256.lower() != sha256:
            done.unlink(missing_ok=True)
            raise ChecksumMismatch()
        return FinishedUpload(upload_id=upload_id, path=done, sha256=sha256, size=size)

    def _finish_sealed(self, upload_id: str, part: Path, done: Path) -> tuple[str, int] | None:
        """Close a sealed upload to chunks and open it into ``done``.

        Returns:
            Its hash and size, or ``None`` when it was opened before (a repeated finish):
            ``done`` is there to be hashed.

        Raises:
            UnknownUpload: no such upload, or a record does not open (it is discarded).
        """
        closed = self._path(upload_id, _CLOSED)
        context = upload_context(upload_id)
        with self._lock:
            try:
                os.replace(part, closed)
            except FileNotFoundError:
                pass  # finished before, or a finish was killed after closing it
            try:
                stream = open(closed, "rb")
            except FileNotFoundError:
                if not done.is_file():
                    raise UnknownUpload() from None
                return None
        try:
            with stream:
                # The data key under the lock: a key rotation rewrites the header (only).
                with self._lock:
                    cipher = self._cipher(stream, context)
                opened = self._open_into(stream, cipher, context, done)
        except SealBroken:
            closed.unlink(missing_ok=True)
            raise UnknownUpload() from None
        # Removed after closing it (Windows cannot delete an open file); a repeated finish
        # racing this one may have removed it already.
        closed.unlink(missing_ok=True)
        return opened

    @staticmethod
    def _open_into(stream: BinaryIO, cipher: AESGCM, context: bytes, done: Path) -> tuple[str, int]:
        """Write the chunks of the sealed upload ``stream`` reads into ``done`` (atomically,
        durably, hashing them on the way); return their hash and size.

        Raises:
            SealBroken: a record does not open.
        """
        extent = scan(stream)
        digest = hashlib.sha256()
        size = 0
        with atomic_writer(done) as out:
            for chunk in open_records(stream, cipher, context, extent.end):
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
        return digest.hexdigest(), size

    def rewrap(self) -> int:
        """Re-wrap the data key of every sealed upload in progress under the sealer's current
        master key (a key rotation); return how many changed. Each is one in-place write."""
        if self._sealer is None:
            return 0
        changed = 0
        # Closed ones too: a finish killed before opening one opens it later.
        paths = [*self._root.glob("*" + _PART), *self._root.glob("*" + _CLOSED)]
        for path in sorted(paths):
            upload_id = path.name.removesuffix(path.suffix)
            if not is_upload_id(upload_id):
                continue
            with self._lock:
                try:
                    fd = os.open(path, os.O_RDWR | _BINARY)
                except FileNotFoundError:
                    continue  # finished or discarded meanwhile
                try:
                    head = os.pread(fd, HEADER_BYTES, 0)
                    try:
                        new = self._sealer.rewrap_header(head, upload_context(upload_id))
                    except (SealBroken, WrongKey):
                        continue  # not openable: it can only be discarded
                    if new is not None:
                        os.pwrite(fd, new, 0)
                        os.fsync(fd)
                        changed += 1
                finally:
                    os.close(fd)
        return changed

    def discard(self, upload_id: str) -> bool:
        """Delete the upload, finished or not; return whether there was anything to delete."""
        if not is_upload_id(upload_id):
            return False
        removed = False
        # Under the lock so that no append has the file open (Windows cannot delete it then).
        with self._lock:
            for suffix in (_PART, _CLOSED, _DONE):
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
                if not dot or "." + suffix not in (_PART, _CLOSED, _DONE) or not is_upload_id(stem):
                    continue
                try:
                    modified = entry.stat(follow_symlinks=False).st_mtime
                except FileNotFoundError:
                    continue  # finished, discarded or moved into the store meanwhile
                if modified <= cutoff:
                    found.add(stem)
        return sorted(found)

    def sweep_temp_files(self) -> int:
        """Remove the temporary files interrupted writes left in the area; return how many.

        A finish opening a sealed upload into its ``.done`` file, and a picture being sealed
        into the store, write temporary files here. Only at start-up, before any request: a
        write in progress would lose its file.
        """
        removed = 0
        for path in self._root.glob(TEMP_PREFIX + "*"):
            path.unlink(missing_ok=True)
            removed += 1
        return removed

    def _path(self, upload_id: str, suffix: str) -> Path:
        """Return the file of ``upload_id``, refusing ids :meth:`begin` cannot have made."""
        if not is_upload_id(upload_id):
            raise UnknownUpload()
        return self._root / (upload_id + suffix)
