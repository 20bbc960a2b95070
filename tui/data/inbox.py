"""Provides :class:`InboxModel`: the person's unread count as the server tells it, and changes.

The inbox is the server's. Asking for the unread count also has the server tell this link of
every change to the inbox (:class:`~protocol.messages.inbox.InboxChanged`), so the count follows
notices delivered, and notices read or cleared on other devices; after a reconnect it is asked
for again, since the server forgot what the old link listened to.

The model publishes the count on :attr:`InboxModel.updates` and each change on
:attr:`InboxModel.changes`; it runs its requests as workers of the app it is given, tells
failures through the app, and never pushes a screen.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from textual.app import App
from textual.signal import Signal

from protocol import inbox_client
from protocol.client import ConnectionState, ConnectionStatus, Session
from protocol.messages.base import Event
from protocol.messages.inbox import InboxChanged


class InboxModel:
    """The unread count, and marking notices read or clearing them.

    Args:
        app: runs the background requests and tells the person what happened.
        session: the session to send with (raises :class:`~protocol.client.Offline` if none).
        report_failure: tells the person what went wrong, in words.
    """

    def __init__(
        self,
        app: App[Any],
        *,
        session: Callable[[], Session],
        report_failure: Callable[[BaseException], object],
    ) -> None:
        self._app = app
        self._session = session
        self._report_failure = report_failure
        #: Unread notices as the server last told it (0 until asked).
        self.unread = 0
        #: Whether the count was asked for since the last login (the link then hears changes).
        self.following = False
        #: Published with the unread count whenever it changes.
        self.updates: Signal[int] = Signal(app, "inbox-updates")
        #: Published with every change the server tells (a new notice, reads, clearing).
        self.changes: Signal[InboxChanged] = Signal(app, "inbox-changes")
        self._was_connected = False

    def forget(self) -> None:
        """Drop the count (after a logout)."""
        self.following = False
        self._set_unread(0)

    # -- following the server ------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """Follow the server's inbox events; a new notice is told in a toast."""
        if not isinstance(event, InboxChanged):
            return
        self._set_unread(event.unread)
        self.changes.publish(event)
        if event.notice is not None:
            self._app.notify(event.notice.text, title="New in your inbox (i)", markup=False)

    def on_status(self, status: ConnectionStatus) -> None:
        """After a reconnect, ask for the count again: the server forgot what this link heard."""
        connected = status.state is ConnectionState.CONNECTED
        if connected and not self._was_connected and self.following:
            self._app.run_worker(self.refresh(), group="inbox-refresh", exclusive=True)
        self._was_connected = connected

    async def refresh(self) -> None:
        """Ask the server for the unread count (and so hear of every change from now on).

        A failure leaves the count as it was, quietly: the header is not worth an error.
        """
        try:
            unread = await inbox_client.unread_count(self._session())
        except Exception:
            return
        self.following = True
        self._set_unread(unread)

    def _set_unread(self, unread: int) -> None:
        if unread != self.unread:
            self.unread = unread
        self.updates.publish(unread)

    # -- changing the inbox --------------------------------------------------------------------

    async def mark_read(self, notice_ids: Sequence[int]) -> bool:
        """Mark these notices read; returns whether it worked (a failure is told in words)."""
        try:
            unread = await inbox_client.mark_read(self._session(), notice_ids)
        except Exception as exc:
            self._report_failure(exc)
            return False
        self._set_unread(unread)
        return True

    async def mark_all_read(self) -> bool:
        """Mark every notice read; returns whether it worked."""
        try:
            unread = await inbox_client.mark_all_read(self._session())
        except Exception as exc:
            self._report_failure(exc)
            return False
        self._set_unread(unread)
        return True

    async def clear(self) -> bool:
        """Delete every notice; returns whether it worked."""
        try:
            await inbox_client.clear_inbox(self._session())
        except Exception as exc:
            self._report_failure(exc)
            return False
        self._set_unread(0)
        return True


__all__ = ["InboxModel"]
