"""Provides every message type of the wire protocol, grouped by domain."""
