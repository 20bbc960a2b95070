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

import asyncio
import logging
from collections.abc import Iterable
from pathlib import Path

from backend.catalogue.locks import KeyedLocks
from backend.catalogue.processing import PreparedPicture
from backend.catalogue.repository import NewPicture, PictureRepository, StoredFiles
from backend.media.blobstore import BlobStore
from backend.media.sniff import MIME_TYPES
from backend.media.validate import ImageInfo

log = logging.getLogger(__name__)


def new_picture(files: StoredFiles, prepared: PreparedPicture) -> NewPicture:
    """The rows of a picture whose files were stored as ``files``."""
    info = prepared.info
    return NewPicture(
        files=files,
        format=info.format,
        width=info.width,
        height=info.height,
        orientation=info.orientation,
        size_bytes=info.byte_size,
        clean_size=len(prepared.clean),
        thumbnail=prepared.derivatives.thumbnail,
        preview=prepared.derivatives.preview,
    )


class PictureStore:
    """Stored pictures: their files in a blob store, their rows through a repository."""

    def __init__(self, pictures: PictureRepository, blobs: BlobStore) -> None:
        self._pictures = pictures
        self.blobs = blobs
        #: Held per picture hash around every add and remove (see the module docstring).
        self.locks = KeyedLocks()

    async def exists(self, sha256: str) -> bool:
        """Whether a picture row exists for ``sha256``."""
        return await self._pictures.exists(sha256)

    async def store_files(self, source: Path, sha256: str, clean: bytes) -> StoredFiles:
        """Move the verified upload at ``source`` into the blob store and add its clean copy.

        Call with the lock of ``sha256`` held, before adding the rows.
        """

        def store() -> StoredFiles:
            stored = self.blobs.put_file(source)
            if stored != sha256:
                # The file changed after its hash was verified; no row can name this blob.
                self.blobs.delete(stored)
                raise RuntimeError(f"stored file hashes to {stored}, expected {sha256}")
            return StoredFiles(sha256, self.blobs.put(clean))

        return await asyncio.to_thread(store)

    async def remove_files(self, orphans: Iterable[StoredFiles]) -> int:
        """Remove the files of deleted pictures that no row refers to; return how many.

        Call after the deleting transaction committed (or the adding one failed), with the
        locks still held.
        """
        names = {name for files in orphans for name in (files.sha256, files.clean_sha256)}
        unreferenced = [name for name in sorted(names) if not await self._pictures.referenced(name)]
        return await asyncio.to_thread(self._delete_files, unreferenced)

    def _delete_files(self, names: Iterable[str]) -> int:
        return sum(1 for name in names if self.blobs.delete(name))

    async def sweep(self) -> int:
        """Remove picture rows no item shows and files no row refers to; return files removed.

        For start-up, before any request is served: it takes no locks.
        """
        referenced = await self._pictures.prune()

        def sweep_files() -> int:
            self.blobs.sweep_temp_files(older_than_seconds=0)
            orphans = [name for name in self.blobs.iter_all() if name not in referenced]
            return self._delete_files(orphans)

        removed = await asyncio.to_thread(sweep_files)
        if removed:
            log.info("start-up sweep removed %d unreferenced picture files", removed)
        return removed

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

        Raises:
            FileNotFoundError: the file is not stored.
        """

        def read() -> tuple[int, bytes]:
            with self.blobs.open(sha256) as stream:
                stream.seek(0, 2)
                total = stream.tell()
                stream.seek(min(offset, total))
                return total, stream.read(length)

        return await asyncio.to_thread(read)
