"""Provides the client-side data of the TUI: listings (similar-picture ones too), pictures in
memory, the cart's words, counts and sizes."""

from __future__ import annotations

from tui.data.commerce import LineNote, line_notes
from tui.data.listing import Listing, ListingQuery
from tui.data.numbers import format_count, format_size
from tui.data.similar import SimilarListing, SimilarQuery, similarity_label
from tui.data.thumbnails import PictureCache, decode_picture

__all__ = [
    "LineNote",
    "Listing",
    "ListingQuery",
    "PictureCache",
    "SimilarListing",
    "SimilarQuery",
    "decode_picture",
    "format_count",
    "format_size",
    "line_notes",
    "similarity_label",
]
