"""Provides PostgreSQL migration 11: the durable backlog of items waiting to be matched against
saved searches (see SQLite's 10).

One trigger function queues the item; ``migrate-data`` sets ``pixmart.copying`` for its copy,
so the items it copies are not queued again (the source's backlog is copied as it stands).
"""

SQL = """
-- As SQLite's migration 10. Instances claim rows with FOR UPDATE SKIP LOCKED.
CREATE TABLE alert_backlog (
    item_id     BIGINT PRIMARY KEY,
    version     BIGINT NOT NULL,
    queued_at   DOUBLE PRECISION NOT NULL,
    not_before  DOUBLE PRECISION NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0)
);
CREATE INDEX alert_backlog_by_due ON alert_backlog(not_before, item_id);

CREATE TABLE alert_backlog_state (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    capacity      INTEGER NOT NULL CHECK (capacity > 0),
    dropped       BIGINT NOT NULL DEFAULT 0 CHECK (dropped >= 0),
    last_dropped  BIGINT,
    dropped_at    DOUBLE PRECISION
);
INSERT INTO alert_backlog_state (id, capacity, dropped) VALUES (1, 50000, 0);

-- A queued item is only marked changed (and due now): the UPDATE waits for a matching that
-- holds its row, so a change made meanwhile is matched again. A new item is queued while the
-- backlog holds fewer than its capacity (concurrent writers may pass it by one each), else
-- counted as dropped.
CREATE FUNCTION alert_backlog_queue() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    now_s DOUBLE PRECISION := extract(epoch FROM clock_timestamp());
BEGIN
    IF current_setting('pixmart.copying', true) = 'on' THEN
        RETURN NULL;
    END IF;
    UPDATE alert_backlog SET version = version + 1, not_before = least(not_before, now_s)
    WHERE item_id = NEW.id;
    IF FOUND THEN
        RETURN NULL;
    END IF;
    IF (SELECT count(*) FROM alert_backlog) >= (SELECT capacity FROM alert_backlog_state) THEN
        UPDATE alert_backlog_state
        SET dropped = dropped + 1, last_dropped = NEW.id, dropped_at = now_s;
        RETURN NULL;
    END IF;
    INSERT INTO alert_backlog (item_id, version, queued_at, not_before, attempts)
    VALUES (NEW.id, 1, now_s, now_s, 0)
    ON CONFLICT (item_id) DO UPDATE
    SET version = alert_backlog.version + 1,
        not_before = least(alert_backlog.not_before, EXCLUDED.not_before);
    RETURN NULL;
END;
$$;

CREATE TRIGGER alert_backlog_item_added AFTER INSERT ON items
FOR EACH ROW EXECUTE FUNCTION alert_backlog_queue();

-- Only changes that can make a saved search match (tags_text: the tags).
CREATE TRIGGER alert_backlog_item_changed AFTER UPDATE ON items
FOR EACH ROW WHEN (
    NEW.title IS DISTINCT FROM OLD.title OR NEW.description IS DISTINCT FROM OLD.description
    OR NEW.tags_text IS DISTINCT FROM OLD.tags_text OR NEW.price_cents <> OLD.price_cents
    OR NEW.public <> OLD.public OR NEW.owner_id <> OLD.owner_id OR NEW.stock > OLD.stock)
EXECUTE FUNCTION alert_backlog_queue();
"""
