"""Provides the SQLite implementation of the account and session repositories.

Writes go through the database's single writer (``BEGIN IMMEDIATE`` under its lock), so each
write is atomic with respect to every other write of the process; reads use the reader
connections and see the last commit.
"""

from __future__ import annotations

from collections.abc import Collection

from backend.accounts.repository import NewSession, SessionRecord, UsernameTaken, UserRecord
from backend.accounts.rows import SESSION_SELECT, USER_COLUMNS, session_from_row, user_from_row
from backend.storage.database import Database

#: Token hashes per query when asking which sessions are stored: SQLite caps the number of
#: ``?`` parameters of one statement.
_CHUNK = 500

_INSERT_SESSION = (
    "INSERT INTO sessions (token_hash, user_id, created_at, last_seen_at, expires_at)"
    " VALUES (?, ?, ?, ?, ?)"
)


def _session_params(session: NewSession) -> tuple[bytes, int, float, float, float]:
    return (
        session.token_hash,
        session.user_id,
        session.created_at,
        session.created_at,
        session.expires_at,
    )


class SqliteAccountRepository:
    """:class:`~backend.accounts.repository.AccountRepository` over SQLite."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self, username: str, username_key: str, password_hash: str, now: float
    ) -> UserRecord:
        async with self._db.transaction() as conn:
            cursor = await conn.execute(
                "INSERT INTO users (username, username_key, password_hash, created_at,"
                " password_changed_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (username_key) DO NOTHING",
                (username, username_key, password_hash, now, now),
            )
            user_id = cursor.lastrowid if cursor.rowcount == 1 else None
        if user_id is None:
            raise UsernameTaken(username_key)
        return UserRecord(user_id, username, False, now, password_hash)

    async def by_key(self, username_key: str) -> UserRecord | None:
        row = await self._db.fetchone(
            f"SELECT {USER_COLUMNS} FROM users WHERE username_key = ?", (username_key,)
        )
        return user_from_row(row) if row is not None else None

    async def by_id(self, user_id: int) -> UserRecord | None:
        row = await self._db.fetchone(f"SELECT {USER_COLUMNS} FROM users WHERE id = ?", (user_id,))
        return user_from_row(row) if row is not None else None

    async def change_password(self, user_id: int, password_hash: str, session: NewSession) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE users SET password_hash = ?, password_changed_at = ? WHERE id = ?",
                (password_hash, session.created_at, user_id),
            )
            await conn.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))
            await conn.execute(_INSERT_SESSION, _session_params(session))

    async def set_admin(self, user_id: int, is_admin: bool) -> None:
        await self._db.execute(
            "UPDATE users SET is_admin = ? WHERE id = ?", (int(is_admin), user_id)
        )

    async def count(self) -> int:
        row = await self._db.fetchone("SELECT COUNT(*) FROM users")
        return int(row[0]) if row is not None else 0


class SqliteSessionRepository:
    """:class:`~backend.accounts.repository.SessionRepository` over SQLite."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, session: NewSession) -> None:
        await self._db.execute(_INSERT_SESSION, _session_params(session))

    async def find(self, token_hash: bytes) -> SessionRecord | None:
        row = await self._db.fetchone(f"{SESSION_SELECT} WHERE s.token_hash = ?", (token_hash,))
        return session_from_row(token_hash, row) if row is not None else None

    async def touch(self, token_hash: bytes, now: float) -> None:
        await self._db.execute(
            "UPDATE sessions SET last_seen_at = max(last_seen_at, ?) WHERE token_hash = ?",
            (now, token_hash),
        )

    async def delete(self, token_hashes: Collection[bytes]) -> None:
        if token_hashes:
            await self._db.executemany(
                "DELETE FROM sessions WHERE token_hash = ?", [(h,) for h in token_hashes]
            )

    async def delete_of_user(self, user_id: int) -> None:
        await self._db.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))

    async def stored(self, token_hashes: Collection[bytes]) -> set[bytes]:
        wanted = list(token_hashes)
        found: set[bytes] = set()
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            marks = ", ".join("?" * len(chunk))
            rows = await self._db.fetchall(
                f"SELECT token_hash FROM sessions WHERE token_hash IN ({marks})", chunk
            )
            found.update(bytes(row["token_hash"]) for row in rows)
        return found

    async def delete_expired(self, now: float, idle_expiry: float) -> int:
        return await self._db.execute(
            "DELETE FROM sessions WHERE expires_at <= ? OR last_seen_at <= ?",
            (now, now - idle_expiry),
        )

    async def count_of_user(self, user_id: int) -> int:
        row = await self._db.fetchone("SELECT COUNT(*) FROM sessions WHERE user_id = ?", (user_id,))
        return int(row[0]) if row is not None else 0

    async def surplus_of_user(self, user_id: int, keep: int) -> list[bytes]:
        rows = await self._db.fetchall(
            "SELECT token_hash FROM sessions WHERE user_id = ?"
            " ORDER BY last_seen_at DESC, created_at DESC LIMIT -1 OFFSET ?",
            (user_id, keep),
        )
        return [bytes(row[0]) for row in rows]
