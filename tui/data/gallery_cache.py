"""Provides :class:`GalleryCache`: what the client keeps on disk of a server, and how fresh the
gallery on screen is.

The app owns one. For the server in use it holds the picture cache (:class:`DiskPictureCache`,
pictures by hash) and the snapshots of the last gallery (:class:`GallerySnapshots`), both under
the server's namespace (address and trust identity). On reopen :meth:`recall` turns the snapshot
of the saved session into cards with their pictures, for the gallery to show at once; the app
then calls :meth:`confirm` when the server has resumed the session, and the gallery reconciles
with what the server says. :attr:`changes` tells the gallery whether what it shows is live,
being refreshed, or all there is while offline.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from textual.app import App
from textual.signal import Signal

from protocol.client import ConnectionState, ConnectionStatus, Session
from protocol.messages.accounts import UserInfo
from protocol.messages.catalogue import ItemCard
from tui.data.gallery_snapshot import GallerySnapshots, SavedGallery, may_keep
from tui.data.picture_cache import DEFAULT_LIMIT_BYTES, DiskPictureCache, server_namespace
from tui.data.picture_store import CachedPictures


class Freshness(enum.Enum):
    """How current the gallery on screen is."""

    #: As the server last said (live events keep it so).
    LIVE = "live"
    #: From the snapshot of the last visit; the server is being asked.
    REFRESHING = "refreshing"
    #: The server cannot be reached; what is on screen is what was loaded or saved.
    OFFLINE = "offline"


@dataclass(frozen=True)
class WarmGallery:
    """A saved gallery ready to show: the snapshot and its cards with the pictures found."""

    saved: SavedGallery
    cards: list[ItemCard]


def thumbnail_digest(card: ItemCard) -> str:
    """The SHA-256 (hex) of a card's thumbnail, as the server named it or from its bytes; ``""``
    when the card has neither (a server before content addressing, an item gone)."""
    if card.thumbnail_sha256:
        return card.thumbnail_sha256
    return hashlib.sha256(card.thumbnail).hexdigest() if card.thumbnail else ""


class GalleryCache:
    """The on-disk memory of the server in use, and the freshness of the gallery shown.

    Args:
        app: owns the signals.
        root: the client's cache dir (``pictures/`` and ``galleries/`` go beneath it).
        limit_bytes: the picture cache's bound.
    """

    def __init__(self, app: App[Any], root: Path, *, limit_bytes: int = DEFAULT_LIMIT_BYTES):
        self.root = root
        self.limit_bytes = limit_bytes
        #: The server's pictures (memory in front of disk): the session's picture store.
        self.pictures: CachedPictures | None = None
        self._snapshots: GallerySnapshots | None = None
        self._server: tuple[str, str] | None = None
        #: The saved gallery recalled at start-up, until a gallery takes it.
        self._warm: WarmGallery | None = None
        #: Who the shown snapshot belongs to, until the server confirms the session.
        self.provisional: UserInfo | None = None
        #: When the gallery on screen was saved, if it came from a snapshot.
        self.saved_at: float | None = None
        self.freshness = Freshness.LIVE
        #: Whether the link is down (reconnecting, or given up); a first connect is not down.
        self._down = False
        #: Published when :attr:`freshness` changes.
        self.changes: Signal[Freshness] = Signal(app, "gallery-freshness")
        #: Published when the server confirmed the session a snapshot was shown for.
        self.confirmed: Signal[UserInfo] = Signal(app, "gallery-confirmed")

    # -- which server ----------------------------------------------------------------------------

    def use_server(self, url: str, identity: str | None) -> bool:
        """Keep what follows under ``url``'s namespace; ``False`` (nothing kept) without an
        identity (a server nobody vouched for yet)."""
        if identity is None:
            self._retire()
            return False
        if self._server != (url, identity):
            self._retire()
            namespace = server_namespace(url, identity)
            disk = DiskPictureCache(self.root / "pictures", namespace, limit_bytes=self.limit_bytes)
            self.pictures = CachedPictures(disk)
            self.pictures.sweep()  # what a crashed writer left, in the background
            self._snapshots = GallerySnapshots(self.root / "galleries" / namespace)
            self._server = (url, identity)
        return True

    def _retire(self) -> None:
        """Let go of the last server's stores (their writes on the way still land)."""
        if self.pictures is not None:
            self.pictures.retire()
        self.pictures = None
        self._snapshots = None
        self._server = None

    async def close(self) -> None:
        """Wait for the pictures on their way to disk (the app is closing)."""
        if self.pictures is not None:
            await self.pictures.close()

    # -- reopening -------------------------------------------------------------------------------

    def read_saved(self, token: str) -> WarmGallery | None:
        """The gallery saved under ``token``'s session, with the pictures the disk holds.

        Blocking (a snapshot file and a screenful of pictures): call it in a thread, then hand
        the result to :meth:`offer` on the event loop. Call :meth:`use_server` first.
        """
        saved = self.load_saved(token)
        return self.with_pictures(saved) if saved is not None else None

    def load_saved(self, token: str) -> SavedGallery | None:
        """The snapshot saved under ``token``'s session if it has cards (no pictures read).

        One small file: cheap enough to decide, before the app starts, which screen it opens on.
        """
        snapshots = self._snapshots
        if snapshots is None:
            return None
        saved = snapshots.load(token)
        return saved if saved is not None and saved.cards else None

    def with_pictures(self, saved: SavedGallery) -> WarmGallery:
        """``saved``'s cards with the pictures the disk holds (blocking: call it in a thread)."""
        pictures = self.pictures
        found: dict[str, bytes] = {}
        if pictures is not None:
            found = pictures.disk.read_many(digest for digest in saved.pictures if digest)
            for digest, data in found.items():
                pictures.memory.put(digest, data)  # the reconciling batch names them by hash only
        cards = [
            msgspec.structs.replace(card, thumbnail=found.get(digest), thumbnail_sha256=digest)
            for card, digest in zip(saved.cards, saved.pictures, strict=True)
        ]
        return WarmGallery(saved, cards)

    def offer(self, warm: WarmGallery) -> None:
        """Keep ``warm`` for the gallery to :meth:`take`, shown until the server confirms."""
        self._warm = warm
        self.provisional = warm.saved.user
        self.saved_at = warm.saved.saved_at
        self._set(Freshness.OFFLINE if self._down else Freshness.REFRESHING)

    async def recall(self, token: str) -> WarmGallery | None:
        """:meth:`read_saved` in a thread, then :meth:`offer` it."""
        warm = await asyncio.to_thread(self.read_saved, token)
        if warm is not None:
            self.offer(warm)
        return warm

    def take(self) -> WarmGallery | None:
        """The recalled gallery, once (the gallery screen shows it instead of an empty grid)."""
        warm, self._warm = self._warm, None
        return warm

    def confirm(self, user: UserInfo) -> bool:
        """The server resumed the session as ``user``; returns whether a snapshot was on show.

        Publishes :attr:`confirmed` so that the gallery asks the server and reconciles.
        """
        shown = self.provisional is not None
        if self.provisional is not None and self.provisional.id != user.id:
            self._warm = None  # someone else's gallery is never shown (the app resets the shop)
        self.provisional = None
        if shown:
            self._set(Freshness.REFRESHING)
            self.confirmed.publish(user)
        return shown

    def refreshed(self) -> None:
        """The gallery holds what the server just said."""
        self.saved_at = None
        self._set(Freshness.OFFLINE if self._down else Freshness.LIVE)

    def drop(self) -> None:
        """Forget what was recalled (the person is back at the login screen)."""
        self._warm = None
        self.provisional = None
        self.saved_at = None
        self._set(Freshness.LIVE)

    # -- the link --------------------------------------------------------------------------------

    def on_status(self, status: ConnectionStatus) -> None:
        """Follow the connection: offline while it is down, refreshing or live once it is up."""
        self._down = status.state in (ConnectionState.RECONNECTING, ConnectionState.OFFLINE)
        if self._down:
            self._set(Freshness.OFFLINE)
        elif status.state is ConnectionState.CONNECTED and self.freshness is Freshness.OFFLINE:
            waiting = self.provisional is not None or self.saved_at is not None
            self._set(Freshness.REFRESHING if waiting else Freshness.LIVE)

    def _set(self, freshness: Freshness) -> None:
        if freshness is not self.freshness:
            self.freshness = freshness
            self.changes.publish(freshness)

    # -- saving ----------------------------------------------------------------------------------

    async def remember(
        self, session: Session, cards: Sequence[ItemCard], total: int | None
    ) -> None:
        """Save the gallery's first cards for the next start, and their pictures (in a thread).

        Nothing is saved without a logged-in session and a server namespace.
        """
        user, token = session.user, session.token
        snapshots, pictures = self._snapshots, self.pictures
        if user is None or token is None or snapshots is None or pictures is None:
            return
        kept = [card for card in cards if may_keep(card, user)]
        digests = [thumbnail_digest(card) for card in kept]
        await pictures.keep(
            {
                digest: card.thumbnail
                for card, digest in zip(kept, digests, strict=True)
                if digest and card.thumbnail
            }
        )
        await asyncio.to_thread(snapshots.save, user, token, kept, digests, total)

    async def forget(self, user: UserInfo) -> None:
        """Delete ``user``'s snapshot on this server (after they log out)."""
        snapshots = self._snapshots
        if snapshots is not None:
            await asyncio.to_thread(snapshots.forget, user.id)


__all__ = ["Freshness", "GalleryCache", "WarmGallery", "thumbnail_digest"]
