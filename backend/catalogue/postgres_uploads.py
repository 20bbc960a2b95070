"""Provides :class:`PostgresUploadRepository`: uploads in progress in PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import asyncpg

from backend.catalogue.postgres_locks import SHOP_WIDE, lock_upload_quota
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
from backend.storage.postgres import PostgresDatabase
from protocol.messages.catalogue import ItemMetadata

_OWNER_FILE_KEY: Final = "uploads_owner_file"


class PostgresUploadRepository:
    """The :class:`~backend.catalogue.repository.UploadRepository` of a PostgreSQL database."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def get(self, upload_id: str) -> UploadRow | None:
        row = await self._db.fetchone(
            f"SELECT {UPLOAD_COLUMNS} FROM uploads WHERE id = $1", upload_id
        )
        return upload_from_row(row) if row is not None else None

    async def find(self, owner_id: int, sha256: str) -> UploadRow | None:
        row = await self._db.fetchone(
            f"SELECT {UPLOAD_COLUMNS} FROM uploads WHERE owner_id = $1 AND sha256 = $2",
            owner_id,
            sha256,
        )
        return upload_from_row(row) if row is not None else None

    async def add(self, upload: UploadRow, created_at: float, quota: UploadQuota) -> None:
        try:
            async with self._db.transaction() as conn:
                # Uploads begun at once (on any server) are counted one after the other.
                await lock_upload_quota(conn, upload.owner_id)
                row = await conn.fetchrow(
                    "SELECT count(*), COALESCE(sum(size), 0) FROM uploads WHERE owner_id = $1",
                    upload.owner_id,
                )
                usage = UploadUsage(uploads=int(row[0]), bytes=int(row[1]))
                if not quota.admits(usage, upload.size):
                    raise UploadQuotaExceeded(usage)
                if quota.total_bytes is not None:
                    # Everyone's begins, one after the other (after the owner's: one order).
                    await lock_upload_quota(conn, SHOP_WIDE)
                    total = await conn.fetchval("SELECT COALESCE(sum(size), 0) FROM uploads")
                    if not quota.admits_total(int(total), upload.size):
                        raise UploadStoreFull(f"{total} bytes in unfinished uploads")
                await conn.execute(
                    f"INSERT INTO uploads ({UPLOAD_COLUMNS}, created_at)"
                    " VALUES ($1, $2, $3, $4, $5, $6)",
                    *upload_values(upload, created_at),
                )
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == _OWNER_FILE_KEY:
                raise UploadExists(f"{upload.owner_id} uploads {upload.sha256} already") from None
            raise

    async def set_metadata(self, upload_id: str, metadata: ItemMetadata) -> None:
        await self._db.execute(
            "UPDATE uploads SET metadata = $1 WHERE id = $2", metadata_to_bytes(metadata), upload_id
        )

    async def delete(self, upload_ids: Iterable[str]) -> None:
        await self._db.execute("DELETE FROM uploads WHERE id = ANY($1::text[])", list(upload_ids))

    async def ids(self) -> set[str]:
        return {str(row[0]) for row in await self._db.fetchall("SELECT id FROM uploads")}

    async def begun_before(self, cutoff: float) -> list[str]:
        rows = await self._db.fetchall("SELECT id FROM uploads WHERE created_at <= $1", cutoff)
        return [str(row[0]) for row in rows]
