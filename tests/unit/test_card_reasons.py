"""A card says why it is in its listing: how similar it is, or what the picture looks like."""

from __future__ import annotations

from protocol.messages.catalogue import ItemCard
from tui.data.reasons import card_reason


def card(**fields: object) -> ItemCard:
    base: dict[str, object] = {
        "id": 1,
        "title": "Picture 1",
        "price_cents": 100,
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
    return ItemCard(**{**base, **fields})  # type: ignore[arg-type]


def test_a_card_says_how_similar_or_what_it_looks_like() -> None:
    assert card_reason(card(score=0.934)) == "93% similar"
    assert card_reason(card(looks_like="golden retriever")) == "looks like: golden retriever"
    assert card_reason(card()) == ""
