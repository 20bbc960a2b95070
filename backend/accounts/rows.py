"""Provides the columns account queries share and the records made of their rows.

Both engines select these columns in this order and hand the rows here, which unpacks them by
position. Values are used as the drivers return them, except booleans: SQLite keeps them as
0/1, so they pass through ``bool()`` (a no-op on PostgreSQL's).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from backend.accounts.repository import SessionRecord, UserRecord

#: The columns of ``users`` that :func:`user_from_row` reads, in its order.
USER_COLUMNS: Final = "id, username, is_admin, created_at, password_hash"
#: A session (``s``) with its user (``u``), as :func:`session_from_row` reads it.
SESSION_SELECT: Final = (
    "SELECT s.user_id, s.created_at, s.last_seen_at, s.expires_at, u.username, u.is_admin"
    " FROM sessions s JOIN users u ON u.id = s.user_id"
)


def user_from_row(row: Iterable[Any]) -> UserRecord:
    """The user of a row of :data:`USER_COLUMNS`."""
    user_id, username, is_admin, created_at, password_hash = row
    return UserRecord(
        id=user_id,
        username=username,
        is_admin=bool(is_admin),
        created_at=created_at,
        password_hash=password_hash,
    )


def session_from_row(token_hash: bytes, row: Iterable[Any]) -> SessionRecord:
    """The session ``token_hash`` names, from its row of :data:`SESSION_SELECT`."""
    user_id, created_at, last_seen_at, expires_at, username, is_admin = row
    return SessionRecord(
        token_hash=token_hash,
        user_id=user_id,
        username=username,
        is_admin=bool(is_admin),
        created_at=created_at,
        last_seen_at=last_seen_at,
        expires_at=expires_at,
    )
