"""Provides counts and file sizes as people read them (money is :mod:`protocol.money`'s)."""

from __future__ import annotations


def format_count(count: int) -> str:
    """``1203`` → ``1,203``."""
    return f"{count:,}"


def format_size(size: int) -> str:
    """``245760`` → ``240 KB``."""
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


__all__ = ["format_count", "format_size"]
