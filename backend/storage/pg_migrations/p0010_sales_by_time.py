"""Provides PostgreSQL migration 10: each order line keeps its order's time (see SQLite's 9)."""

SQL = """
-- As SQLite's migration 9: the order's time on each line, so a seller's sales over a window
-- are an index range on (seller, time) instead of every line the seller ever sold.
ALTER TABLE order_lines ADD COLUMN sold_at DOUBLE PRECISION;
UPDATE order_lines AS l SET sold_at = o.created_at FROM orders AS o WHERE o.id = l.order_id;
ALTER TABLE order_lines ALTER COLUMN sold_at SET NOT NULL;
CREATE INDEX order_lines_by_seller_time ON order_lines(seller_id, sold_at);
"""
