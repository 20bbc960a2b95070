"""Provides migration 8: the content hash and size of every thumbnail and preview."""

SQL = """
-- Cards and item details name their pictures by content (protocol PictureMode), and the server
-- must know a picture's hash without reading or opening its sealed bytes: the SHA-256 (hex) and
-- size of the plain WebP, written with the picture. NULL on rows written before: the catalogue
-- fills them in the first time it opens such a picture (backend/catalogue/card_pictures.py), as
-- SQL cannot hash bytes sealed under the master key.
ALTER TABLE pictures ADD COLUMN thumbnail_sha256 TEXT;
ALTER TABLE pictures ADD COLUMN thumbnail_size INTEGER;
ALTER TABLE picture_previews ADD COLUMN preview_sha256 TEXT;
ALTER TABLE picture_previews ADD COLUMN preview_size INTEGER;
"""
