"""Provides the life cycle of stored pictures: files in the blob store and their rows.

A picture is stored once however many items show it. Its original and metadata-stripped copy
are files named by their SHA-256; its thumbnail and preview live in the database, next to the
rows that list them. Files are written (atomically) before the row that refers to them
commits, and removed only after the last row referring to them is gone.

Adding and removing the same picture concurrently is serialised with a lock per picture hash
(:attr:`PictureStore.locks`): whoever stores a picture or inserts an item for it holds the lock
from the existence check to the commit, and removal holds it from the row deletion to the file
deletion.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from backend.catalogue.locks import KeyedLocks
from backend.catalogue.processing import PreparedPicture
from backend.media.blobstore import BlobStore
from backend.media.sniff import MIME_TYPES
from backend.media.validate import ImageInfo
from backend.storage.database import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StoredFiles:
    """The two files of a picture: the original and the copy served to others."""

    sha256: str
    clean_sha256: str


class PictureStore:
    """Stored pictures: their files and their ``pictures`` rows."""

    def __init__(self, db: Database, blobs: BlobStore) -> None:
        self._db = db
        self.blobs = blobs
        #: Held per picture hash around every add and remove (see the module docstring).
        self.locks = KeyedLocks()

    async def exists(self, sha256: str) -> bool:
        """Whether a picture row exists for ``sha256``."""
        row = await self._db.fetchone("SELECT 1 FROM pictures WHERE sha256 = ?", (sha256,))
        return row is not None

    async def store_files(self, source: Path, sha256: str, clean: bytes) -> StoredFiles:
        """Move the verified upload at ``source`` into the blob store and add its clean copy.

        Call with the lock of ``sha256`` held, before inserting the row.
        """

        def store() -> StoredFiles:
            stored = self.blobs.put_file(source)
            if stored != sha256:
                # The file changed after its hash was verified; no row can name this blob.
                self.blobs.delete(stored)
                raise RuntimeError(f"stored file hashes to {stored}, expected {sha256}")
            return StoredFiles(sha256, self.blobs.put(clean))

        return await asyncio.to_thread(store)

    async def insert(
        self,
        conn: aiosqlite.Connection,
        files: StoredFiles,
        prepared: PreparedPicture,
        now: float,
    ) -> None:
        """Insert the picture's rows inside the caller's write transaction."""
        info = prepared.info
        await conn.execute(
            "INSERT INTO pictures (sha256, format, width, height, orientation, size_bytes,"
            " clean_sha256, clean_size, created_at, thumbnail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                files.sha256,
                info.format,
                info.width,
                info.height,
                info.orientation,
                info.byte_size,
                files.clean_sha256,
                len(prepared.clean),
                now,
                prepared.derivatives.thumbnail,
            ),
        )
        await conn.execute(
            "INSERT INTO picture_previews (sha256, preview) VALUES (?, ?)",
            (files.sha256, prepared.derivatives.preview),
        )

    async def delete_orphan_rows(
        self, conn: aiosqlite.Connection, shas: Iterable[str]
    ) -> list[StoredFiles]:
        """Delete the rows of pictures no item shows any more; return their files.

        Runs inside the caller's write transaction, with the locks of ``shas`` held; pass the
        result to :meth:`remove_files` after the commit.
        """
        orphans: list[StoredFiles] = []
        for sha256 in sorted(set(shas)):
            cursor = await conn.execute(
                "DELETE FROM pictures WHERE sha256 = ?"
                " AND NOT EXISTS (SELECT 1 FROM items WHERE items.sha256 = pictures.sha256)"
                " RETURNING clean_sha256",
                (sha256,),
            )
            row = await cursor.fetchone()
            await cursor.close()
            if row is not None:
                orphans.append(StoredFiles(sha256, str(row[0])))
        return orphans

    async def remove_files(self, orphans: Iterable[StoredFiles]) -> int:
        """Remove the files of deleted pictures that no row refers to; return how many.

        Call after the deleting transaction committed, with the locks still held.
        """
        names = {name for files in orphans for name in (files.sha256, files.clean_sha256)}
        unreferenced = [name for name in sorted(names) if not await self._referenced(name)]
        return await asyncio.to_thread(self._delete_files, unreferenced)

    async def discard_unreferenced(self, files: StoredFiles) -> None:
        """Undo :meth:`store_files` after a failed insert (lock still held)."""
        await self.remove_files([files])

    async def _referenced(self, name: str) -> bool:
        row = await self._db.fetchone(
            "SELECT 1 FROM pictures WHERE sha256 = ? OR clean_sha256 = ? LIMIT 1", (name, name)
        )
        return row is not None

    def _delete_files(self, names: Iterable[str]) -> int:
        return sum(1 for name in names if self.blobs.delete(name))

    async def sweep(self) -> int:
        """Remove picture rows no item shows and files no row refers to; return files removed.

        For start-up, before any request is served: it takes no locks.
        """
        await self._db.execute(
            "DELETE FROM pictures"
            " WHERE NOT EXISTS (SELECT 1 FROM items WHERE items.sha256 = pictures.sha256)"
        )
        rows = await self._db.fetchall("SELECT sha256, clean_sha256 FROM pictures")
        referenced = {str(name) for row in rows for name in row}

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
        row = await self._db.fetchone(
            "SELECT format, width, height, orientation, size_bytes FROM pictures WHERE sha256 = ?",
            (sha256,),
        )
        if row is None:
            return None
        fmt = str(row["format"])
        return ImageInfo(
            format=fmt,
            width=int(row["width"]),
            height=int(row["height"]),
            mime=MIME_TYPES[fmt],
            orientation=int(row["orientation"]),
            byte_size=int(row["size_bytes"]),
        )

    async def served_file(self, sha256: str, *, stripped: bool) -> tuple[str, str] | None:
        """Return ``(blob name, format)`` of the original or of its metadata-stripped copy."""
        row = await self._db.fetchone(
            "SELECT clean_sha256, format FROM pictures WHERE sha256 = ?", (sha256,)
        )
        if row is None:
            return None
        return (str(row[0]) if stripped else sha256), str(row[1])

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
