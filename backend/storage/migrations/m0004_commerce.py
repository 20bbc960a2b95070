"""Provides migration 4: carts, orders and order lines."""

SQL = """
-- One row per item in a user's cart. item_id has no foreign key on purpose: when the seller
-- deletes the item the line stays, with the title and price seen when it was added, so the cart
-- can say what happened instead of silently losing it.
CREATE TABLE cart_lines (
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    item_id      INTEGER NOT NULL,
    quantity     INTEGER NOT NULL CHECK (quantity >= 1),
    title        TEXT NOT NULL,                          -- as seen when added
    price_cents  INTEGER NOT NULL CHECK (price_cents >= 0),  -- as seen when added
    added_at     REAL NOT NULL,
    updated_at   REAL NOT NULL,
    PRIMARY KEY (user_id, item_id)
) WITHOUT ROWID;

-- A placed order. The checkout key is chosen by the client; a retried checkout finds the order
-- it already placed through this unique pair instead of placing a second one.
CREATE TABLE orders (
    id            INTEGER PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users(id),
    checkout_key  TEXT NOT NULL,
    total_cents   INTEGER NOT NULL CHECK (total_cents >= 0),
    currency      TEXT NOT NULL,
    created_at    REAL NOT NULL,
    UNIQUE (user_id, checkout_key)
);
-- "My orders", newest first (ids grow with time: writes are serialised).
CREATE INDEX orders_by_user ON orders(user_id, id);

-- What was bought, as it was when bought. item_id has no foreign key: deleting an item must
-- keep past orders and sales readable, so title, seller and price paid are copied here.
CREATE TABLE order_lines (
    id                INTEGER PRIMARY KEY,
    order_id          INTEGER NOT NULL REFERENCES orders(id),
    item_id           INTEGER NOT NULL,
    seller_id         INTEGER NOT NULL REFERENCES users(id),
    title             TEXT NOT NULL,
    quantity          INTEGER NOT NULL CHECK (quantity >= 1),
    unit_price_cents  INTEGER NOT NULL CHECK (unit_price_cents >= 0),
    UNIQUE (order_id, item_id)
);
-- A seller's sales, newest first.
CREATE INDEX order_lines_by_seller ON order_lines(seller_id, id);
"""
