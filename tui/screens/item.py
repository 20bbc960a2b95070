"""Provides :class:`ItemScreen`: one item in full, to buy, or to edit and delete for its owner.

With the server's image model, a strip of the items that look most like it follows once the item
shows, and ``s`` lists every look-alike.
"""

from __future__ import annotations

import asyncio

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.css.query import NoMatches
from textual.widgets import Button, Input, Label, Static

from protocol.catalogue_client import delete_items, edit_item, get_item
from protocol.messages.base import Event
from protocol.messages.catalogue import ItemCard, ItemDetail
from protocol.messages.live import ItemChanged, ItemRemoved
from protocol.money import format_price
from protocol.vision_client import similar_to_item
from tui.data.numbers import format_size
from tui.data.reasons import looks_like_label
from tui.data.thumbnails import decode_picture
from tui.dialogs.confirm import ConfirmDialog
from tui.dialogs.edit_item import EditItemDialog, ItemEdit, ItemFields
from tui.feedback import is_warming_up
from tui.screens.base import PixmartScreen
from tui.widgets.card_grid import CardGrid, stock_label
from tui.widgets.picture import Picture
from tui.widgets.similar_strip import STRIP_ITEMS, SimilarStrip

#: Previews are shrunk to this on decode: plenty for a terminal, light on memory.
PREVIEW_MAX_SIDE = 1024


class ItemScreen(PixmartScreen):
    """The preview, every field, the seller, and what the person may do with the item.

    Args:
        item_id: the item to show.
        card: its card from a listing, shown at once while the rest loads.
    """

    TITLE = "Item"

    DEFAULT_CSS = """
    ItemScreen {
        #item-body { height: 1fr; }
        #item-preview { width: 3fr; height: 1fr; border: round $panel-lighten-1; }
        #item-facts { width: 2fr; height: 1fr; padding: 0 2; }
        #item-title { width: 1fr; margin-bottom: 1; }
        #item-facts .fact-label { margin-top: 1; }
        #item-removed {
            display: none;
            background: $error 30%;
            color: $text-error;
            text-style: bold;
            padding: 0 1;
            margin: 1 0;
        }
        &.-removed #item-removed { display: block; }
        #item-description { margin-top: 1; }
        #item-buy, #item-owner, #item-more { height: auto; margin-top: 1; }
        #item-quantity { width: 10; }
        #item-buy Label { height: 3; content-align: left middle; padding-right: 1; }
        #item-owner { display: none; }
        &.-mine #item-owner { display: block; }
        Button { margin-right: 1; }
    }
    """

    BINDINGS = [
        Binding("escape,backspace", "back", "Back", id="item.back"),
        Binding("a", "add_to_cart", "Add to cart", id="item.add-to-cart"),
        Binding(
            "f",
            "favourite",
            "Favourite",
            id="item.favourite",
            tooltip="Keep this item as a favourite, or stop keeping it",
        ),
        Binding("e", "edit", "Edit", id="item.edit"),
        Binding("d,delete", "delete", "Delete", id="item.delete"),
        Binding(
            "s",
            "similar",
            "Similar",
            id="item.similar",
            tooltip="Items that look like this one (needs the server's image model)",
        ),
    ]

    def __init__(self, item_id: int, card: ItemCard | None = None) -> None:
        super().__init__()
        self.item_id = item_id
        self.card = card
        self.detail: ItemDetail | None = None

    # -- layout --------------------------------------------------------------------------------

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="item-body"):
            yield Picture("loading the picture…", id="item-preview")
            with VerticalScroll(id="item-facts"):
                yield Label("", id="item-title", classes="section")
                yield Static("", id="item-looks-like", classes="muted")
                yield Static("This item is no longer for sale.", id="item-removed")
                yield Static("", id="item-price", classes="price")
                yield Static("", id="item-stock")
                yield Static("", id="item-visibility", classes="muted")
                yield Static("Seller", classes="fact-label muted")
                yield Static("", id="item-seller")
                yield Static("Tags", classes="fact-label muted")
                yield Static("", id="item-tags")
                yield Static("", id="item-description")
                yield Static("", id="item-details", classes="fact-label muted")
                with Horizontal(id="item-buy"):
                    yield Label("Quantity")
                    yield Input("1", id="item-quantity", type="integer", max_length=6)
                    yield Button("Add to cart", id="add-to-cart", variant="primary")
                with Horizontal(id="item-owner"):
                    yield Button("Edit", id="edit")
                    yield Button("Delete", id="delete", variant="error")
                with Horizontal(id="item-more"):
                    yield Button("Similar items", id="similar", disabled=True)
        yield SimilarStrip(id="item-similar")

    async def on_mount(self) -> None:
        looks_like = self.query_one("#item-looks-like", Static)
        if self.card is not None and self.card.looks_like:
            # Found by what the image model sees: say so, since nothing the seller wrote does.
            looks_like.update(Content(looks_like_label(self.card.looks_like)))
        else:
            looks_like.display = False
        if self.card is not None:
            self._show_item(self.card)
        self.query_one("#similar", Button).disabled = not self.pixmart.has_vision
        self.query_one("#add-to-cart", Button).focus()
        self.pixmart.server_events.subscribe(self, self._server_event)
        self._load()

    # -- showing -------------------------------------------------------------------------------

    @property
    def mine(self) -> bool:
        """Whether the person may edit and delete the item (its owner, or an admin)."""
        user = self.pixmart.user
        return user is not None and (user.is_admin or user.id == self._owner_id)

    @property
    def own(self) -> bool:
        """Whether the person is the item's seller (who cannot buy it)."""
        user = self.pixmart.user
        return user is not None and user.id == self._owner_id

    @property
    def _owner_id(self) -> int | None:
        """The seller's id, from the full item or else the card (``None`` before either)."""
        source = self.detail or self.card
        return source.owner_id if source is not None else None

    def _show_item(self, item: ItemCard | ItemDetail) -> None:
        """Show the fields a card and the full item have alike."""
        currency = self.pixmart.currency
        self.title = item.title or "Item"
        self.query_one("#item-title", Label).update(Content(item.title or "untitled"))
        self.query_one("#item-price", Static).update(
            Content(format_price(item.price_cents, currency))
        )
        stock_widget = self.query_one("#item-stock", Static)
        stock_widget.update(Content(stock_label(item.stock)))
        stock_widget.set_class(item.stock <= 0, "sold-out")
        visibility = self.query_one("#item-visibility", Static)
        visibility.set_class(not item.public, "private")
        visibility.update(Content("public" if item.public else "private: only you can see it"))
        self.query_one("#item-seller", Static).update(Content(item.owner_name))
        self.query_one("#item-tags", Static).update(Content(", ".join(item.tags) or "none"))
        self.set_class(self.mine, "-mine")
        self.query_one("#add-to-cart", Button).disabled = (
            item.stock <= 0 or self.has_class("-removed") or self.own
        )
        self.refresh_bindings()

    def _show_detail(self, detail: ItemDetail) -> None:
        self._show_item(detail)
        self.query_one("#item-description", Static).update(
            Content(detail.description or "No description.")
        )
        self.query_one("#item-details", Static).update(
            Content(
                f"{detail.width}×{detail.height} {detail.format} · {format_size(detail.size_bytes)}"
            )
        )

    @work(exclusive=True, group="item")
    async def _load(self) -> None:
        try:
            await self._fetch_and_show()
        except NoMatches:
            return  # the screen was taken down while the item was on its way (e.g. logged out)

    async def _fetch_and_show(self) -> None:
        """Fetch the full item and its preview, show them, then start the look-alikes."""
        app = self.pixmart
        try:
            session = app.require_session()
            detail = await get_item(session, self.item_id)
        except Exception as exc:
            app.report_failure(exc)
            await self.query_one(Picture).show(None, "The item could not be loaded.")
            return
        self.detail = detail
        self._show_detail(detail)
        await app.watch_items([self.item_id])
        try:
            if detail.preview is None:  # the item went private or away between two requests
                raise LookupError(f"item {self.item_id} has no preview")
            preview = await asyncio.to_thread(decode_picture, detail.preview, PREVIEW_MAX_SIDE)
        except Exception:
            await self.query_one(Picture).show(None, "The picture could not be shown.")
        else:
            await self.query_one(Picture).show(preview)
        self._load_similar()

    @work(exclusive=True, group="item-similar")
    async def _load_similar(self) -> None:
        """Fill the strip of look-alikes (quietly: the strip is a nicety, the item is shown)."""
        try:
            await self._fetch_similar()
        except NoMatches:
            return  # the screen was taken down while the look-alikes were on their way

    async def _fetch_similar(self) -> None:
        if not self.pixmart.has_vision:
            return
        try:
            batch = await similar_to_item(
                self.pixmart.require_session(), self.item_id, limit=STRIP_ITEMS
            )
        except Exception as exc:
            if is_warming_up(exc):
                await self.query_one(SimilarStrip).show_note("Image search warming up…")
            return  # e.g. the picture is not embedded yet; "s" says why when asked
        await self.query_one(SimilarStrip).show_items(batch.items[:STRIP_ITEMS])

    async def _server_event(self, event: Event) -> None:
        if isinstance(event, ItemChanged) and event.item_id == self.item_id:
            if self.detail is not None:
                self.detail.title = event.title
                self.detail.price_cents = event.price_cents
                self.detail.stock = event.stock
                self.detail.public = event.public
                self._show_detail(self.detail)
        elif isinstance(event, ItemRemoved) and event.item_id == self.item_id:
            self.add_class("-removed")
            self.query_one("#add-to-cart", Button).disabled = True
            self.refresh_bindings()

    # -- actions -------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("edit", "delete"):
            return self.mine and not self.has_class("-removed")
        if action == "similar":
            return True if self.pixmart.has_vision else None
        if action == "add_to_cart":
            if self.own:
                return False  # a seller cannot buy their own item
            source = self.detail or self.card
            sold_out = source is not None and source.stock <= 0
            return None if self.has_class("-removed") or sold_out else True
        return True

    def action_back(self) -> None:
        """Back to where the item was opened from."""
        self.dismiss(None)

    @on(Button.Pressed, "#add-to-cart")
    @on(Input.Submitted, "#item-quantity")
    def action_add_to_cart(self) -> None:
        """Put the chosen quantity in the cart."""
        text = self.query_one("#item-quantity", Input).value.strip() or "1"
        try:
            quantity = int(text)
        except ValueError:
            quantity = 0
        if quantity < 1:
            self.notify("The quantity is a whole number of at least 1.", severity="warning")
            return
        self.app.run_worker(self.pixmart.cart.add(self.item_id, quantity), group="cart")

    @on(Button.Pressed, "#similar")
    def action_favourite(self) -> None:
        """Keep this item as a favourite, or stop keeping it (the person is told which)."""
        source = self.detail or self.card
        self.pixmart.favourites.toggle(self.item_id, source.title if source is not None else "")

    def action_similar(self) -> None:
        """List every item that looks like this one, best first."""
        source = self.detail or self.card
        self.pixmart.find_similar(
            self.item_id,
            title=source.title if source is not None else "",
            thumbnail=source.thumbnail if source is not None else None,
        )

    @on(CardGrid.Opened)
    def _open_look_alike(self, message: CardGrid.Opened) -> None:
        message.stop()
        self.pixmart.open_item(message.card)

    @on(Button.Pressed, "#edit")
    @work(exclusive=True, group="item-edit")
    async def action_edit(self) -> None:
        """Edit the listing in a form."""
        detail = self.detail
        if detail is None or not self.mine:
            return
        fields = ItemFields(
            title=detail.title,
            description=detail.description,
            price_cents=detail.price_cents,
            stock=detail.stock,
            tags=list(detail.tags),
            public=detail.public,
        )
        changes = await self.app.push_screen_wait(
            EditItemDialog(fields, currency=self.pixmart.currency)
        )
        if changes is None:
            return
        await self._apply(changes)

    async def _apply(self, changes: ItemEdit) -> None:
        app = self.pixmart
        try:
            card = await edit_item(
                app.require_session(),
                self.item_id,
                title=changes.title,
                description=changes.description,
                price_cents=changes.price_cents,
                stock=changes.stock,
                tags=changes.tags,
                public=changes.public,
            )
        except Exception as exc:
            app.report_failure(exc)
            return
        if self.detail is not None:
            self.detail.title = card.title
            self.detail.price_cents = card.price_cents
            self.detail.stock = card.stock
            self.detail.public = card.public
            self.detail.tags = list(card.tags)
            if changes.description is not None:
                self.detail.description = changes.description
            self._show_detail(self.detail)
        self.notify("Saved.", timeout=3)

    @on(Button.Pressed, "#delete")
    @work(exclusive=True, group="item-edit")
    async def action_delete(self) -> None:
        """Delete the item, after a confirmation."""
        if not self.mine:
            return
        title = self.detail.title if self.detail else self.card.title if self.card else "this item"
        confirmed = await self.app.push_screen_wait(
            ConfirmDialog(
                f"Delete “{title}”?",
                "It disappears from the catalogue for everyone. This cannot be undone.",
                confirm_label="Delete",
                dangerous=True,
            )
        )
        if not confirmed:
            return
        app = self.pixmart
        try:
            results = await delete_items(app.require_session(), [self.item_id])
        except Exception as exc:
            app.report_failure(exc)
            return
        failed = [result for result in results if result.error is not None]
        if failed:
            self.notify(failed[0].message or "The item could not be deleted.", severity="error")
            return
        self.notify(f"Deleted “{title}”.", timeout=3)
        self.dismiss(None)


__all__ = ["ItemScreen"]
