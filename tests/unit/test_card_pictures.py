"""CardPictures: what a reply inlines per mode, from memory or one read, and what it leaves out."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from typing import Any, cast

from backend.atrest.derivatives import DerivativeCodec
from backend.catalogue.card_pictures import CardPictures
from backend.catalogue.repository import CatalogueRepository, DerivativeKind, DerivativeRow
from backend.sent_pictures import SentPictures
from protocol.messages.catalogue import ItemCard, PictureMode


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FakeItems:
    """The two repository methods CardPictures uses, over rows in memory."""

    def __init__(self, rows: dict[int, DerivativeRow]) -> None:
        self.rows = rows
        self.reads: list[list[int]] = []
        self.recorded: list[tuple[str, str, int]] = []

    async def derivatives(
        self, kind: DerivativeKind, item_ids: Sequence[int]
    ) -> list[DerivativeRow]:
        self.reads.append(list(item_ids))
        return [self.rows[i] for i in item_ids if i in self.rows]

    async def record_digests(
        self, kind: DerivativeKind, digests: Sequence[tuple[str, str, int]]
    ) -> None:
        self.recorded.extend(digests)


def setup(count: int, *, digests: bool = True) -> tuple[CardPictures, FakeItems, list[bytes]]:
    pictures = [os.urandom(500 + n) for n in range(count)]
    rows = {
        n + 1: DerivativeRow(
            item_id=n + 1,
            owner_id=1,
            public=True,
            picture_sha256=f"{n:064x}",
            digest=sha(data) if digests else None,
            data=data,
        )
        for n, data in enumerate(pictures)
    }
    items = FakeItems(rows)
    return CardPictures(cast(CatalogueRepository, items), DerivativeCodec()), items, pictures


def cards(pictures: list[bytes], *, digests: bool = True) -> list[ItemCard]:
    fields: dict[str, Any] = dict(
        title="t", price_cents=1, stock=1, public=True, owner_id=1, owner_name="a", tags=[]
    )
    return [
        ItemCard(
            id=n + 1,
            width=1,
            height=1,
            created_at=0.0,
            thumbnail_sha256=sha(data) if digests else "",
            thumbnail_size=len(data) if digests else 0,
            **fields,
        )
        for n, data in enumerate(pictures)
    ]


async def test_unsent_inlines_each_picture_once_per_connection_read_once() -> None:
    card_pictures, items, pictures = setup(3)
    sent = SentPictures()
    first = cards(pictures)
    await card_pictures.fill_cards(first, PictureMode.UNSENT, sent)
    assert [c.thumbnail for c in first] == pictures and items.reads == [[1, 2, 3]]
    again = cards(pictures)
    await card_pictures.fill_cards(again, PictureMode.UNSENT, sent)
    assert [c.thumbnail for c in again] == [None] * 3
    inline = cards(pictures)
    await card_pictures.fill_cards(inline, PictureMode.INLINE)
    assert [c.thumbnail for c in inline] == pictures and len(items.reads) == 1  # from memory


async def test_hashes_only_reads_nothing_but_rows_without_a_recorded_hash() -> None:
    card_pictures, items, pictures = setup(2)
    named = cards(pictures)
    await card_pictures.fill_cards(named, PictureMode.HASHES)
    assert items.reads == [] and [c.thumbnail for c in named] == [None, None]

    card_pictures, items, pictures = setup(2, digests=False)
    old = cards(pictures, digests=False)
    await card_pictures.fill_cards(old, PictureMode.HASHES)
    assert [c.thumbnail_sha256 for c in old] == [sha(p) for p in pictures]
    assert [c.thumbnail for c in old] == [None, None]
    assert items.recorded == [(f"{n:064x}", sha(p), len(p)) for n, p in enumerate(pictures)]


async def test_a_card_whose_item_went_meanwhile_is_left_out_of_inline_replies() -> None:
    card_pictures, items, pictures = setup(2)
    del items.rows[2]
    listed = cards(pictures)
    await card_pictures.fill_cards(listed, PictureMode.INLINE)
    assert [c.id for c in card_pictures.shown(listed, PictureMode.INLINE)] == [1]
    assert len(card_pictures.shown(listed, PictureMode.HASHES)) == 2
