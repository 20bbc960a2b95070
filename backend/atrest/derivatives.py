"""Provides :class:`DerivativeCodec`: thumbnails and previews sealed in the database's rows.

Listings read thumbnails from the database (one query per batch), so they stay there, sealed
like the blobs (:mod:`backend.atrest.envelope`, one segment each) and bound to their kind: a
thumbnail cannot pass for a preview. They are not bound to their row (the card queries do not
read the picture's hash), so someone able to write the database could swap two pictures'
thumbnails; nobody without the master key can read or forge one.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Final, Literal

from backend.atrest.envelope import SealBroken, Sealer, is_sealed
from backend.atrest.keys import WrongKey
from backend.catalogue.repository import ItemDraft
from protocol.errors import Internal

log = logging.getLogger(__name__)

Kind = Literal["thumbnail", "preview"]
_CONTEXTS: Final[dict[str, bytes]] = {
    "thumbnail": b"pixmart derivative thumbnail",
    "preview": b"pixmart derivative preview",
}


class DerivativeCodec:
    """Seals derivatives on their way into the database and opens them on their way out.

    Args:
        sealer: The server's sealer, or ``None`` for a shop that stores pictures unencrypted.
    """

    def __init__(self, sealer: Sealer | None = None) -> None:
        self.sealer = sealer
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
        try:
            return self.sealer.open(data, _CONTEXTS[kind])
        except (SealBroken, WrongKey) as exc:
            raise self._damaged(kind, str(exc)) from None

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
