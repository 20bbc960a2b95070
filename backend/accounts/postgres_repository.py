"""Provides the PostgreSQL implementation of the account and session repositories.

Several server processes may share the database, so nothing here relies on being the only
writer: a username clash is settled by the unique key (``ON CONFLICT DO NOTHING``), a touch
never moves ``last_seen_at`` back past another process's, and a password change holds the
user's row lock for the whole swap of sessions.
"""

from __future__ import annotations

from collections.abc import Collection

from backend.accounts.repository import NewSession, SessionRecord, UsernameTaken, UserRecord
from backend.accounts.rows import SESSION_SELECT, USER_COLUMNS, session_from_row, user_from_row
from backend.storage.postgres import PostgresDatabase

_INSERT_SESSION = (
    "INSERT INTO sessions (token_hash, user_id, created_at, last_seen_at, expires_at)"
    " VALUES ($1, $2, $3, $3, $4)"
)


def _session_args(session: NewSession) -> tuple[bytes, int, float, float]:
    return (session.token_hash, session.user_id, session.created_at, session.expires_at)


class PostgresAccountRepository:
    """:class:`~backend.accounts.repository.AccountRepository` over PostgreSQL."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def create(
        self, username: str, username_key: str, password_hash: str, now: float
    ) -> UserRecord:
        async with self._db.connection() as conn:
            user_id: int | None = await conn.fetchval(
                "INSERT INTO users (username, username_key, password_hash, created_at,"
                " password_changed_at) VALUES ($1, $2, $3, $4, $4)"
                " ON CONFLICT (username_key) DO NOTHING RETURNING id",
                username,
                username_key,
                password_hash,
                now,
            )
        if user_id is None:
            raise UsernameTaken(username_key)
        return UserRecord(user_id, username, False, now, password_hash)

    async def by_key(self, username_key: str) -> UserRecord | None:
        row = await self._db.fetchone(
            f"SELECT {USER_COLUMNS} FROM users WHERE username_key = $1", username_key
        )
        return user_from_row(row) if row is not None else None

    async def by_id(self, user_id: int) -> UserRecord | None:
        row = await self._db.fetchone(f"SELECT {USER_COLUMNS} FROM users WHERE id = $1", user_id)
        return user_from_row(row) if row is not None else None

    async def change_password(self, user_id: int, password_hash: str, session: NewSession) -> None:
        async with self._db.transaction() as conn:
            # The UPDATE locks the user's row until commit, so two changes of one user (from any
            # processes) run one after the other and the later one deletes the earlier's session.
            await conn.execute(
                "UPDATE users SET password_hash = $1, password_changed_at = $2 WHERE id = $3",
                password_hash,
                session.created_at,
                user_id,
            )
            await conn.execute("DELETE FROM sessions WHERE user_id = $1", user_id)
            await conn.execute(_INSERT_SESSION, *_session_args(session))

    async def set_admin(self, user_id: int, is_admin: bool) -> None:
        await self._db.execute("UPDATE users SET is_admin = $1 WHERE id = $2", is_admin, user_id)

    async def count(self) -> int:
        return int(await self._db.fetchval("SELECT count(*) FROM users"))


class PostgresSessionRepository:
    """:class:`~backend.accounts.repository.SessionRepository` over PostgreSQL."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def create(self, session: NewSession) -> None:
        await self._db.execute(_INSERT_SESSION, *_session_args(session))

    async def find(self, token_hash: bytes) -> SessionRecord | None:
        row = await self._db.fetchone(f"{SESSION_SELECT} WHERE s.token_hash = $1", token_hash)
        return session_from_row(token_hash, row) if row is not None else None

    async def touch(self, token_hash: bytes, now: float) -> None:
        await self._db.execute(
            "UPDATE sessions SET last_seen_at = GREATEST(last_seen_at, $1) WHERE token_hash = $2",
            now,
            token_hash,
        )

    async def delete(self, token_hashes: Collection[bytes]) -> None:
        if token_hashes:
            await self._db.execute(
                "DELETE FROM sessions WHERE token_hash = ANY($1::bytea[])", list(token_hashes)
            )

    async def delete_of_user(self, user_id: int) -> None:
        await self._db.execute("DELETE FROM sessions WHERE user_id = $1", user_id)

    async def stored(self, token_hashes: Collection[bytes]) -> set[bytes]:
        if not token_hashes:
            return set()
        rows = await self._db.fetchall(
            "SELECT token_hash FROM sessions WHERE token_hash = ANY($1::bytea[])",
            list(token_hashes),
        )
        return {bytes(row["token_hash"]) for row in rows}

    async def delete_expired(self, now: float, idle_expiry: float) -> int:
        return await self._db.execute(
            "DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at <= $2",
            now,
            now - idle_expiry,
        )

    async def count_of_user(self, user_id: int) -> int:
        return int(
            await self._db.fetchval("SELECT count(*) FROM sessions WHERE user_id = $1", user_id)
        )

    async def surplus_of_user(self, user_id: int, keep: int) -> list[bytes]:
        rows = await self._db.fetchall(
            "SELECT token_hash FROM sessions WHERE user_id = $1"
            " ORDER BY last_seen_at DESC, created_at DESC OFFSET $2",
            user_id,
            keep,
        )
        return [bytes(row[0]) for row in rows]
