"""Provides accounts: password hashing, login throttling, sessions and the account service."""
