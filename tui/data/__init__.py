"""Provides the client-side data of the TUI: listings (similar-picture ones too), pictures in
memory, money, the cart."""

from __future__ import annotations

from tui.data.commerce import Batches, LineNote, line_notes
from tui.data.listing import Listing, ListingQuery
from tui.data.money import format_count, format_price, parse_price
from tui.data.similar import SimilarListing, SimilarQuery, similarity_label
from tui.data.thumbnails import PictureCache, decode_picture

__all__ = [
    "Batches",
    "LineNote",
    "Listing",
    "ListingQuery",
    "PictureCache",
    "SimilarListing",
    "SimilarQuery",
    "decode_picture",
    "format_count",
    "format_price",
    "line_notes",
    "parse_price",
    "similarity_label",
]
