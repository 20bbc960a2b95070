"""Provides migration 9: each order line keeps its order's time, for a seller's sales by date."""

SQL = """
-- The seller dashboard sums a seller's lines over a window of days. With the time on the line,
-- an index range on (seller, time) reads only the window's lines; through orders.created_at it
-- had to read every line the seller ever sold. Lines never change after checkout, and checkout
-- writes the order's created_at here too.
ALTER TABLE order_lines ADD COLUMN sold_at REAL NOT NULL DEFAULT 0;
UPDATE order_lines SET sold_at = (SELECT o.created_at FROM orders AS o WHERE o.id = order_id);
CREATE INDEX order_lines_by_seller_time ON order_lines(seller_id, sold_at);
"""
