"""Provides :class:`SqliteUploadRepository`: uploads in progress in SQLite."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from backend.catalogue.repository import (
    UploadExists,
    UploadQuota,
    UploadQuotaExceeded,
    UploadRow,
    UploadStoreFull,
    UploadUsage,
)
from backend.catalogue.rows import (
    UPLOAD_COLUMNS,
    metadata_to_bytes,
    upload_from_row,
    upload_values,
)
from backend.storage.database import Database
from protocol.messages.catalogue import ItemMetadata


class SqliteUploadRepository:
    """The :class:`~backend.catalogue.repository.UploadRepository` of a SQLite database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, upload_id: str) -> UploadRow | None:
        row = await self._db.fetchone(
            f"SELECT {UPLOAD_COLUMNS} FROM uploads WHERE id = ?", (upload_id,)
        )
        return upload_from_row(row) if row is not None else None

    async def find(self, owner_id: int, sha256: str) -> UploadRow | None:
        row = await self._db.fetchone(
            f"SELECT {UPLOAD_COLUMNS} FROM uploads WHERE owner_id = ? AND sha256 = ?",
            (owner_id, sha256),
        )
        return upload_from_row(row) if row is not None else None

    async def add(self, upload: UploadRow, created_at: float, quota: UploadQuota) -> None:
        try:
            # The single writer makes "count, then insert" one step.
            async with self._db.transaction() as conn:
                async with conn.execute(
                    "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM uploads WHERE owner_id = ?",
                    (upload.owner_id,),
                ) as cursor:
                    count, declared = await cursor.fetchone() or (0, 0)
                usage = UploadUsage(uploads=int(count), bytes=int(declared))
                if not quota.admits(usage, upload.size):
                    raise UploadQuotaExceeded(usage)
                if quota.total_bytes is not None:
                    async with conn.execute("SELECT COALESCE(SUM(size), 0) FROM uploads") as cursor:
                        (total,) = await cursor.fetchone() or (0,)
                    if not quota.admits_total(int(total), upload.size):
                        raise UploadStoreFull(f"{total} bytes in unfinished uploads")
                await conn.execute(
                    f"INSERT INTO uploads ({UPLOAD_COLUMNS}, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    upload_values(upload, created_at),
                )
        except sqlite3.IntegrityError as exc:
            if exc.sqlite_errorname == "SQLITE_CONSTRAINT_UNIQUE":
                raise UploadExists(f"{upload.owner_id} uploads {upload.sha256} already") from None
            raise

    async def set_metadata(self, upload_id: str, metadata: ItemMetadata) -> None:
        await self._db.execute(
            "UPDATE uploads SET metadata = ? WHERE id = ?", (metadata_to_bytes(metadata), upload_id)
        )

    async def delete(self, upload_ids: Iterable[str]) -> None:
        await self._db.executemany("DELETE FROM uploads WHERE id = ?", [(i,) for i in upload_ids])

    async def ids(self) -> set[str]:
        return {str(row[0]) for row in await self._db.fetchall("SELECT id FROM uploads")}

    async def begun_before(self, cutoff: float) -> list[str]:
        rows = await self._db.fetchall("SELECT id FROM uploads WHERE created_at <= ?", (cutoff,))
        return [str(row[0]) for row in rows]
