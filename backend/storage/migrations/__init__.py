"""Provides the schema migrations: module ``mNNNN_name`` holds ``SQL`` for version NNNN.

Versions are reserved per domain so work can land in any order: 1 accounts, 2 catalogue,
3 vision, 4 commerce. A migration is never edited once released; add the next number instead.
"""
