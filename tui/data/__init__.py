"""Provides the client-side data of the TUI: listings, pictures in memory, money."""

from __future__ import annotations

from tui.data.listing import Listing, ListingQuery
from tui.data.money import format_count, format_price, parse_price
from tui.data.thumbnails import PictureCache, decode_picture

__all__ = [
    "Listing",
    "ListingQuery",
    "PictureCache",
    "decode_picture",
    "format_count",
    "format_price",
    "parse_price",
]
