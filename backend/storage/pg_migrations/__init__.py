"""PostgreSQL schema migrations: one module per version, ``pNNNN_name.py`` with an ``SQL`` string.

They mirror the SQLite migrations of :mod:`backend.storage.migrations` table for table, so that
``pixmart-server migrate-data`` can copy a shop across; where the engines differ (text search,
vectors, identity columns) the comments say how.
"""
