"""Provides migration 10: the durable backlog of items waiting to be matched against saved
searches (backend/alerts/backlog.py).

Triggers queue an item in the transaction that lists it or changes what a saved search looks
at, so a server killed after the write was acknowledged still matches it once it runs again.
"""

#: The database's clock, in seconds since the epoch (SQLite has no unixepoch() before 3.38).
_NOW = "((julianday('now') - 2440587.5) * 86400.0)"

#: Queue item ``{item}``: a queued item is only marked changed (and due now); a new one is
#: queued while the backlog holds fewer than its capacity, else counted as dropped.
_QUEUE = """
    UPDATE alert_backlog SET version = version + 1, not_before = min(not_before, {now})
    WHERE item_id = {item};
    UPDATE alert_backlog_state
    SET dropped = dropped + 1, last_dropped = {item}, dropped_at = {now}
    WHERE NOT EXISTS (SELECT 1 FROM alert_backlog WHERE item_id = {item})
      AND (SELECT count(*) FROM alert_backlog) >= capacity;
    INSERT INTO alert_backlog (item_id, version, queued_at, not_before, attempts)
    SELECT {item}, 1, {now}, {now}, 0
    WHERE (SELECT count(*) FROM alert_backlog) < (SELECT capacity FROM alert_backlog_state)
    ON CONFLICT (item_id) DO NOTHING;
"""

SQL = f"""
-- Items to match against the saved searches: one row per item, written by the triggers below in
-- the item's own transaction and deleted by the transaction that records its alerts and stores
-- their notices. No foreign key to items on purpose: a deleted item's row is simply dropped by
-- the matcher, and the item's deletion never waits for (or deadlocks with) a matching.
CREATE TABLE alert_backlog (
    item_id     INTEGER PRIMARY KEY,
    version     INTEGER NOT NULL,     -- raised by every change; a matching settles its own only
    queued_at   REAL NOT NULL,        -- first queued (the bound on waiting for the embedding)
    not_before  REAL NOT NULL,        -- due from then (later: waiting for the picture, a retry)
    attempts    INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0)   -- failed matchings
);
CREATE INDEX alert_backlog_by_due ON alert_backlog(not_before, item_id);

-- The backlog's bound, and the items not queued because it was full (the matcher logs them).
CREATE TABLE alert_backlog_state (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    capacity      INTEGER NOT NULL CHECK (capacity > 0),
    dropped       INTEGER NOT NULL DEFAULT 0 CHECK (dropped >= 0),
    last_dropped  INTEGER,
    dropped_at    REAL
);
INSERT INTO alert_backlog_state (id, capacity, dropped) VALUES (1, 50000, 0);

CREATE TRIGGER alert_backlog_item_added AFTER INSERT ON items BEGIN
{_QUEUE.format(item="new.id", now=_NOW)}
END;

-- Only changes that can make a saved search match: words, price, visibility, seller, and more
-- stock (a sale lowers it, and the digests filled on first read touch none of these).
CREATE TRIGGER alert_backlog_item_changed AFTER UPDATE ON items
WHEN new.title IS NOT old.title OR new.description IS NOT old.description
  OR new.price_cents IS NOT old.price_cents OR new.public IS NOT old.public
  OR new.owner_id IS NOT old.owner_id OR new.stock > old.stock
BEGIN
{_QUEUE.format(item="new.id", now=_NOW)}
END;

-- Tags are rows of their own here (PostgreSQL has them in items.tags_text too).
CREATE TRIGGER alert_backlog_item_tagged AFTER INSERT ON item_tags BEGIN
{_QUEUE.format(item="new.item_id", now=_NOW)}
END;
"""
