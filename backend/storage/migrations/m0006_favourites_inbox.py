"""Provides migration 6: each user's favourite items and their inbox of notices."""

SQL = """
-- One row per item a user keeps as a favourite. item_id has no foreign key on purpose, as in
-- cart_lines: when the seller deletes the item the favourite stays, with the title and price
-- seen when it was added, so the list can say what happened instead of silently losing it.
CREATE TABLE favourites (
    id           INTEGER PRIMARY KEY,                       -- newest first: keyset order
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    item_id      INTEGER NOT NULL,
    title        TEXT NOT NULL,                             -- as seen when added
    price_cents  INTEGER NOT NULL CHECK (price_cents >= 0), -- as seen when added
    added_at     REAL NOT NULL,
    UNIQUE (user_id, item_id)
);
-- "My favourites", newest first.
CREATE INDEX favourites_by_user ON favourites(user_id, id);
-- Who to tell when an item's price drops or it comes back in stock.
CREATE INDEX favourites_by_item ON favourites(item_id, user_id);

-- A user's inbox: notices the server stored for them (price drops, alerts, ...). item_id has no
-- foreign key: a notice outlives its item, and says so when listed.
CREATE TABLE notices (
    id          INTEGER PRIMARY KEY,                        -- newest first: keyset order
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    item_id     INTEGER,
    text        TEXT NOT NULL,
    created_at  REAL NOT NULL,
    is_read     INTEGER NOT NULL DEFAULT 0 CHECK (is_read IN (0, 1))
);
CREATE INDEX notices_by_user ON notices(user_id, id);
-- The unread count in every client's header, without reading the read ones.
CREATE INDEX notices_unread ON notices(user_id) WHERE is_read = 0;
"""
