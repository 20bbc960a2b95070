"""Provides the life cycle of stored pictures' files, beside their rows in the database.

A picture is stored once however many items show it. Its original and metadata-stripped copy
are files named by their SHA-256; its thumbnail and preview live in the database, next to the
rows that list them. Files are written (atomically) before the row that refers to them
commits, and removed only after the last row referring to them is gone.

Adding and removing the same picture's files concurrently is serialised with a lock per picture
hash (:attr:`PictureStore.locks`): whoever stores a picture or adds an item for it holds the
lock from the existence check to the commit, and removal holds it from the row deletion to the
file deletion. The repositories guard the rows themselves (across servers too).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from backend.catalogue.locks import KeyedLocks
from backend.catalogue.processing import PreparedPicture
from backend.catalogue.repository import NewPicture, PictureRepository, StoredFiles
from backend.media.blobs import BlobDamaged, BlobStorage, StoreUnavailable
from backend.media.read_ahead import SliceReader
from backend.media.sniff import MIME_TYPES
from backend.media.validate import ImageInfo
from protocol.errors import Internal, Unavailable

log = logging.getLogger(__name__)

#: In a store other servers write to, the sweep spares files younger than this: another server
#: may have stored one and not yet committed the row naming it.
SHARED_SWEEP_GRACE_SECONDS: Final = 3600.0


@contextmanager
def store_available() -> Iterator[None]:
    """Turn the picture store's outage into the protocol's ``unavailable`` (retry later), and
    a damaged picture into ``internal`` (the store logged which, once)."""
    try:
        yield
    except StoreUnavailable as exc:
        raise Unavailable(
            "Pictures cannot be reached right now; try again shortly",
            retry_after=exc.retry_after,
        ) from None
    except BlobDamaged:
        raise Internal("This picture cannot be read on the server") from None


def new_picture(files: StoredFiles, prepared: PreparedPicture) -> NewPicture:
    """The rows of a picture whose files were stored as ``files``."""
    info = prepared.info
    thumbnail, preview = prepared.derivatives.thumbnail, prepared.derivatives.preview
    return NewPicture(
        files=files,
        format=info.format,
        width=info.width,
        height=info.height,
        orientation=info.orientation,
        size_bytes=info.byte_size,
        clean_size=len(prepared.clean),
        thumbnail=thumbnail,
        preview=preview,
        thumbnail_sha256=hashlib.sha256(thumbnail).hexdigest(),
        thumbnail_size=len(thumbnail),
        preview_sha256=hashlib.sha256(preview).hexdigest(),
        preview_size=len(preview),
    )


class PictureStore:
    """Stored pictures: their files in a blob store, their rows through a repository."""

    def __init__(self, pictures: PictureRepository, blobs: BlobStorage) -> None:
        self._pictures = pictures
        self.blobs = blobs
        #: Held per picture hash around every add and remove (see the module docstring).
        self.locks = KeyedLocks()

    @property
    def blobs(self) -> BlobStorage:
        """The store the files are in."""
        return self._blobs

    @blobs.setter
    def blobs(self, blobs: BlobStorage) -> None:
        # Replaced once the store's keys are open (the sealed store wraps the raw one): the
        # downloads' reader, and what it read ahead, go with the store it read.
        self._blobs = blobs
        #: Downloads' ranged reads, the next slice read ahead (the same for every store).
        self._slices = SliceReader(blobs)

    async def exists(self, sha256: str) -> bool:
        """Whether a picture row exists for ``sha256``."""
        return await self._pictures.exists(sha256)

    async def store_files(self, source: Path, sha256: str, clean: bytes) -> StoredFiles:
        """Move the verified upload at ``source`` into the blob store and add its clean copy.

        Call with the lock of ``sha256`` held, before adding the rows.

        Raises:
            Unavailable: the store cannot be reached; the upload stays, to be finished again.
        """
        with store_available():
            # Not hashed again: finish() hashed the upload as it wrote it and checked it against
            # ``sha256``, and only this server writes to the upload area.
            await self.blobs.put_file(source, expected_sha256=sha256)
            return StoredFiles(sha256, await self.blobs.put(clean))

    async def remove_files(self, orphans: Iterable[StoredFiles]) -> int:
        """Remove the files of deleted pictures that no row refers to; return how many.

        Call after the deleting transaction committed (or the adding one failed), with the
        locks still held.
        """
        names = {name for files in orphans for name in (files.sha256, files.clean_sha256)}
        unreferenced = [name for name in sorted(names) if not await self._pictures.referenced(name)]
        removed = 0
        try:
            for name in unreferenced:
                self._slices.forget(name)
                if await self.blobs.delete(name):
                    removed += 1
        except StoreUnavailable:
            # The rows are gone already (committed), so the request succeeded: the files stay
            # for the sweep, which removes what no row names.
            log.warning(
                "picture store unreachable: %d unreferenced files left for the sweep",
                len(unreferenced) - removed,
            )
        return removed

    async def sweep(self, grace_seconds: float | None = None) -> int:
        """Remove picture rows no item shows and files no row refers to; return files removed.

        It takes no locks: files younger than ``grace_seconds`` are spared instead, since a file
        is stored before the row naming it commits. By default that is 0 for the data dir (at
        start-up, before this server serves anything) and :data:`SHARED_SWEEP_GRACE_SECONDS`
        for a store other servers write to meanwhile; a sweep while serving passes its own.
        An unreachable store is left for the next sweep.
        """
        referenced = self._stored_names(await self._pictures.prune())
        grace = grace_seconds
        if grace is None:
            grace = SHARED_SWEEP_GRACE_SECONDS if self.blobs.shared else 0.0
        removed = 0
        try:
            await self.blobs.sweep_temp_files(older_than_seconds=grace)
            # Streamed: a large store's names are never all held at once, only the orphans.
            orphans = [
                name
                async for name in self.blobs.names(older_than_seconds=grace)
                if name not in referenced
            ]
            if orphans:
                # Asked again: a row may have come since the snapshot (on another server).
                referenced = self._stored_names(await self._pictures.prune())
            for name in orphans:
                if name not in referenced and await self.blobs.delete_stored(name):
                    removed += 1
        except StoreUnavailable:
            log.warning("picture store unreachable: unreferenced files are left for later")
        if removed:
            log.info("start-up sweep removed %d unreferenced picture files", removed)
        return removed

    def _stored_names(self, hashes: set[str]) -> set[str]:
        """The names the store lists the files of ``hashes`` under, and the hashes themselves
        (a store encrypted in place may still hold some under those)."""
        return hashes | {self.blobs.storage_name(sha256) for sha256 in hashes}

    async def info(self, sha256: str) -> ImageInfo | None:
        """What validation learned about a stored picture, or ``None``."""
        picture = await self._pictures.info(sha256)
        if picture is None:
            return None
        return ImageInfo(
            format=picture.format,
            width=picture.width,
            height=picture.height,
            mime=MIME_TYPES[picture.format],
            orientation=picture.orientation,
            byte_size=picture.size_bytes,
        )

    async def served_file(self, sha256: str, *, stripped: bool) -> tuple[str, str] | None:
        """Return ``(blob name, format)`` of the original or of its metadata-stripped copy."""
        picture = await self._pictures.info(sha256)
        if picture is None:
            return None
        return (picture.clean_sha256 if stripped else sha256), picture.format

    async def read_range(self, sha256: str, offset: int, length: int) -> tuple[int, bytes]:
        """Return the file's total size and up to ``length`` bytes from ``offset``.

        For downloads, once the caller checked the user may read the file: the next ``length``
        bytes are read ahead (:mod:`backend.media.read_ahead`).

        Raises:
            FileNotFoundError: the file is not stored.
            Unavailable: the store cannot be reached.
        """
        with store_available():
            return await self._slices.read_range(sha256, offset, length)

    async def read(self, sha256: str) -> bytes:
        """Return the whole file.

        Raises:
            FileNotFoundError: the file is not stored.
            Unavailable: the store cannot be reached.
        """
        with store_available():
            return await self.blobs.read(sha256)
