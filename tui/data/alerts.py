"""Provides the saving of what a screen lists as a saved search that alerts.

The search screen saves its form's filters; the similar screen its example (the picture sent, or
the item) with the filters, at the server's default similarity. New matches then reach the
person's inbox.
"""

from __future__ import annotations

from protocol.alerts_client import save_search
from protocol.client import Session
from protocol.messages.alerts import SavedSearch
from protocol.saved_searches import describe_saved
from tui.data.listing import ListingQuery
from tui.data.similar import SimilarQuery


async def save_listing(session: Session, query: ListingQuery) -> SavedSearch:
    """Save ``query`` (its filters, and the example of a similar-picture query).

    Raises:
        PixmartError: the server refused it (e.g. ``conflict``: too many saved searches).
    """
    if isinstance(query, SimilarQuery):
        return await save_search(
            session,
            query.filters,
            like_image=query.picture,
            like_item_id=query.item_id,
            like_label=query.label.strip("“”")[:200],
        )
    return await save_search(session, query.filters)


def saved_message(saved: SavedSearch, currency: str) -> str:
    """What the person is told once a search is saved."""
    return (
        f"Saved search #{saved.id}: {describe_saved(saved, currency)}. "
        "New matches will reach your inbox."
    )
