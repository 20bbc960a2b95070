"""Provides :class:`DerivativeCodec`: thumbnails and previews sealed in the database's rows.

Listings read thumbnails from the database (one query per batch), so they stay there, sealed
like the blobs (:mod:`backend.atrest.envelope`, one segment each) and bound to their kind: a
thumbnail cannot pass for a preview. They are not bound to their row (the card queries do not
read the picture's hash), so someone able to write the database could swap two pictures'
thumbnails; nobody without the master key can read or forge one.

Opened derivatives are kept in memory (:data:`OPENED_BYTES` at most, least recently used go
first): a listing shows the same thumbnails again and again, and decrypting one costs about as
much as everything else its card needs. Where the database records the derivative's content
hash (its row's ``thumbnail_sha256`` or ``preview_sha256``), the cache is keyed by it: a listing
then finds the bytes without reading the sealed column at all (:meth:`DerivativeCodec.cached`).
The hash and the sealed bytes come from the same row, written together; they are not hashed
again on the way out (that cost as much as the rest of a batch): the envelope authenticates the
bytes, and clients check every picture against its hash, so a row whose columns were tampered
with shows as an error on the client, never as another picture. Without a recorded hash they are
looked up by their sealed header, which holds a data key made for that one derivative: a hit is
the derivative that header was sealed with. Either way the cache never serves bytes nobody
sealed. Damage to a derivative's segment shows when it is next opened from the database.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import replace
from typing import Final, Literal

from backend.atrest.envelope import HEADER_BYTES, SealBroken, Sealer, is_sealed
from backend.atrest.keys import WrongKey
from backend.catalogue.repository import ItemDraft
from protocol.errors import Internal

log = logging.getLogger(__name__)

Kind = Literal["thumbnail", "preview"]
_CONTEXTS: Final[dict[str, bytes]] = {
    "thumbnail": b"pixmart derivative thumbnail",
    "preview": b"pixmart derivative preview",
}
#: Bytes of opened derivatives kept in memory: some thousands of thumbnails.
OPENED_BYTES: Final = 64 * 1024 * 1024


class _OpenedCache:
    """The most recently opened derivatives, up to ``budget`` bytes, by kind and content hash
    (or sealed header, for rows that record no hash).

    Locked: the catalogue opens derivatives on the event loop, background jobs in threads.
    """

    def __init__(self, budget: int) -> None:
        self._budget = budget
        self._bytes = 0
        self._entries: OrderedDict[tuple[str, bytes | str], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, bytes | str]) -> bytes | None:
        with self._lock:
            data = self._entries.get(key)
            if data is not None:
                self._entries.move_to_end(key)
            return data

    def put(self, key: tuple[str, bytes | str], data: bytes) -> None:
        if len(data) > self._budget // 16:
            return  # one large preview must not push out many thumbnails
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = data
            self._bytes += len(data)
            while self._bytes > self._budget:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= len(dropped)


class DerivativeCodec:
    """Seals derivatives on their way into the database and opens them on their way out.

    Args:
        sealer: The server's sealer, or ``None`` for a shop that stores pictures unencrypted.
    """

    def __init__(self, sealer: Sealer | None = None) -> None:
        self.sealer = sealer
        self._opened = _OpenedCache(OPENED_BYTES)
        #: Rows written before encryption may still hold plain derivatives (the background job
        #: seals them); until it is done they are served as they are.
        self.plaintext_left = sealer is None

    def seal(self, data: bytes, kind: Kind) -> bytes:
        """``data`` as the database keeps it."""
        if self.sealer is None:
            return data
        return self.sealer.seal(data, _CONTEXTS[kind])

    def seal_draft(self, draft: ItemDraft) -> ItemDraft:
        """``draft`` with its new picture's thumbnail and preview sealed (if it brings one)."""
        picture = draft.picture
        if picture is None or self.sealer is None:
            return draft
        sealed = replace(
            picture,
            thumbnail=self.seal(picture.thumbnail, "thumbnail"),
            preview=self.seal(picture.preview, "preview"),
        )
        return replace(draft, picture=sealed)

    def open(self, data: bytes, kind: Kind) -> bytes:
        """The picture bytes of a stored derivative.

        Raises:
            Internal: it does not open (the log says why, once); its bytes are never served.
        """
        if not is_sealed(data):
            if self.plaintext_left:
                return data
            raise self._damaged(kind, "stored unsealed in an encrypted shop")
        if self.sealer is None:
            raise self._damaged(kind, "sealed, but this server runs without a master key")
        key = (kind, data[:HEADER_BYTES])
        opened = self._opened.get(key)
        if opened is not None:
            return opened
        try:
            opened = self.sealer.open(data, _CONTEXTS[kind])
        except (SealBroken, WrongKey) as exc:
            raise self._damaged(kind, str(exc)) from None
        self._opened.put(key, opened)
        return opened

    def cached(self, kind: Kind, sha256: str) -> bytes | None:
        """The opened derivative whose content hash is ``sha256``, if it is in memory."""
        return self._opened.get((kind, sha256))

    def open_known(self, data: bytes, kind: Kind, sha256: str) -> bytes:
        """The picture bytes of a stored derivative whose row records their hash ``sha256``,
        kept in memory under that hash (see the module docstring for why it is not checked).

        Raises:
            Internal: it does not open (the log says why, once).
        """
        key = (kind, sha256)
        opened = self._opened.get(key)
        if opened is not None:
            return opened
        if not is_sealed(data) and not self.plaintext_left:
            raise self._damaged(kind, "stored unsealed in an encrypted shop")
        if is_sealed(data):
            if self.sealer is None:
                raise self._damaged(kind, "sealed, but this server runs without a master key")
            try:
                opened = self.sealer.open(data, _CONTEXTS[kind])
            except (SealBroken, WrongKey) as exc:
                raise self._damaged(kind, str(exc)) from None
        else:
            opened = data
        self._opened.put(key, opened)
        return opened

    def rewrap(self, data: bytes, kind: Kind) -> bytes | None:
        """``data`` with its data key wrapped under the current master key, or ``None`` when
        it is already (or is not sealed, or there is no sealer)."""
        if self.sealer is None or not is_sealed(data):
            return None
        header = self.sealer.rewrap_header(data, _CONTEXTS[kind])
        return None if header is None else header + data[len(header) :]

    @staticmethod
    def _damaged(kind: str, why: str) -> Internal:
        log.error("a stored %s does not open: %s", kind, why)
        return Internal(f"A stored {kind} cannot be read on the server")


#: For code that stores no derivatives, and shops without encryption.
PLAIN: Final = DerivativeCodec()
