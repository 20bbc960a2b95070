"""Provides the checks on what sellers write: titles, descriptions and listing metadata.

Titles and descriptions are shown in other people's terminals, so control characters (escape
sequences that could redraw or retitle a terminal), bidirectional controls and invisible
characters are refused, not stored (see :mod:`backend.safetext`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from backend.catalogue.tags import normalise_tags
from backend.safetext import check_display_text
from protocol.errors import BadRequest
from protocol.messages.catalogue import ItemMetadata

MAX_TITLE: Final = 200
MAX_DESCRIPTION: Final = 10_000


@dataclass(frozen=True, slots=True)
class Listing:
    """Validated, normalised listing fields of an item."""

    title: str
    description: str
    price_cents: int
    stock: int
    tags: tuple[str, ...]
    public: bool


def clean_title(title: str) -> str:
    """Return the title trimmed, or raise :class:`BadRequest` if it is empty or unsafe."""
    cleaned = title.strip()
    if not 1 <= len(cleaned) <= MAX_TITLE:
        raise BadRequest(f"An item needs a title of 1 to {MAX_TITLE} characters")
    return check_display_text(cleaned, "title")


def clean_description(description: str) -> str:
    """Return the description trimmed, or raise :class:`BadRequest` if it is unsafe."""
    cleaned = description.strip()
    if len(cleaned) > MAX_DESCRIPTION:
        raise BadRequest(f"A description has at most {MAX_DESCRIPTION:,} characters")
    # A description may still hold line breaks and tabs.
    return check_display_text(cleaned, "description", multiline=True)


def validate_metadata(metadata: ItemMetadata) -> Listing:
    """Return the listing an upload asks for, validated and normalised.

    Raises:
        BadRequest: a field is invalid; the message names it.
    """
    # Prices and stock are range-checked by the message types already.
    return Listing(
        title=clean_title(metadata.title),
        description=clean_description(metadata.description),
        price_cents=metadata.price_cents,
        stock=metadata.stock,
        tags=normalise_tags(metadata.tags),
        public=metadata.public,
    )
