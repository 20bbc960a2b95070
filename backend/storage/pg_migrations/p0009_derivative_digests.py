"""Provides PostgreSQL migration 9: the content hash and size of every thumbnail and preview."""

SQL = """
-- As SQLite's migration 8: the SHA-256 (hex) and size of each plain thumbnail and preview, so
-- listings name pictures by content without opening sealed bytes; NULL on older rows until the
-- catalogue first opens them.
ALTER TABLE pictures ADD COLUMN thumbnail_sha256 TEXT;
ALTER TABLE pictures ADD COLUMN thumbnail_size INTEGER;
ALTER TABLE picture_previews ADD COLUMN preview_sha256 TEXT;
ALTER TABLE picture_previews ADD COLUMN preview_size INTEGER;
"""
