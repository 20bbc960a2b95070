"""Provides :class:`SqlitePictureRepository`: the rows of stored pictures in SQLite."""

from __future__ import annotations

from backend.catalogue.repository import PictureInfo, StoredDerivatives
from backend.catalogue.rows import PICTURE_INFO_COLUMNS, picture_info_from_row
from backend.storage.database import Database


class SqlitePictureRepository:
    """The :class:`~backend.catalogue.repository.PictureRepository` of a SQLite database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def exists(self, sha256: str) -> bool:
        return (
            await self._db.fetchone("SELECT 1 FROM pictures WHERE sha256 = ?", (sha256,))
            is not None
        )

    async def info(self, sha256: str) -> PictureInfo | None:
        row = await self._db.fetchone(
            f"SELECT {PICTURE_INFO_COLUMNS} FROM pictures WHERE sha256 = ?", (sha256,)
        )
        return picture_info_from_row(row) if row is not None else None

    async def referenced(self, name: str) -> bool:
        row = await self._db.fetchone(
            "SELECT 1 FROM pictures WHERE sha256 = ? OR clean_sha256 = ? LIMIT 1", (name, name)
        )
        return row is not None

    async def prune(self) -> set[str]:
        # The single writer makes the deletion and the read one consistent step.
        async with self._db.transaction() as conn:
            await conn.execute(
                "DELETE FROM pictures"
                " WHERE NOT EXISTS (SELECT 1 FROM items WHERE items.sha256 = pictures.sha256)"
            )
            async with conn.execute("SELECT sha256, clean_sha256 FROM pictures") as cursor:
                rows = await cursor.fetchall()
        return {str(name) for row in rows for name in row}

    async def derivatives_after(self, after: str, limit: int) -> list[StoredDerivatives]:
        rows = await self._db.fetchall(
            "SELECT p.sha256, p.thumbnail, pp.preview FROM pictures p"
            " JOIN picture_previews pp ON pp.sha256 = p.sha256"
            " WHERE p.sha256 > ? ORDER BY p.sha256 LIMIT ?",
            (after, limit),
        )
        return [StoredDerivatives(str(sha), bytes(thumb), bytes(prev)) for sha, thumb, prev in rows]

    async def replace_derivatives(self, old: StoredDerivatives, new: StoredDerivatives) -> bool:
        try:
            async with self._db.transaction() as conn:
                for sql, args in (
                    (
                        "UPDATE pictures SET thumbnail = ? WHERE sha256 = ? AND thumbnail = ?",
                        (new.thumbnail, old.sha256, old.thumbnail),
                    ),
                    (
                        "UPDATE picture_previews SET preview = ? WHERE sha256 = ? AND preview = ?",
                        (new.preview, old.sha256, old.preview),
                    ),
                ):
                    cursor = await conn.execute(sql, args)
                    if cursor.rowcount != 1:
                        raise _Gone()
        except _Gone:
            return False  # rolled back: both or neither
        return True


class _Gone(Exception):
    """The picture's row changed or went since it was read."""
