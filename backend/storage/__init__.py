"""Provides SQLite storage: the database handle, transactions and versioned migrations."""
