"""Provides PostgreSQL migration 5: the state that several server instances share.

What one SQLite server keeps in its memory or data dir, instances on one PostgreSQL database keep
here: the replies of requests a client may retry on another instance, the login and sign-up
counters that bound an attacker whichever instance it reaches, and the secrets that sign cursors.
None of it is shop data: ``migrate-data`` copies nothing into these tables (a new deployment
starts with none of it, as a restarted SQLite server does).
"""

SQL = """
-- The replay cache (backend.replay_postgres): one row per (client session, user, request id).
-- reply is NULL while the request runs on the instance named by owner: the key of the advisory
-- lock that instance holds for its lifetime, so a waiting instance can tell a claim abandoned
-- by a dead instance (lock gone) from one still running.
CREATE TABLE replay_replies (
    client_id   TEXT NOT NULL,
    user_id     BIGINT NOT NULL,
    request_id  BIGINT NOT NULL,
    fingerprint BYTEA NOT NULL,        -- digest of the request frame: a retry or id reuse
    owner       BIGINT NOT NULL,       -- the instance that ran (or runs) it
    created_at  DOUBLE PRECISION NOT NULL,
    reply       BYTEA,                 -- the encoded reply; NULL while in flight
    PRIMARY KEY (client_id, user_id, request_id)
);
CREATE INDEX replay_replies_by_user ON replay_replies(user_id, created_at);
CREATE INDEX replay_replies_by_age ON replay_replies(created_at);

-- Throttle events (backend.accounts.postgres_throttle): one row per counted login attempt or
-- sign-up, in a sliding window per (scope, key); rows older than the window are deleted.
CREATE TABLE throttle_events (
    id     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scope  TEXT NOT NULL,              -- 'login' or 'signup'
    key    TEXT NOT NULL,              -- 'account:<name>', 'address:<ip or /64>', 'total'
    at     DOUBLE PRECISION NOT NULL
);
CREATE INDEX throttle_events_by_key ON throttle_events(scope, key, at);
CREATE INDEX throttle_events_by_age ON throttle_events(at);

-- Secrets every instance must share (cursor signing keys), created once by whichever instance
-- asks first (INSERT ... ON CONFLICT DO NOTHING, then read back).
CREATE TABLE cluster_secrets (
    name   TEXT PRIMARY KEY,
    secret BYTEA NOT NULL
);
"""
