"""Provides :class:`PixmartApp`: modes, app-wide keys and the session it is given."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from textual import events, on, work
from textual.app import App, ScreenStackError, SystemCommand
from textual.binding import Binding, BindingType
from textual.reactive import reactive
from textual.screen import Screen
from textual.signal import Signal

from protocol.client import ConnectionStatus, Offline, Session
from protocol.messages.accounts import UserInfo
from protocol.messages.base import Event
from protocol.messages.catalogue import ItemCard, ListingFilters
from protocol.messages.commerce import Cart
from protocol.money import DEFAULT_CURRENCY
from protocol.pictures import use_picture_store
from protocol.trust import FingerprintMismatch, TrustError, UnknownServer
from tui.data.cart import CartModel
from tui.data.favourites import FavouritesModel
from tui.data.gallery_cache import Freshness, GalleryCache, WarmGallery
from tui.data.inbox import InboxModel
from tui.data.picture_cache import cache_dir, cache_limit_bytes
from tui.data.server_identity import trust_identity
from tui.data.similar import SimilarQuery, load_query_picture, query_limits, search_filters
from tui.data.thumbnails import PictureCache
from tui.dialogs.trust import FingerprintChangedDialog, TrustDialog
from tui.feedback import describe_error, describe_session_end, is_warming_up
from tui.keys import key_commands
from tui.link import LinkListeners, ServerLink, SessionFactory
from tui.messages import ConnectionChanged, LoggedIn, ServerEventReceived, TokenChanged
from tui.palette import PaletteCommand, PixmartCommands
from tui.screens.cart import CartScreen
from tui.screens.dashboard import DashboardScreen
from tui.screens.favourites import FavouritesScreen
from tui.screens.gallery import GalleryScreen
from tui.screens.gallery import screenful as gallery_screenful
from tui.screens.help import HelpScreen
from tui.screens.inbox import InboxScreen
from tui.screens.item import ItemScreen
from tui.screens.login import LoginScreen
from tui.screens.mine import MyItemsScreen
from tui.screens.orders import OrdersScreen
from tui.screens.search import SearchScreen
from tui.screens.similar import SimilarScreen
from tui.screens.upload import UploadScreen
from tui.store import ClientStore
from tui.type_ahead import TypeAheadApp
from tui.widgets.card_grid import CardGrid

#: The modes a logged-in person moves between; each keeps its own screen stack.
SHOP_MODES: dict[str, Callable[[], Screen[Any]]] = {
    "gallery": GalleryScreen,
    "search": SearchScreen,
    "upload": UploadScreen,
    "mine": MyItemsScreen,
    "cart": CartScreen,
    "orders": OrdersScreen,
    "dashboard": DashboardScreen,
    "favourites": FavouritesScreen,
    "inbox": InboxScreen,
}

#: A saved gallery recalled at start-up, and its pictures decoded (by item id).
_Recalled = tuple[WarmGallery, list[tuple[Hashable, Any]]]

#: Actions that only make sense when logged in (hidden from the footer otherwise).
_LOGGED_IN_ACTIONS = frozenset({"logout", "go"})


class PixmartApp(TypeAheadApp[None]):
    """The pixmart terminal client.

    Args:
        store: remembered servers, user names and tokens.
        session_factory: builds a session for a server address (used when the person types one).
        server_url: the server to connect to at start-up (``--server`` or remembered).
        session: an existing session to use (connected, connecting or not yet connected).
        server_known: whether ``server_url`` came from the person or memory; by default, whether
            it was given at all. A known server is connected to at once.
        listing_batch: items per listing batch; the server's default when ``None``.
        upload_root: where the upload screen's file tree starts (the working directory).
        cache_root: the client's cache dir (pictures by hash, the last gallery); the user cache
            dir (or ``PIXMART_CACHE_DIR``) when ``None``.
        server_identity: what vouches for a server address (see
            :func:`tui.data.server_identity.trust_identity`); by default the session's trust.
    """

    TITLE = "pixmart"
    CSS_PATH = "styles/app.tcss"
    MODES: ClassVar[dict[str, str | Callable[[], Screen[Any]]]] = {
        "login": LoginScreen,
        **SHOP_MODES,
    }
    DEFAULT_MODE = "login"
    COMMANDS = App.COMMANDS | {PixmartCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark,f1", "help", "Help", id="app.help", key_display="?"),
        # Early, so it stays in the footer however many keys a screen adds before the app's.
        Binding(
            "i",
            "go('inbox')",
            "Inbox",
            id="app.inbox",
            tooltip="Price drops and restocks of favourites, saved searches' matches",
        ),
        Binding("g", "go('gallery')", "Gallery", id="app.gallery"),
        Binding("s,slash", "go('search')", "Search", id="app.search"),
        Binding("u", "go('upload')", "Upload", id="app.upload"),
        Binding("m", "go('mine')", "My items", id="app.mine"),
        Binding("c", "go('cart')", "Cart", id="app.cart", tooltip="Your cart, to check out"),
        Binding("o", "go('orders')", "Orders", id="app.orders", tooltip="Your orders and sales"),
        Binding(
            "D",
            "go('dashboard')",
            "Dashboard",
            id="app.dashboard",
            tooltip="Sales per day and week, top items, low stock",
        ),
        Binding(
            "F",
            "go('favourites')",
            "Favourites",
            id="app.favourites",
            tooltip="The items you keep (f on any card or item keeps one)",
        ),
        Binding(
            "ctrl+r",
            "reconnect",
            "Reconnect now",
            id="app.reconnect",
            show=False,
            tooltip="Skip the wait before the next reconnect attempt",
        ),
        Binding("ctrl+o", "logout", "Log out", id="app.logout", show=False),
        Binding("ctrl+q", "quit", "Quit", id="app.quit", priority=True, show=False),
    ]

    connection: reactive[ConnectionStatus | None] = reactive(None, always_update=True)
    user: reactive[UserInfo | None] = reactive(None)
    cart_count: reactive[int] = reactive(0)
    unread_count: reactive[int] = reactive(0)

    def __init__(
        self,
        *,
        store: ClientStore,
        session_factory: SessionFactory | None = None,
        server_url: str | None = None,
        session: Session | None = None,
        server_known: bool | None = None,
        listing_batch: int | None = None,
        upload_root: Path | None = None,
        cache_root: Path | None = None,
        server_identity: Callable[[str], str | None] | None = None,
    ) -> None:
        super().__init__()
        if session_factory is None and session is None:
            raise ValueError("PixmartApp needs a session or a session factory")
        self.store = store
        self.server_url = server_url or (session.url if session is not None else None)
        self.server_known = self.server_url is not None if server_known is None else server_known
        self.link = ServerLink(
            session_factory,
            LinkListeners(
                status=lambda s, status: self.post_message(ConnectionChanged(s, status)),
                event=lambda s, event: self.post_message(ServerEventReceived(s, event)),
                token=lambda s, token: self.post_message(TokenChanged(s, token)),
            ),
            session=session,
        )
        #: Server events (items added, changed, removed) for the screens that show items.
        self.server_events: Signal[Event] = Signal(self, "server-events")
        #: Decoded thumbnails, shared by every screen that shows cards.
        self.pictures = PictureCache(capacity=512)
        #: Pictures on disk by hash and the last gallery of the server in use.
        self.gallery_cache = GalleryCache(
            self, cache_root or cache_dir(), limit_bytes=cache_limit_bytes()
        )
        self._server_identity = server_identity
        #: The saved gallery and its decoded pictures, read while Textual starts; the app
        #: then opens on the gallery, and offers them to it before it is composed.
        self._recalling: concurrent.futures.Future[_Recalled] | None = None
        if self.server_url is not None and self.server_known:
            self._recalling = self._recall_in_background(self.server_url)
        if self._recalling is not None:
            self._open_on("gallery")
        #: Failed first connections in a row while a saved gallery is on show (for the backoff).
        self._offline_attempts = 0
        self.listing_batch = listing_batch
        self.upload_root = upload_root or Path.cwd()
        #: The person's cart, kept as the server tells it.
        self.cart = CartModel(
            self,
            session=self.require_session,
            report_failure=self.report_failure,
            user=lambda: self.user,
            keys_dir=store.root,
        )
        #: The person's inbox (its unread count is in the header).
        self.inbox = InboxModel(
            self, session=self.require_session, report_failure=self.report_failure
        )
        #: The items the person keeps as favourites.
        self.favourites = FavouritesModel(
            self, session=self.require_session, report_failure=self.report_failure
        )
        self._logging_out = False

    # -- start and stop ------------------------------------------------------------------------

    def _open_on(self, mode: str) -> None:
        """Start in ``mode`` instead of :attr:`DEFAULT_MODE` (call it from ``__init__``).

        A warm reopen opens on the saved gallery: no login screen composed and drawn first,
        and no switch to a new mode, whose first screen costs a full reparse and restyle of
        the stylesheet. Textual (8.x) chooses the first mode from the class only, so the two
        attributes its ``__init__`` set from it are set again here.
        """
        self._screen_stacks = {mode: []}
        self._current_mode = mode

    async def on_event(self, event: events.Event) -> None:
        # The first screen is composed on Compose: a saved gallery must be offered before then.
        if isinstance(event, events.Compose) and self._recalling is not None:
            await self._offer_recalled(self._recalling)
        await super().on_event(event)

    def on_mount(self) -> None:
        self.cart.updates.subscribe(self, self._cart_changed, immediate=True)
        self.inbox.updates.subscribe(self, self._unread_changed, immediate=True)
        if self.link.session is not None:
            self.connection = self.link.session.status
        if self.server_url is not None and self.server_known:
            self.connect_in_background(self.server_url)

    async def on_unmount(self) -> None:
        with contextlib.suppress(Exception):
            await self.link.close()
        with contextlib.suppress(Exception):
            await self.gallery_cache.close()  # pictures on their way to disk land first

    # -- a warm reopen -------------------------------------------------------------------------

    def identity_of(self, url: str) -> str | None:
        """What vouches for ``url`` (its pinned fingerprint or CA), if anything does yet."""
        if self._server_identity is not None:
            return self._server_identity(url)
        session = self.link.session
        return trust_identity(session.trust, url) if session is not None else None

    def _recall_in_background(self, url: str) -> concurrent.futures.Future[_Recalled] | None:
        """Read the gallery this session saved, if there is one, and start reading and decoding
        its pictures in a thread of its own: it runs while Textual starts, so the pictures are
        ready when the first screen is composed.

        Returns:
            The pictures on their way, or ``None`` when there is no saved gallery to show.
        """
        token = self.store.token(url)
        if token is None or not self.gallery_cache.use_server(url, self.identity_of(url)):
            return None
        # One small file read here, so the app knows which screen it opens on.
        saved = self.gallery_cache.load_saved(token)
        if saved is None:
            return None
        cache, pictures = self.gallery_cache, self.pictures
        # Only the first screenful is decoded before the gallery is composed (the terminal's
        # size is known by now); the grid decodes the others as they scroll into view.
        first = gallery_screenful(self.size)
        recalled: concurrent.futures.Future[_Recalled] = concurrent.futures.Future()

        def recall() -> None:
            try:
                warm = cache.with_pictures(saved)
                shown: list[tuple[Hashable, bytes]] = [
                    (card.id, card.thumbnail) for card in warm.cards[:first] if card.thumbnail
                ]
                recalled.set_result((warm, pictures.decode_many(shown)))
            except Exception:
                # Pictures that cannot be read are fetched again: the cards still show at once.
                recalled.set_result((WarmGallery(saved, list(saved.cards)), []))
            except BaseException as exc:  # told to the awaiting app
                recalled.set_exception(exc)

        threading.Thread(target=recall, name="recall-gallery", daemon=True).start()
        return recalled

    async def _offer_recalled(self, recalling: concurrent.futures.Future[_Recalled]) -> None:
        """Offer the saved gallery and its decoded pictures to the gallery the app opens on.

        Only the session it was saved under gets it (by its token), and only until the server
        answers: if the server ends the session instead, the app goes back to the login screen.
        """
        warm, decoded = await asyncio.wrap_future(recalling)
        for item_id, picture in decoded:
            self.pictures.put(item_id, picture)
        self.gallery_cache.offer(warm)
        self.user = warm.saved.user

    def _use_cache_for(self, session: Session, url: str) -> None:
        """Keep ``session``'s pictures in the server's disk cache (once someone vouched for it)."""
        if self.gallery_cache.use_server(url, self.identity_of(url)):
            store = self.gallery_cache.pictures
            if store is not None:
                use_picture_store(session, store)

    def _retry_offline(self, url: str) -> None:
        """Try the server again later, while a saved gallery is shown without it."""
        session = self.link.session
        delay = session.backoff.delay(self._offline_attempts) if session is not None else 1.0
        self._offline_attempts += 1
        self.set_timer(delay, lambda: self._retry_now(url))

    def _retry_now(self, url: str) -> None:
        if self.gallery_cache.provisional is not None and not self.link.is_open:
            self.connect_in_background(url)

    # -- the connection ------------------------------------------------------------------------

    def connect_in_background(self, url: str) -> None:
        """Connect to ``url`` (resuming a saved session) without making anyone wait."""
        self._connect(url)

    @work(exclusive=True, group="connection")
    async def _connect(self, url: str) -> None:
        resuming = self.store.token(url) is not None
        self._tell_login("Resuming your saved session…" if resuming else f"Connecting to {url}…")
        try:
            session = await self.link.open(url)
        except Exception as exc:
            if self.gallery_cache.provisional is not None:
                # The saved gallery stays on show, marked offline, and the app tries again.
                if not isinstance(exc, TrustError):
                    self._retry_offline(url)
                if self._offline_attempts <= 1 or isinstance(exc, TrustError):
                    self.report_failure(exc)
                return
            self._tell_login(self.report_failure(exc), error=True)
            return
        self._offline_attempts = 0
        self.server_url = url
        self.store.remember(server=url)
        self._use_cache_for(session, url)
        if session.user is not None and (
            self.user is None or self.gallery_cache.provisional is not None
        ):
            self.post_message(LoggedIn(session, resumed=True))
        else:
            self._tell_login(
                "Your saved session has ended: please log in again." if resuming else ""
            )

    def _tell_login(self, text: str, *, error: bool = False) -> None:
        """Show progress on the login form, if it is on screen."""
        try:
            screen = self.screen
        except ScreenStackError:
            return  # the app is starting or closing: no screen to tell
        if isinstance(screen, LoginScreen):
            screen.say(text, error=error)

    async def confirm_first_use(self, server: str, fingerprint: str) -> bool:
        """Ask the person whether to trust a server seen for the first time.

        Installed as :attr:`protocol.trust.TrustPolicy.on_first_use`: the dialog's answer
        resolves the decider.
        """
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        def resolve(accepted: bool | None) -> None:
            if not answer.done():
                answer.set_result(bool(accepted))

        await self.push_screen(TrustDialog(server, fingerprint), callback=resolve)
        return await answer

    def report_failure(self, exc: BaseException) -> str:
        """Tell the person what went wrong, in words; returns the words."""
        text = describe_error(exc)
        # Only while the shop's cards are on show (a saved gallery, or the last one loaded): on
        # the login form there are no cards to browse, and nothing retries a first contact.
        if (
            isinstance(exc, Offline | OSError | TimeoutError)
            and self.gallery_cache.freshness is Freshness.OFFLINE
            and self.user is not None
        ):
            if isinstance(exc, Offline):
                text = "You are offline: this needs the server. The cards shown stay browsable."
            else:  # the connection itself failed: say why, and that it is tried again
                reason = text.rstrip(".")
                text = (
                    f"Offline: {reason[:1].lower()}{reason[1:]}. The cards shown stay browsable "
                    "and pixmart keeps trying."
                )
            self.notify(text, title="Offline", severity="warning")
            return text
        if isinstance(exc, FingerprintMismatch):
            self.push_screen(FingerprintChangedDialog(exc.server, exc.pinned, exc.presented))
        elif isinstance(exc, UnknownServer):
            self.notify(text, title="Not connected", severity="warning")
        elif is_warming_up(exc):
            self.notify(text, title="Image search warming up", severity="warning")
        else:
            self.notify(text, title="Problem", severity="error")
        return text

    def require_session(self) -> Session:
        """The session, connected at least once; requests made while it reconnects wait.

        Raises:
            Offline: there is no usable session (not connected yet, or given up).
        """
        session = self.link.session
        if session is None or not self.link.is_open:
            raise Offline("Not connected to a server")
        return session

    @property
    def currency(self) -> str:
        """The server's currency (ISO 4217)."""
        session = self.link.session
        return session.currency if session is not None else DEFAULT_CURRENCY

    @property
    def has_vision(self) -> bool:
        """Whether the server runs the image model (similar items, search by picture)."""
        session = self.link.session
        capabilities = session.capabilities if session is not None else None
        return capabilities is not None and capabilities.embedder not in ("", "none")

    @on(ConnectionChanged)
    def _connection_changed(self, message: ConnectionChanged) -> None:
        if message.session is self.link.session:
            self.connection = message.status
            self.cart.on_status(message.status)
            self.inbox.on_status(message.status)
            self.gallery_cache.on_status(message.status)

    @on(ServerEventReceived)
    def _server_event(self, message: ServerEventReceived) -> None:
        if message.session is not self.link.session:
            return
        self.cart.on_event(message.event)
        self.inbox.on_event(message.event)
        self.server_events.publish(message.event)

    @on(TokenChanged)
    async def _token_changed(self, message: TokenChanged) -> None:
        ended = message.token is None and self.user is not None and not self._logging_out
        if message.session is self.link.session and ended:
            self.user = None
            reason = describe_session_end(message.session.end_reason)
            self.notify(reason, severity="warning")
            await self._back_to_login()
            self._tell_login(reason, error=True)

    @on(LoggedIn)
    async def _logged_in(self, message: LoggedIn) -> None:
        user = message.session.user
        if message.session is not self.link.session or user is None:
            return
        shown = self.gallery_cache.provisional
        if shown is not None and shown.id != user.id:
            await self._reset_shop()  # never the case for one token, but never another's cards
        self.gallery_cache.confirm(user)
        self.user = user
        self.server_url = message.session.url
        self.store.remember(server=message.session.url, username=user.username)
        self.run_worker(self._follow(message.session), group="follow", exclusive=True)
        await self.switch_mode("gallery")
        if message.resumed:
            self.notify(f"Welcome back, {user.username}.", timeout=3)

    async def _follow(self, session: Session) -> None:
        """Hear about the catalogue and learn the cart's size (both best effort)."""
        await self.link.watch_catalogue(session)
        await self.cart.refresh()
        await self.inbox.refresh()
        await self.favourites.refresh()

    async def watch_items(self, item_ids: Sequence[int]) -> None:
        """Also hear about these items (e.g. the one on screen), across reconnects."""
        await self.link.watch_items(item_ids)

    def _unread_changed(self, unread: int) -> None:
        self.unread_count = unread

    @on(CardGrid.FavouriteToggled)
    def _favourite_toggled(self, message: CardGrid.FavouriteToggled) -> None:
        if self.user is not None:
            self.favourites.toggle(message.card.id, message.card.title)

    def _cart_changed(self, cart: Cart) -> None:
        del cart  # the header counts what the server holds, not what is on its way
        self.cart_count = self.cart.units

    async def _back_to_login(self) -> None:
        self.link.stop_watching()
        self.cart.forget()
        self.cart_count = 0
        self.inbox.forget()
        self.favourites.forget()
        self.gallery_cache.drop()
        self.pictures = PictureCache(capacity=512)
        await self.switch_mode("login")
        await self._reset_shop()

    async def _reset_shop(self) -> None:
        """Start the shop screens afresh: they hold the last person's data."""
        if self.current_mode in SHOP_MODES:
            await self.switch_mode("login")
        for mode, screen in SHOP_MODES.items():
            await self.remove_mode(mode)
            self.add_mode(mode, screen)

    # -- actions -------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in _LOGGED_IN_ACTIONS and self.user is None:
            return False
        return True

    def watch_user(self) -> None:
        self.refresh_bindings()

    def action_help(self) -> None:
        """Show every key of this screen and of the app."""
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.screen.title or "pixmart", key_commands(self.screen)))

    async def action_go(self, mode: str) -> None:
        """Go to a shop screen; from an item or look-alikes opened there, back to the screen."""
        await self.go(mode)

    # -- navigation ----------------------------------------------------------------------------

    async def go(self, mode: str) -> None:
        """Go to a shop screen; from an item or look-alikes opened there, back to the screen."""
        if mode not in SHOP_MODES or self.user is None:
            return
        if self.current_mode != mode:
            await self.switch_mode(mode)
            return
        while len(self.screen_stack) > 1 and isinstance(self.screen, ItemScreen | SimilarScreen):
            self.pop_screen()

    def open_item(self, card: ItemCard) -> None:
        """Show one item over the current screen."""
        self.push_screen(ItemScreen(card.id, card))

    def _has_vision(self, doing: str) -> bool:
        """Whether the server runs the image model; if not, say it cannot do ``doing``."""
        if self.has_vision:
            return True
        self.notify(f"This server has no image model, so it cannot {doing}.")
        return False

    def find_similar(
        self, item_id: int, *, title: str = "", thumbnail: bytes | None = None
    ) -> None:
        """Show every item that looks like ``item_id``, best first (needs the image model).

        Args:
            title: the item's title, to name it on the results.
            thumbnail: its picture, shown beside the results.
        """
        if not self._has_vision("find similar items"):
            return
        label = f"“{title}”" if title else f"item #{item_id}"
        query = SimilarQuery(item_id=item_id, label=label)
        self.push_screen(SimilarScreen(query, example=thumbnail))

    def search_by_picture(self, path: Path, filters: ListingFilters | None = None) -> None:
        """Show the items that look like a picture file of the person's, best first.

        The file is read (and shrunk, should the server refuse it as it is) in the background.

        Args:
            filters: tags, price range and stock to hold too (words do not apply).
        """
        if not self._has_vision("search by picture"):
            return
        self.run_worker(
            self._search_by_picture(path, search_filters(filters or ListingFilters())),
            group="search-by-picture",
            exclusive=True,
        )

    async def _search_by_picture(self, path: Path, filters: ListingFilters) -> None:
        session = self.link.session
        max_bytes, max_pixels = query_limits(session.capabilities if session else None)
        try:
            picture = await asyncio.to_thread(
                load_query_picture, path, max_bytes=max_bytes, max_pixels=max_pixels
            )
        except ValueError as exc:
            self.notify(str(exc), title="Search by picture", severity="warning", markup=False)
            return
        query = SimilarQuery(filters, label=path.name, picture=picture)
        await self.push_screen(SimilarScreen(query, example=picture))

    # -- actions -------------------------------------------------------------------------------

    def action_reconnect(self) -> None:
        """Try to reconnect at once instead of waiting for the next attempt."""
        session = self.link.session
        if session is not None:
            # Skips the wait of a reconnect, or of a first connection tried again after a cut.
            session.reconnect_now()
        if not self.link.is_open and self.server_url is not None:
            self.connect_in_background(self.server_url)

    @work(exclusive=True, group="logout")
    async def action_logout(self) -> None:
        """End the session on the server and forget its token."""
        session = self.link.session
        if session is None or self.user is None:
            return
        self._logging_out = True
        try:
            async with asyncio.timeout(5):
                await session.logout()
        except Exception:
            pass  # the token is forgotten here whatever the server heard
        finally:
            self.store.save_token(session.url, None)
            with contextlib.suppress(OSError):
                await self.gallery_cache.forget(self.user)
            self.user = None
            self._logging_out = False
        await self._back_to_login()
        self.notify("Logged out.", timeout=3)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        # "Quit" is already offered with its key by PixmartCommands.
        for command in super().get_system_commands(screen):
            if command.title != "Quit":
                yield command

    def palette_commands(self) -> Iterator[PaletteCommand]:
        """Commands the palette offers beyond the bound keys."""
        if self.link.session is not None:
            yield ("Server details", "address, TLS, certificate, limits", self.show_server)

    def show_server(self) -> None:
        """Say which server this is: address, TLS version, full fingerprint, model, currency."""
        session = self.link.session
        if session is None:
            return
        status = session.status
        lines = [f"{session.url} · {status.state.value}"]
        if status.tls_version:
            lines.append(status.tls_version)
        if status.fingerprint:
            lines.append(f"SHA-256 {status.fingerprint}")
        capabilities = session.capabilities
        if capabilities is not None:
            lines.append(
                f"{capabilities.server_name} · {capabilities.currency} · "
                f"image model: {capabilities.embedder or 'none'}"
            )
        self.notify("\n".join(lines), title="Server", timeout=10, markup=False)


__all__ = ["SHOP_MODES", "PaletteCommand", "PixmartApp"]
