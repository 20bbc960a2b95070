"""Provides :class:`StatusHeader`: the one-line header with the screen, user, cart and link."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from protocol.messages.accounts import UserInfo
from tui.widgets.connection_indicator import ConnectionIndicator


class StatusHeader(Horizontal):
    """``pixmart › Gallery     alice · cart 0 · inbox 2 · ● connected · TLSv1.3 · AB:CD:EF…``.

    It follows the app's ``user``, ``cart_count`` and ``unread_count`` reactives and the screen's
    title. A screen
    may put a mark beside its title (:meth:`mark`), e.g. the gallery's ``⟳ saved gallery,
    refreshing…`` on a warm reopen or ``✕ offline`` while the server cannot be reached.
    """

    DEFAULT_CSS = """
    StatusHeader {
        dock: top;
        height: 1;
        width: 100%;
        background: $panel;
        color: $foreground;
        #brand { width: auto; padding: 0 1; text-style: bold; color: $text-accent; }
        #screen-title { width: 1fr; text-wrap: nowrap; text-overflow: ellipsis; }
        #user { width: auto; padding: 0 1; text-style: bold; }
        #cart { width: auto; padding: 0 1; color: $text-muted; }
        #cart.-filled { color: $text-accent; text-style: bold; }
        #inbox { width: auto; padding: 0 1; color: $text-muted; }
        #inbox.-unread { color: $text-warning; text-style: bold; }
        #user.-anonymous { color: $text-muted; text-style: none; }
        #mark { width: auto; padding: 0 1; display: none; }
        #mark.-shown { display: block; }
        #mark.-refreshing { color: $text-warning; }
        #mark.-offline { color: $text-error; text-style: bold; }
    }
    """

    def compose(self) -> ComposeResult:
        yield Static("pixmart", id="brand")
        yield Static("", id="screen-title")
        yield Static("", id="mark")
        yield Static("", id="user")
        yield Static("", id="cart")
        yield Static("", id="inbox")
        yield ConnectionIndicator(id="connection")

    def on_mount(self) -> None:
        self.watch(self.app, "user", self._show_user, init=True)
        self.watch(self.app, "cart_count", self._show_cart, init=True)
        self.watch(self.app, "unread_count", self._show_unread, init=True)
        self.watch(self.screen, "title", self._show_title, init=True)

    def mark(self, text: str, kind: str = "") -> None:
        """Show ``text`` beside the title (nothing when empty); ``kind`` (``refreshing``,
        ``offline``) sets its colour."""
        mark = self.query_one("#mark", Static)
        mark.set_classes(
            " ".join(c for c in ("-shown" if text else "", f"-{kind}" if kind else "") if c)
        )
        mark.update(text)

    @property
    def marked(self) -> str:
        """The mark beside the title (empty when none)."""
        return str(self.query_one("#mark", Static).content)

    def _show_title(self, title: str | None) -> None:
        self.query_one("#screen-title", Static).update(f"› {title}" if title else "")

    def _show_user(self, user: UserInfo | None) -> None:
        label = self.query_one("#user", Static)
        label.set_class(user is None, "-anonymous")
        if user is None:
            label.update("not logged in")
        else:
            label.update(f"{user.username}{' (admin)' if user.is_admin else ''}")

    def _show_cart(self, count: int) -> None:
        cart = self.query_one("#cart", Static)
        cart.set_class(count > 0, "-filled")
        cart.update(f"cart {count}")

    def _show_unread(self, unread: int) -> None:
        inbox = self.query_one("#inbox", Static)
        inbox.set_class(unread > 0, "-unread")
        inbox.update(f"inbox {unread}")


__all__ = ["StatusHeader"]
