"""Provides the catalogue: items, uploads, tags, browse and text search."""
