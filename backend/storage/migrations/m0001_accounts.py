"""Provides migration 1: users and sessions."""

SQL = """
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL,
    username_key  TEXT NOT NULL UNIQUE,   -- casefolded, for case-insensitive uniqueness
    password_hash TEXT NOT NULL,
    is_admin      INTEGER NOT NULL DEFAULT 0,
    created_at    REAL NOT NULL,
    password_changed_at REAL NOT NULL
);

CREATE TABLE sessions (
    token_hash   BLOB PRIMARY KEY,        -- SHA-256 of the token; the token itself is never stored
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at   REAL NOT NULL,
    last_seen_at REAL NOT NULL,
    expires_at   REAL NOT NULL            -- absolute expiry
) WITHOUT ROWID;
CREATE INDEX sessions_by_user ON sessions(user_id);
"""
