"""Provides :class:`ServerLink`: the TUI's one session with a server, opened on demand and shared.

Every screen asks the link for the session instead of holding its own. The first connection to a
server address is made once, even when several screens ask at the same time (the login form and
the start-up connect); asking for another address closes the old session first. After the first
connection the session heals itself (reconnect, resume) and the link only relays what it reports.
Once logged in, the link also keeps the catalogue subscription (and the items watched one by one)
alive across reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from protocol.catalogue_client import CatalogueWatch
from protocol.client import ConnectionState, ConnectionStatus, Session
from protocol.messages.base import Event

#: Builds a (not yet connected) session for a ``wss://`` server address.
SessionFactory = Callable[[str], Session]


@dataclass(frozen=True)
class LinkListeners:
    """Where the link reports what its current session says."""

    status: Callable[[Session, ConnectionStatus], object]
    event: Callable[[Session, Event], object]
    token: Callable[[Session, str | None], object]


class ServerLink:
    """Owns the current :class:`Session` and its first connection.

    Args:
        factory: builds a session for an address.
        listeners: told about status changes, server events and token changes.
        session: an existing session to adopt (connected, connecting or not yet connected).
    """

    def __init__(
        self,
        factory: SessionFactory | None,
        listeners: LinkListeners,
        *,
        session: Session | None = None,
    ) -> None:
        self._factory = factory
        self._listeners = listeners
        self._session: Session | None = None
        self._opening: asyncio.Future[Session] | None = None
        self._connected = False
        self._catalogue_watch: CatalogueWatch | None = None
        if session is not None:
            self._watch(session)
            self._session = session
            self._connected = session.established

    @property
    def session(self) -> Session | None:
        """The current session, if any (it may be connecting, or offline after a failure)."""
        return self._session

    @property
    def url(self) -> str | None:
        """The address of the current session."""
        return self._session.url if self._session is not None else None

    @property
    def is_open(self) -> bool:
        """Whether the current session made its first connection (it may be reconnecting)."""
        return self._session is not None and self._connected

    def _watch(self, session: Session) -> None:
        listeners = self._listeners

        def status_changed(status: ConnectionStatus) -> None:
            listeners.status(session, status)

        def event_received(event: Event) -> None:
            listeners.event(session, event)

        def token_changed(token: str | None) -> None:
            listeners.token(session, token)

        session.on_status(status_changed)
        session.on_event(event_received)
        session.on_token(token_changed)

    async def open(self, url: str) -> Session:
        """The session for ``url``, connected at least once; callers share one attempt.

        Raises:
            TrustError: the server cannot be trusted (nothing was sent to it).
            PixmartError: the server refused the hello.
            OSError, TimeoutError, InvalidHandshake: the server could not be reached.
            ValueError: ``url`` is not a ``wss://`` address.
        """
        if self._session is not None and self._session.url == url and self._connected:
            return self._session
        if self._opening is None or self._opening.done():
            if self._session is not None and self._session.url != url:
                await self.close()
            self._opening = asyncio.ensure_future(self._first_connect(url))
        # Shielded: a caller that gives up (its worker is cancelled) must not abort the attempt
        # that other callers may be waiting for.
        return await asyncio.shield(self._opening)

    async def _first_connect(self, url: str) -> Session:
        session = self._session
        stale = session is not None and session.status.state is ConnectionState.OFFLINE
        if session is None or session.url != url or (stale and self._factory is not None):
            if self._factory is None:
                raise ValueError("This window cannot connect to another server")
            session = self._factory(url)
            self._watch(session)
            self._session = session
        if session.status.state in (ConnectionState.DISCONNECTED, ConnectionState.OFFLINE):
            # A failed first contact leaves the session OFFLINE (so its reason stays on show);
            # the next open() starts afresh with a new one.
            await session.connect()
        elif not session.established:  # someone else is connecting it (maybe after a cut)
            await _until_settled(session)
        self._connected = True
        return session

    # -- live updates --------------------------------------------------------------------------

    async def watch_catalogue(self, session: Session) -> None:
        """Subscribe ``session`` to catalogue events, kept across reconnects (best effort)."""
        if self._catalogue_watch is None:
            self._catalogue_watch = CatalogueWatch(session)
        try:
            await self._catalogue_watch.watch_catalogue()
        except Exception:
            pass  # the screens work without live updates

    async def watch_items(self, item_ids: Sequence[int]) -> None:
        """Also hear about these items (e.g. the one on screen), across reconnects."""
        if self._catalogue_watch is not None:
            try:
                await self._catalogue_watch.watch_items(item_ids)
            except Exception:
                pass  # live updates are a nicety; the screen works without them

    def stop_watching(self) -> None:
        """Forget the subscriptions (after a logout: the next person makes their own)."""
        self._catalogue_watch = None

    async def close(self) -> None:
        """Close the current session, if any."""
        self._catalogue_watch = None
        session, self._session = self._session, None
        self._connected = False
        opening, self._opening = self._opening, None
        if opening is not None and not opening.done():
            opening.cancel()
            with contextlib.suppress(BaseException):
                await opening
        if session is not None:
            await session.close()


#: The states a session's first connection ends in: made, given up, or closed.
_SETTLED = (ConnectionState.CONNECTED, ConnectionState.OFFLINE, ConnectionState.DISCONNECTED)


async def _until_settled(session: Session) -> None:
    """Wait for a session someone else is connecting to become connected (or fail).

    Its first connection may say reconnecting on the way (it was cut and is tried again):
    only connected, offline or closed settle it.
    """
    settled: asyncio.Future[ConnectionStatus] = asyncio.get_running_loop().create_future()

    def listener(status: ConnectionStatus) -> None:
        if status.state in _SETTLED and not settled.done():
            settled.set_result(status)

    session.on_status(listener)
    status = session.status if session.status.state in _SETTLED else await settled
    if status.state is not ConnectionState.CONNECTED:
        raise ConnectionError(status.reason or "the server could not be reached")


__all__ = ["LinkListeners", "ServerLink", "SessionFactory"]
