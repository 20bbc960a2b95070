"""Provides fast tests of the TUI's pure parts: money, listings, the status line, forms."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PIL import Image

from protocol.client import ConnectionState, ConnectionStatus
from protocol.listing_fields import parse_tags, title_from_filename
from protocol.messages.catalogue import ItemBatch, ItemCard, ListingFilters, SortOrder
from protocol.messages.live import ItemChanged
from protocol.money import format_price, parse_price
from tui.data import Listing, ListingQuery, PictureCache
from tui.dialogs import parse_stock
from tui.feedback import normalise_server_url
from tui.screens.upload import UploadForm, is_picture
from tui.widgets import describe_status, short_fingerprint, stock_label

FINGERPRINT = ":".join(f"{n:02X}" for n in range(32))


def card(item_id: int, **changes: object) -> ItemCard:
    fields: dict[str, object] = {
        "id": item_id,
        "title": f"Item {item_id}",
        "price_cents": 100 * item_id,
        "stock": 1,
        "public": True,
        "owner_id": 1,
        "owner_name": "ada",
        "tags": [],
        "width": 10,
        "height": 10,
        "created_at": 0.0,
        "thumbnail": b"",
    }
    fields.update(changes)
    return ItemCard(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("cents", "currency", "shown"),
    [
        (1250, "EUR", "€12.50"),
        (123456789, "USD", "$1,234,567.89"),
        (500, "JPY", "¥500"),
        (1250, "CHF", "12.50 CHF"),
        (0, "EUR", "€0.00"),
    ],
)
def test_prices_are_shown_in_the_server_currency(cents: int, currency: str, shown: str) -> None:
    assert format_price(cents, currency) == shown


@pytest.mark.parametrize(
    ("typed", "cents"),
    [("12", 1200), ("12.5", 1250), ("12,50", 1250), ("€1,200.00", 120000), (" 0 ", 0)],
)
def test_prices_are_read_as_people_type_them(typed: str, cents: int) -> None:
    assert parse_price(typed, "EUR") == cents


@pytest.mark.parametrize("typed", ["", "abc", "-1", "1.234"])
def test_wrong_prices_are_refused_in_words(typed: str) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        parse_price(typed, "EUR")


def test_a_listing_keeps_each_item_once_and_follows_live_changes() -> None:
    listing = Listing(ListingQuery(ListingFilters(tags=["cat"]), SortOrder.PRICE_UP))
    added = listing.absorb(ItemBatch(id=1, items=[card(1), card(2)], cursor="c1", total=4))
    assert [c.id for c in added] == [1, 2] and listing.total == 4 and not listing.exhausted
    # A batch re-sent after a drop, overlapping what is there, adds only what is new.
    added = listing.absorb(ItemBatch(id=2, items=[card(2), card(3), card(4)], cursor=None))
    assert [c.id for c in added] == [3, 4] and listing.exhausted
    assert [c.id for c in listing.items] == [1, 2, 3, 4]
    event = ItemChanged(item_id=3, title="New", price_cents=7, stock=0, public=True)
    assert listing.apply_change(event) == 2
    assert listing.get(3) == card(3, title="New", price_cents=7, stock=0)
    assert listing.remove(2) == 1 and listing.index_of(4) == 2 and listing.total == 3
    assert listing.query.describe() == "tags: cat · cheapest first"


def test_the_picture_cache_drops_the_least_recently_used() -> None:
    cache = PictureCache(capacity=2)
    pictures = [Image.new("RGB", (4, 4)) for _ in range(3)]
    cache.put(1, pictures[0])
    cache.put(2, pictures[1])
    assert cache.get(1) is pictures[0]  # 1 is now the most recent
    cache.put(3, pictures[2])
    assert 2 not in cache and 1 in cache and 3 in cache and len(cache) == 2


def test_the_connection_line_says_what_is_going_on() -> None:
    connected = ConnectionStatus(
        ConnectionState.CONNECTED, "h:1", tls_version="TLSv1.3", fingerprint=FINGERPRINT
    )
    assert describe_status(connected) == "● connected · TLSv1.3 · 00:01:02…"
    now = time.time()
    waiting = ConnectionStatus(
        ConnectionState.RECONNECTING, "h:1", next_attempt_at=now + 2.2, reason="the link dropped"
    )
    assert describe_status(waiting, now=now) == "◐ reconnecting in 3 s · the link dropped"
    offline = ConnectionStatus(ConnectionState.OFFLINE, "h:1", reason="first line\nsecond line")
    assert describe_status(offline) == "✕ offline: first line"
    assert short_fingerprint(FINGERPRINT, pairs=2) == "00:01…"


def test_form_fields_are_read_strictly() -> None:
    assert parse_tags(" cat, Print ,cat,, ") == ["cat", "Print"]
    with pytest.raises(ValueError):
        parse_tags(",".join(f"t{n}" for n in range(21)))
    assert parse_stock("1,000") == 1000
    with pytest.raises(ValueError):
        parse_stock("-2")
    assert stock_label(0) == "sold out" and stock_label(1) == "1 left"


def test_uploads_name_pictures_after_their_files() -> None:
    form = UploadForm(title="", description="", price_cents=1, stock=1, tags=[], public=True)
    assert form.metadata_for(Path("sunset_beach-02.jpg"), 1, 2).title == "Sunset beach 02"
    titled = UploadForm(title="Dune", description="", price_cents=1, stock=1, tags=[], public=True)
    assert titled.metadata_for(Path("a.png"), 2, 3).title == "Dune 2"
    assert titled.metadata_for(Path("a.png"), 1, 1).title == "Dune"
    assert is_picture(Path("x.JPEG")) and not is_picture(Path("notes.txt"))
    assert title_from_filename(Path("_.png")) == "Untitled"


def test_server_addresses_are_completed() -> None:
    assert normalise_server_url("127.0.0.1:8765") == "wss://127.0.0.1:8765"
    assert normalise_server_url(" wss://shop.example:443/ ") == "wss://shop.example:443"
    with pytest.raises(ValueError, match="wss"):
        normalise_server_url("http://shop.example")
