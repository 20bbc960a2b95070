"""Provides :class:`CartScreen`: the cart as a table, kept current live, and the checkout.

The cart is the server's (see :class:`tui.data.cart.CartModel`): this screen shows the cart the
model publishes, flags each line that cannot be bought as it stands, and turns keys into cart
changes that go to the server in the background. Nothing here waits on the network in a key handler.
"""

from __future__ import annotations

from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.content import Content
from textual.widgets import DataTable, Static

from protocol.checkout import DEFINITE_REFUSALS
from protocol.commerce_client import checkout_failures
from protocol.errors import Conflict, OutOfStock, PixmartError
from protocol.messages.commerce import Cart, CartLine, OrderPlaced
from protocol.money import format_price
from tui.data.commerce import (
    blocking_failures,
    failure_words,
    for_sale,
    items,
    shown_total,
    units,
)
from tui.dialogs.confirm import ConfirmDialog
from tui.dialogs.order import OrderDialog
from tui.dialogs.quantity import QuantityDialog
from tui.feedback import describe_error
from tui.screens.base import PixmartScreen
from tui.screens.item import ItemScreen
from tui.widgets.cart_table import CartTable

#: ``+`` and ``-`` share one footer entry.
QUANTITY_KEYS = Binding.Group("Quantity", compact=True)

EMPTY_TEXT = "Your cart is empty.\n\nPress g for the gallery; on an item, a puts it in the cart."


class CartScreen(PixmartScreen):
    """Lines with price, quantity, line total, stock and flags; the total below; checkout."""

    TITLE = "Cart"
    AUTO_FOCUS = "#cart-table"

    DEFAULT_CSS = """
    CartScreen {
        #cart-table { height: 1fr; }
        #cart-empty {
            display: none;
            height: 1fr;
            width: 1fr;
            content-align: center middle;
            text-align: center;
            color: $text-muted;
        }
        &.-empty #cart-empty { display: block; }
        &.-empty #cart-table { display: none; }
        #cart-summary { height: 1; padding: 0 2; background: $boost; }
        #cart-status { width: 1fr; text-wrap: nowrap; text-overflow: ellipsis; }
        #cart-status.-attention { color: $text-warning; }
        #cart-total { width: auto; text-style: bold; }
    }
    """

    BINDINGS = [
        Binding(
            "plus,equals_sign",
            "more",
            "One more",
            id="cart.more",
            key_display="+",
            group=QUANTITY_KEYS,
        ),
        Binding(
            "minus", "fewer", "One fewer", id="cart.fewer", key_display="-", group=QUANTITY_KEYS
        ),
        Binding(
            "e",
            "quantity",
            "Type a quantity",
            id="cart.quantity",
            show=False,
            tooltip="Typing a digit on a line does it too",
        ),
        Binding("x,delete", "remove", "Remove", id="cart.remove"),
        Binding("C", "clear", "Empty cart", id="cart.clear", tooltip="After a confirmation"),
        Binding(
            "b,ctrl+s",
            "checkout",
            "Check out",
            id="cart.checkout",
            tooltip="Buy everything in the cart (after a confirmation)",
        ),
        Binding("r", "reload", "Refresh", id="cart.reload", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        #: Whether the cart had lines when last shown (the keys offered depend on it).
        self.has_lines = False
        self._checkout_running = False
        self._empty_text = EMPTY_TEXT

    def compose_body(self) -> ComposeResult:
        yield CartTable(id="cart-table")
        yield Static(Content(EMPTY_TEXT), id="cart-empty")
        with Horizontal(id="cart-summary"):
            yield Static("loading your cart…", id="cart-status")
            yield Static("", id="cart-total", classes="price")

    @property
    def table(self) -> CartTable:
        """The lines table."""
        return self.query_one("#cart-table", CartTable)

    @property
    def row_ids(self) -> list[int]:
        """Item ids of the rows on screen, in order."""
        return self.table.row_ids

    def on_mount(self) -> None:
        shop = self.pixmart.cart
        shop.updates.subscribe(self, self._cart_changed)
        self.show_cart()
        shop.request_refresh(report=True)

    def on_screen_resume(self) -> None:
        # Signals reach screens of other modes too, but a fresh look costs nothing.
        self.show_cart()

    # -- showing -------------------------------------------------------------------------------

    def _cart_changed(self, cart: Cart) -> None:
        del cart  # the model holds the cart and the quantities on their way
        self.show_cart()

    def show_cart(self) -> None:
        """Show the cart the model holds, keeping the cursor on the same line."""
        shop = self.pixmart.cart
        cart = shop.cart
        if cart is None:
            self.set_class(False, "-empty")
            if shop.sells is False:
                self._show_only("This server does not sell through a cart.")
            return
        self._say_when_empty(EMPTY_TEXT)
        self.table.show(cart)
        self.set_class(not cart.lines, "-empty")
        self._show_summary(cart)
        if self.has_lines != bool(cart.lines):
            self.has_lines = bool(cart.lines)
            self.refresh_bindings()  # the line keys apply only to a cart with lines

    def _show_summary(self, cart: Cart) -> None:
        shop = self.pixmart.cart
        status = self.query_one("#cart-status", Static)
        total = self.query_one("#cart-total", Static)
        currency = self.pixmart.currency
        if not cart.lines:
            status.set_class(False, "-attention")
            status.update("Nothing in the cart")
            total.update("")
            return
        count = sum(shop.quantity(line) for line in cart.lines)
        parts = [f"{items(len(cart.lines))} · {units(count)}"]
        attention = len(blocking_failures(cart))
        if attention:
            lines = "line needs" if attention == 1 else "lines need"
            parts.append(f"{attention} {lines} attention before checkout (x removes, - lowers)")
        if shop.checking_out:
            parts.append("checking out…")
        elif shop.busy:
            parts.append("updating…")
        status.set_class(bool(attention), "-attention")
        status.update(Content(" · ".join(parts)))
        cents = shown_total(cart, shop.quantity) if shop.busy else cart.total_cents
        total.update(Content(f"Total {format_price(cents, currency)}"))

    def _show_only(self, text: str) -> None:
        self._say_when_empty(text)
        self.add_class("-empty")
        self.query_one("#cart-status", Static).update("")

    def _say_when_empty(self, text: str) -> None:
        if text != self._empty_text:
            self._empty_text = text
            self.query_one("#cart-empty", Static).update(Content(text))

    def current_line(self) -> CartLine | None:
        """The line under the cursor."""
        cart = self.pixmart.cart.cart
        item_id = self.table.current_item()
        if cart is None or item_id is None:
            return None
        return next((line for line in cart.lines if line.item_id == item_id), None)

    # -- actions -------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        shop = self.pixmart.cart
        has_lines = shop.cart is not None and bool(shop.cart.lines)
        if action in ("more", "fewer", "quantity", "remove"):
            return True if self.current_line() is not None else None
        if action in ("clear", "checkout"):
            return True if has_lines else None
        return True

    def _changeable(self, line: CartLine) -> bool:
        """Whether the line's quantity may change; says why not otherwise."""
        if line.item_id in self.pixmart.cart.removing:
            return False
        if not for_sale(line):
            self.notify(
                f"“{line.title}” is no longer for sale: x takes it out of the cart.",
                severity="warning",
                markup=False,
            )
            return False
        return True

    def _ask(self, line: CartLine, quantity: int) -> None:
        """Want ``quantity`` units of the line, if the stock allows."""
        if quantity > line.stock:
            left = "none" if line.stock <= 0 else f"only {line.stock:,}"
            self.notify(
                f"There are {left} of “{line.title}” left.", severity="warning", markup=False
            )
            return
        self.pixmart.cart.set_quantity(line.item_id, quantity)

    def action_more(self) -> None:
        """One more unit of the highlighted line."""
        line = self.current_line()
        if line is not None and self._changeable(line):
            self._ask(line, self.pixmart.cart.quantity(line) + 1)

    def action_fewer(self) -> None:
        """One unit fewer of the highlighted line (x takes the last one out)."""
        line = self.current_line()
        if line is None or not self._changeable(line):
            return
        quantity = self.pixmart.cart.quantity(line)
        if quantity <= 1:
            self.notify("That is the last one: x takes the line out of the cart.", timeout=3)
            return
        # Fewer is always allowed, even above the stock: it is how a short line is fixed.
        self.pixmart.cart.set_quantity(line.item_id, quantity - 1)

    def action_quantity(self) -> None:
        """Type how many units of the highlighted line are wanted."""
        self._type_quantity(None)

    def on_key(self, event: events.Key) -> None:
        # A digit on a line starts typing its quantity (in the dialog, which takes it from there).
        character = event.character
        if character is not None and character.isdigit() and character.isascii():
            if self.focused is self.table and self.current_line() is not None:
                event.stop()
                event.prevent_default()
                self._type_quantity(character)

    @work(exclusive=True, group="cart-quantity")
    async def _type_quantity(self, typed: str | None) -> None:
        line = self.current_line()
        if line is None or not self._changeable(line):
            return
        shop = self.pixmart.cart
        quantity = await self.app.push_screen_wait(
            QuantityDialog(line.title, shop.quantity(line), line.stock, typed)
        )
        if quantity is not None and quantity != shop.quantity(line):
            self._ask(line, quantity)

    def action_remove(self) -> None:
        """Take the highlighted line out of the cart."""
        line = self.current_line()
        if line is None or line.item_id in self.pixmart.cart.removing:
            return
        self.app.run_worker(self.pixmart.cart.remove(line.item_id), group="cart-remove")

    @work(exclusive=True, group="cart-clear")
    async def action_clear(self) -> None:
        """Empty the cart, after a confirmation."""
        cart = self.pixmart.cart.cart
        if cart is None or not cart.lines:
            return
        count = sum(line.quantity for line in cart.lines)
        confirmed = await self.app.push_screen_wait(
            ConfirmDialog(
                "Empty the cart?",
                f"All {items(len(cart.lines))} ({units(count)}) are taken out of it.",
                confirm_label="Empty",
                dangerous=True,
            )
        )
        if confirmed and await self.pixmart.cart.clear():
            self.notify("The cart is empty.", timeout=3)

    @on(DataTable.RowSelected)
    def _row_selected(self, message: DataTable.RowSelected) -> None:
        message.stop()
        self.action_open()

    def action_open(self) -> None:
        """Open the highlighted line's item."""
        line = self.current_line()
        if line is None:
            return
        if not for_sale(line):
            self.notify(
                f"“{line.title}” is no longer for sale, so it cannot be shown.",
                severity="warning",
                markup=False,
            )
            return
        self.app.push_screen(ItemScreen(line.item_id))

    def action_reload(self) -> None:
        """Ask the server for the cart afresh."""
        self.pixmart.cart.request_refresh(report=True)

    # -- checkout ------------------------------------------------------------------------------

    def action_checkout(self) -> None:
        """Buy everything in the cart, after a confirmation showing the count and the total."""
        if not self._checkout_running:
            self._checkout_running = True
            self._checkout()

    @work(group="checkout")
    async def _checkout(self) -> None:
        try:
            await self._confirm_and_buy()
        finally:
            self._checkout_running = False

    async def _confirm_and_buy(self) -> None:
        app = self.pixmart
        shop = app.cart
        cart = shop.cart
        currency = app.currency
        if cart is None or not cart.lines:
            self.notify("Your cart is empty.", timeout=3)
            return
        if shop.busy:
            self.notify("The cart is still being updated: try again in a moment.", timeout=3)
            return
        blocked = blocking_failures(cart)
        if blocked:
            words = "\n".join(f"• {text}" for text in failure_words(blocked, currency))
            self.notify(
                f"{words}\nChange or remove these lines first.",
                title="Not yet",
                severity="warning",
                timeout=8,
                markup=False,
            )
            return
        total = format_price(cart.total_cents, currency)
        price_note = ""
        if any(line.price_cents != line.added_price_cents for line in cart.lines):
            price_note = " Some prices changed since you added the items: the total is today's."
        confirmed = await self.app.push_screen_wait(
            ConfirmDialog(
                f"Buy {items(len(cart.lines))} ({units(cart.units)}) for {total}?",
                "Everything in the cart is bought at once, or nothing is." + price_note,
                confirm_label=f"Buy for {total}",
            )
        )
        if not confirmed:
            return
        try:
            placed = await shop.checkout(cart.total_cents)
        except (OutOfStock, Conflict) as exc:
            self._tell_refusal(exc, currency)
            shop.request_refresh(report=True)
            return
        except PixmartError as exc:
            self._tell_uncertain(exc)
            return
        self._tell_placed(placed)
        choice = await self.app.push_screen_wait(
            OrderDialog(placed.order, placed=True, replayed=placed.replayed, offer_orders=True)
        )
        if choice == "orders":
            await app.go("orders")

    def _tell_refusal(self, exc: OutOfStock | Conflict, currency: str) -> None:
        failures = checkout_failures(exc)
        if not failures:
            self.notify(
                exc.message, title="Nothing was bought", severity="error", timeout=10, markup=False
            )
            return
        lines = [f"• {text}" for text in failure_words(failures, currency)]
        details = exc.details or {}
        now, shown = details.get("total_cents"), details.get("expected_total_cents")
        if isinstance(now, int) and isinstance(shown, int) and now != shown:
            lines.append(f"• the total is now {format_price(now, currency)}")
        lines.append("The cart shows what changed.")
        self.notify(
            "\n".join(lines), title="Nothing was bought", severity="error", timeout=12, markup=False
        )

    def _tell_uncertain(self, exc: PixmartError) -> None:
        if isinstance(exc, DEFINITE_REFUSALS):
            self.pixmart.report_failure(exc)  # e.g. an empty cart: nothing was bought
            return
        self.notify(
            f"{describe_error(exc)} If the order went through, checking out again shows it "
            "without buying twice.",
            title="Checkout not confirmed",
            severity="error",
            timeout=12,
            markup=False,
        )

    def _tell_placed(self, placed: OrderPlaced) -> None:
        order = placed.order
        total = format_price(order.total_cents, order.currency)
        if placed.replayed:
            self.notify(f"Order #{order.id} had already been placed ({total}).", timeout=5)
        else:
            self.notify(f"Order #{order.id} is placed: {total}.", title="Thank you", timeout=5)


__all__ = ["CartScreen"]
