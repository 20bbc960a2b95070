"""Provides :class:`GallerySnapshots`: the last gallery of each person on each server, on disk.

On reopen the app shows the gallery the person last saw at once, from this snapshot and the
picture cache, while the server is asked afresh. A snapshot holds the first cards of the
unfiltered gallery (their fields and thumbnail hashes, never the pictures themselves) and is
private twice over:

- it is one file per user of a server's namespace, mode 0600 in a 0700 folder;
- it is shown only to the session it was saved under: it keeps a hash of that session's token,
  and the app offers it only when the token saved for the server hashes the same. Someone else
  logging in on the same machine (a new token) never sees it, even before the server answers.

Cards of other people's private items never enter a snapshot (the server shows such items to
their owner alone, so a snapshot holding one would be a bug; it is filtered out all the same).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import time
from pathlib import Path
from typing import Final

import msgspec

from protocol.messages.accounts import UserInfo
from protocol.messages.catalogue import ItemCard

#: Version of the snapshot file format; files of another version are ignored.
SNAPSHOT_VERSION: Final = 1
#: Cards kept per snapshot: two batches of the default size, more than a screenful.
MAX_CARDS: Final = 48
#: A snapshot file larger than this is not read (it cannot be one of ours).
MAX_FILE_BYTES: Final = 4 * 1024 * 1024


class SavedGallery(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """One person's last gallery on one server.

    Attributes:
        version: :data:`SNAPSHOT_VERSION`.
        user: who saw it.
        token_digest: SHA-256 (hex) of the session token it was saved under.
        saved_at: wall-clock time of the save.
        total: how many items the listing had then.
        cards: the first cards, without their picture bytes.
        pictures: each card's thumbnail hash, in the same order ("" if it had none).
    """

    version: int
    user: UserInfo
    token_digest: str
    saved_at: float
    total: int | None
    cards: list[ItemCard]
    pictures: list[str]


def token_digest(token: str) -> str:
    """The hash of a session token that a snapshot is bound to (never the token itself)."""
    return hashlib.sha256(token.encode()).hexdigest()


def may_keep(card: ItemCard, user: UserInfo) -> bool:
    """Whether ``card`` may go into ``user``'s snapshot: public, or ``user``'s own."""
    return card.public or card.owner_id == user.id


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(SavedGallery)


class GallerySnapshots:
    """The snapshots of one server's namespace (blocking file I/O: call in a thread).

    Args:
        folder: ``<cache dir>/galleries/<server namespace>``.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def save(
        self,
        user: UserInfo,
        token: str,
        cards: list[ItemCard],
        pictures: list[str],
        total: int | None,
        *,
        now: float | None = None,
    ) -> SavedGallery:
        """Write ``user``'s snapshot atomically (a temporary file renamed over the old one).

        Args:
            cards: the gallery's first cards, in order (only :data:`MAX_CARDS` are kept, and
                none of another person's private items).
            pictures: each card's thumbnail hash.
        """
        kept = [
            (msgspec.structs.replace(card, thumbnail=None), digest)
            for card, digest in zip(cards, pictures, strict=True)
            if may_keep(card, user)
        ][:MAX_CARDS]
        saved = SavedGallery(
            version=SNAPSHOT_VERSION,
            user=user,
            token_digest=token_digest(token),
            saved_at=time.time() if now is None else now,
            total=total,
            cards=[card for card, _ in kept],
            pictures=[digest for _, digest in kept],
        )
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self._path(user.id)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(_encoder.encode(saved))
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        return saved

    def load(self, token: str) -> SavedGallery | None:
        """The snapshot saved under ``token``'s session, if any (unreadable files are skipped)."""
        wanted = token_digest(token)
        try:
            names = [
                entry.path for entry in os.scandir(self.folder) if entry.name.endswith(".gallery")
            ]
        except FileNotFoundError:
            return None
        for name in names:
            saved = _read(Path(name))
            if saved is not None and secrets.compare_digest(saved.token_digest, wanted):
                return saved
        return None

    def forget(self, user_id: int) -> None:
        """Delete ``user_id``'s snapshot (after a logout: the next person starts afresh)."""
        with contextlib.suppress(FileNotFoundError):
            self._path(user_id).unlink()

    def _path(self, user_id: int) -> Path:
        return self.folder / f"user-{user_id}.gallery"


def _read(path: Path) -> SavedGallery | None:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError:
        return None
    if len(data) > MAX_FILE_BYTES:
        return None
    try:
        saved = _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if saved.version != SNAPSHOT_VERSION or len(saved.cards) != len(saved.pictures):
        return None
    # A file edited by hand (or by someone else) could hold others' private cards: drop them.
    keep = [i for i, card in enumerate(saved.cards) if may_keep(card, saved.user)]
    saved.cards = [saved.cards[i] for i in keep]
    saved.pictures = [saved.pictures[i] for i in keep]
    return saved


__all__ = [
    "MAX_CARDS",
    "SNAPSHOT_VERSION",
    "GallerySnapshots",
    "SavedGallery",
    "may_keep",
    "token_digest",
]
