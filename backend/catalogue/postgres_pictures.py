"""Provides :class:`PostgresPictureRepository`: the rows of stored pictures in PostgreSQL."""

from __future__ import annotations

from typing import Final

from backend.catalogue.postgres_locks import lock_pictures
from backend.catalogue.repository import PictureInfo, StoredDerivatives
from backend.catalogue.rows import PICTURE_INFO_COLUMNS, picture_info_from_row
from backend.storage.postgres import PostgresDatabase

_UNSHOWN: Final = "NOT EXISTS (SELECT 1 FROM items i WHERE i.sha256 = p.sha256)"


class PostgresPictureRepository:
    """The :class:`~backend.catalogue.repository.PictureRepository` of a PostgreSQL database."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def exists(self, sha256: str) -> bool:
        return bool(
            await self._db.fetchval(
                "SELECT EXISTS (SELECT 1 FROM pictures WHERE sha256 = $1)", sha256
            )
        )

    async def info(self, sha256: str) -> PictureInfo | None:
        row = await self._db.fetchone(
            f"SELECT {PICTURE_INFO_COLUMNS} FROM pictures WHERE sha256 = $1", sha256
        )
        return picture_info_from_row(row) if row is not None else None

    async def referenced(self, name: str) -> bool:
        return bool(
            await self._db.fetchval(
                "SELECT EXISTS (SELECT 1 FROM pictures WHERE sha256 = $1 OR clean_sha256 = $1)",
                name,
            )
        )

    async def prune(self) -> set[str]:
        unshown = await self._db.fetchall(f"SELECT sha256 FROM pictures p WHERE {_UNSHOWN}")
        for row in unshown:
            # Each under its picture's lock, checked again: another server may be giving it an
            # item right now (it holds the lock) or may have just done so.
            async with self._db.transaction() as conn:
                await lock_pictures(conn, [row["sha256"]])
                await conn.execute(
                    f"DELETE FROM pictures p WHERE sha256 = $1 AND {_UNSHOWN}", row["sha256"]
                )
        rows = await self._db.fetchall("SELECT sha256, clean_sha256 FROM pictures")
        return {str(name) for row in rows for name in row}

    async def derivatives_after(self, after: str, limit: int) -> list[StoredDerivatives]:
        rows = await self._db.fetchall(
            "SELECT p.sha256, p.thumbnail, pp.preview FROM pictures p"
            " JOIN picture_previews pp ON pp.sha256 = p.sha256"
            " WHERE p.sha256 > $1 ORDER BY p.sha256 LIMIT $2",
            after,
            limit,
        )
        return [StoredDerivatives(row[0], bytes(row[1]), bytes(row[2])) for row in rows]

    async def replace_derivatives(self, old: StoredDerivatives, new: StoredDerivatives) -> bool:
        try:
            async with self._db.transaction() as conn:
                row = await conn.fetchrow(
                    "WITH t AS (UPDATE pictures SET thumbnail = $2"
                    "  WHERE sha256 = $1 AND thumbnail = $3 RETURNING sha256),"
                    " p AS (UPDATE picture_previews SET preview = $4"
                    "  WHERE sha256 = $1 AND preview = $5 RETURNING sha256)"
                    " SELECT (SELECT count(*) FROM t), (SELECT count(*) FROM p)",
                    old.sha256,
                    new.thumbnail,
                    old.thumbnail,
                    new.preview,
                    old.preview,
                )
                if row is None or (row[0], row[1]) != (1, 1):
                    raise _Gone()
        except _Gone:
            return False  # rolled back: both or neither
        return True


class _Gone(Exception):
    """The picture's row changed or went since it was read."""
