"""Provides :class:`CardPictures`: the picture bytes a reply carries, and :class:`GetPictures`.

Cards and details come from the database naming their pictures (recorded hash and size) without
their bytes (:mod:`backend.catalogue.rows`). What a reply inlines follows the request's
:class:`~protocol.messages.catalogue.PictureMode` and, for ``UNSENT``, the connection's
:class:`~backend.sent_pictures.SentPictures`. Bytes come from the opened-derivative cache
(:class:`~backend.atrest.derivatives.DerivativeCodec`, keyed by content hash) and, for what it
lacks, from one query for the whole batch: a batch whose pictures are in memory, or are not
sent, costs the server no picture read and no decryption.

Rows written before hashes were recorded have none: their pictures are opened to learn it,
whatever the mode, and the hash is recorded (once, lazily, as SQL cannot hash sealed bytes).

:meth:`CardPictures.pictures` answers :class:`~protocol.messages.catalogue.GetPictures` by item
id: each item's access is checked as for ``GetItem``; a hash alone opens nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Final

from backend.accounts.service import Principal
from backend.atrest.derivatives import DerivativeCodec
from backend.catalogue.items import can_see
from backend.catalogue.repository import CatalogueRepository, DerivativeKind, DerivativeRow
from backend.sent_pictures import SentPictures
from protocol.errors import BadRequest
from protocol.messages.catalogue import (
    MAX_PREVIEWS_PER_REQUEST,
    ItemCard,
    ItemDetail,
    Picture,
    PictureKind,
    PictureMode,
    Pictures,
)

#: Bytes of pictures one :class:`Pictures` reply carries at most (the rest: ``more``).
REPLY_PICTURE_BYTES: Final = 4 * 1024 * 1024


class CardPictures:
    """Adds picture bytes to cards and details as a request's mode asks, and serves pictures.

    Args:
        items: Where the derivatives are stored.
        derivatives: Opens them, and keeps the opened ones in memory.
        reply_bytes: The most picture bytes one :class:`Pictures` reply carries.
    """

    def __init__(
        self,
        items: CatalogueRepository,
        derivatives: DerivativeCodec,
        *,
        reply_bytes: int = REPLY_PICTURE_BYTES,
    ) -> None:
        self._items = items
        self._derivatives = derivatives
        self.reply_bytes = reply_bytes

    async def fill_cards(
        self,
        cards: Sequence[ItemCard],
        mode: PictureMode = PictureMode.INLINE,
        sent: SentPictures | None = None,
    ) -> None:
        """Set each card's ``thumbnail`` bytes where ``mode`` inlines them, in place.

        Raises:
            Internal: a thumbnail to send does not open (the log says why).
        """
        # One loop per mode, no call per card: this runs for every card of every batch.
        unread: dict[int, ItemCard] = {}
        cached = self._derivatives.cached
        if mode is PictureMode.HASHES:
            unread = {card.id: card for card in cards if not card.thumbnail_sha256}
        else:
            record = sent if mode is PictureMode.UNSENT else None
            for card in cards:
                digest = card.thumbnail_sha256
                if not digest:
                    unread[card.id] = card  # its hash is learnt by opening it
                    continue
                if record is not None:
                    if digest in record:
                        continue
                    record.add(digest)
                data = cached("thumbnail", digest)
                if data is None:
                    unread[card.id] = card
                else:
                    card.thumbnail = data
        if not unread:
            return
        for row, data, digest in await self._read("thumbnail", unread):
            card = unread[row.item_id]
            if not card.thumbnail_sha256:
                card.thumbnail_sha256, card.thumbnail_size = digest, len(data)
                if not _inlined(digest, mode, sent):
                    continue
            card.thumbnail = data

    @staticmethod
    def shown(cards: list[ItemCard], mode: PictureMode) -> list[ItemCard]:
        """``cards`` less those whose item went between the listing and its picture's read,
        when every card must carry its picture (clients before content addressing cannot
        decode a card without one)."""
        if mode is not PictureMode.INLINE:
            return cards
        return [card for card in cards if card.thumbnail is not None]

    async def fill_detail(
        self,
        detail: ItemDetail,
        mode: PictureMode = PictureMode.INLINE,
        sent: SentPictures | None = None,
    ) -> None:
        """Set the detail's ``preview`` and ``thumbnail`` bytes where ``mode`` inlines them.

        Raises:
            Internal: a picture to send does not open (the log says why).
        """
        for kind in ("preview", "thumbnail"):
            known = detail.preview_sha256 if kind == "preview" else detail.thumbnail_sha256
            data, digest = await self._one(kind, detail.id, known, mode, sent)
            if kind == "preview":
                detail.preview, detail.preview_sha256 = data, digest
                if data is not None:
                    detail.preview_size = len(data)
            else:
                detail.thumbnail, detail.thumbnail_sha256 = data, digest
                if data is not None:
                    detail.thumbnail_size = len(data)

    async def _one(
        self,
        kind: DerivativeKind,
        item_id: int,
        digest: str,
        mode: PictureMode,
        sent: SentPictures | None,
    ) -> tuple[bytes | None, str]:
        """One item's derivative as ``mode`` sends it (bytes or ``None``) and its hash."""
        if digest:
            if not _inlined(digest, mode, sent):
                return None, digest
            data = self._derivatives.cached(kind, digest)
            if data is not None:
                return data, digest
        read = await self._read(kind, [item_id])
        if not read:
            return None, digest  # deleted meanwhile
        _, data, learnt = read[0]
        if not digest and not _inlined(learnt, mode, sent):
            return None, learnt
        return data, learnt

    async def pictures(
        self,
        principal: Principal,
        item_ids: Sequence[int],
        kind: PictureKind,
        sent: SentPictures | None = None,
    ) -> Pictures:
        """The pictures of those of ``item_ids`` that ``principal`` may see, in that order.

        Raises:
            BadRequest: more previews asked for than one request may.
            Internal: a picture does not open (the log says why).
        """
        if kind is PictureKind.PREVIEW and len(item_ids) > MAX_PREVIEWS_PER_REQUEST:
            raise BadRequest(f"Ask for at most {MAX_PREVIEWS_PER_REQUEST} previews at once")
        wanted = list(dict.fromkeys(item_ids))
        rows = {row.item_id: row for row in await self._items.derivatives(kind.value, wanted)}
        allowed = [rows[i] for i in wanted if i in rows and can_see(principal, rows[i])]
        shown = {row.item_id for row in allowed}
        reply = Pictures(id=0, pictures=[], missing=[i for i in wanted if i not in shown])
        budget = self.reply_bytes
        for row, data, digest in await self._open(kind.value, allowed):
            if reply.more or (reply.pictures and len(data) > budget):
                reply.more.append(row.item_id)  # the reply is full: asked for again
                continue
            budget -= len(data)
            reply.pictures.append(Picture(item_id=row.item_id, sha256=digest, data=data))
            if sent is not None:
                sent.add(digest)
        return reply

    async def _read(
        self, kind: DerivativeKind, item_ids: Iterable[int]
    ) -> list[tuple[DerivativeRow, bytes, str]]:
        """Read and open the stored derivatives of ``item_ids`` (one query)."""
        return await self._open(kind, await self._items.derivatives(kind, list(item_ids)))

    async def _open(
        self, kind: DerivativeKind, rows: Sequence[DerivativeRow]
    ) -> list[tuple[DerivativeRow, bytes, str]]:
        """Open ``rows`` (from memory when cached); record the hashes of rows without one."""
        opened: list[tuple[DerivativeRow, bytes, str]] = []
        learnt: list[tuple[str, str, int]] = []
        for row in rows:
            if row.digest:
                data = self._derivatives.open_known(row.data, kind, row.digest)
                opened.append((row, data, row.digest))
                continue
            data = self._derivatives.open(row.data, kind)
            digest = hashlib.sha256(data).hexdigest()
            learnt.append((row.picture_sha256, digest, len(data)))
            opened.append((row, data, digest))
        if learnt:
            await self._items.record_digests(kind, learnt)
        return opened


def _inlined(digest: str, mode: PictureMode, sent: SentPictures | None) -> bool:
    """Whether a picture goes inline; an ``UNSENT`` one is recorded as sent on the way."""
    if mode is PictureMode.INLINE:
        return True
    if mode is PictureMode.HASHES:
        return False
    if sent is None:
        return True
    if digest in sent:
        return False
    sent.add(digest)
    return True
