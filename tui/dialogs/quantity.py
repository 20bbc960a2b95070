"""Provides :class:`QuantityDialog`: type how many units of a cart line are wanted."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static


def parse_quantity(text: str, stock: int | None = None) -> int:
    """A quantity typed by a person, at least 1 and, when ``stock`` is known, at most that.

    Raises:
        ValueError: not a whole number in range; the message says what would do.
    """
    try:
        quantity = int(text.strip().replace(",", "").replace("_", ""))
    except ValueError:
        raise ValueError("Type a whole number, e.g. 2") from None
    if quantity < 1:
        raise ValueError("At least 1 (x takes the line out of the cart)")
    if stock is not None and quantity > stock:
        if stock <= 0:
            raise ValueError("None left: this item is sold out")
        raise ValueError(f"Only {stock:,} left")
    return quantity


class QuantityDialog(ModalScreen[int | None]):
    """Asks for a number of units; dismisses with it, or ``None`` when cancelled.

    Args:
        title: the line's title.
        quantity: the units wanted now.
        stock: units left, to say and to check against; ``None`` when not known.
        typed: what the person already typed (a digit pressed on the cart), replacing the
            current quantity.
    """

    DEFAULT_CSS = """
    QuantityDialog {
        align: center middle;
        background: $background 60%;
        & > Vertical {
            width: 52;
            height: auto;
            padding: 1 2;
            border: thick $primary;
            border-title-align: center;
            background: $surface;
        }
        .title { text-style: bold; width: 100%; }
        #quantity-input { width: 100%; margin-top: 1; }
        #quantity-hint { color: $text-muted; width: 100%; }
        #quantity-error { display: none; color: $text-error; width: 100%; height: auto; }
        &.-invalid #quantity-error { display: block; }
        Horizontal { height: auto; margin-top: 1; align-horizontal: right; }
        Button { margin-left: 2; }
    }
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="quantity.cancel")]

    def __init__(
        self, title: str, quantity: int, stock: int | None = None, typed: str | None = None
    ) -> None:
        super().__init__()
        self.item_title = title
        self.quantity = quantity
        self.stock = stock
        self.typed = typed

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "Quantity"
            yield Label(Content(f"How many of “{self.item_title}”?"), classes="title")
            yield Input(
                self.typed if self.typed is not None else str(self.quantity),
                id="quantity-input",
                type="integer",
                max_length=9,
            )
            if self.stock is None:
                hint = f"{self.quantity:,} in the cart now"
            else:
                hint = f"{self.quantity:,} in the cart now · {self.stock:,} left"
            yield Static(Content(f"{hint} · Enter sets it"), id="quantity-hint")
            yield Static("", id="quantity-error")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button("Set", id="set", variant="primary")

    def on_mount(self) -> None:
        field = self.query_one("#quantity-input", Input)
        field.focus()
        if self.typed is None:
            field.select_all()  # typing replaces the current quantity
        else:
            field.cursor_position = len(field.value)  # typing goes on after the first digit

    @on(Input.Submitted)
    @on(Button.Pressed, "#set")
    def action_set(self) -> None:
        """Check the number and hand it back."""
        text = self.query_one("#quantity-input", Input).value
        try:
            quantity = parse_quantity(text, self.stock)
        except ValueError as exc:
            self.query_one("#quantity-error", Static).update(Content(str(exc)))
            self.add_class("-invalid")
            return
        self.dismiss(quantity)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        """Close without changing anything."""
        self.dismiss(None)


__all__ = ["QuantityDialog", "parse_quantity"]
