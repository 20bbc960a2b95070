"""Provides :class:`EditItemDialog`: the owner's form for an item; returns the changes only."""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Static, TextArea

from protocol.listing_fields import parse_tags
from protocol.money import format_amount, parse_price


@dataclass(frozen=True)
class ItemEdit:
    """Changes to an item's listing; ``None`` keeps a field as it is."""

    title: str | None = None
    description: str | None = None
    price_cents: int | None = None
    stock: int | None = None
    tags: list[str] | None = None
    public: bool | None = None

    @property
    def empty(self) -> bool:
        """Whether nothing would change."""
        fields = (self.title, self.description, self.price_cents, self.stock, self.tags)
        return all(value is None for value in fields) and self.public is None


@dataclass(frozen=True)
class ItemFields:
    """An item's editable fields as they are now (what the form starts from)."""

    title: str
    description: str
    price_cents: int
    stock: int
    tags: list[str]
    public: bool


def parse_stock(text: str) -> int:
    """A stock count typed by a person.

    Raises:
        ValueError: not a whole number of zero or more.
    """
    try:
        stock = int(text.strip().replace(",", "").replace("_", ""))
    except ValueError:
        raise ValueError("Stock is a whole number, e.g. 5") from None
    if stock < 0:
        raise ValueError("Stock cannot be negative")
    return stock


class EditItemDialog(ModalScreen[ItemEdit | None]):
    """Edit title, price, stock, tags, visibility and description.

    Dismisses with an :class:`ItemEdit` holding the changed fields, or ``None`` when cancelled.
    """

    DEFAULT_CSS = """
    EditItemDialog {
        align: center middle;
        background: $background 60%;
        & > Vertical {
            width: 84;
            height: auto;
            max-height: 95%;
            padding: 1 2;
            border: thick $primary;
            border-title-align: center;
            background: $surface;
        }
        #edit-form {
            grid-size: 2;
            grid-columns: 14 1fr;
            grid-rows: 3;
            grid-gutter: 0 1;
            height: auto;
        }
        #edit-form Label { height: 3; content-align: left middle; }
        #edit-description-label { margin-top: 1; }
        TextArea { height: 7; }
        #edit-error { color: $text-error; height: auto; margin-top: 1; }
        Horizontal { height: auto; margin-top: 1; align-horizontal: right; }
        Button { margin-left: 2; }
    }
    """

    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="edit.save"),
        Binding("escape", "cancel", "Cancel", id="edit.cancel"),
    ]

    def __init__(self, fields: ItemFields, *, currency: str = "EUR") -> None:
        super().__init__()
        self.fields = fields
        self.currency = currency

    def compose(self) -> ComposeResult:
        fields = self.fields
        with Vertical() as box:
            box.border_title = "Edit item"
            with Grid(id="edit-form"):
                yield Label("Title")
                yield Input(fields.title, id="edit-title", max_length=200)
                yield Label(f"Price ({self.currency})")
                yield Input(
                    format_amount(fields.price_cents, self.currency),
                    id="edit-price",
                    placeholder="e.g. 12.50",
                )
                yield Label("Stock")
                yield Input(str(fields.stock), id="edit-stock", type="integer")
                yield Label("Tags")
                yield Input(", ".join(fields.tags), id="edit-tags", placeholder="cat, print")
                yield Label("Visibility")
                yield Checkbox(
                    "Public (everyone can see and buy it)", fields.public, id="edit-public"
                )
            yield Label("Description", id="edit-description-label")
            yield TextArea(fields.description, id="edit-description", soft_wrap=True)
            yield Static("", id="edit-error")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button("Save", id="save", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#edit-title", Input).focus()

    def _changes(self) -> ItemEdit:
        """The form's changes against the fields it started from.

        Raises:
            ValueError: a field holds something invalid; the message says which and why.
        """
        fields = self.fields
        title = self.query_one("#edit-title", Input).value.strip()
        if not title:
            raise ValueError("The title cannot be empty")
        price = parse_price(self.query_one("#edit-price", Input).value, self.currency)
        stock = parse_stock(self.query_one("#edit-stock", Input).value)
        tags = parse_tags(self.query_one("#edit-tags", Input).value)
        public = self.query_one("#edit-public", Checkbox).value
        description = self.query_one("#edit-description", TextArea).text.strip()
        return ItemEdit(
            title=title if title != fields.title else None,
            description=description if description != fields.description else None,
            price_cents=price if price != fields.price_cents else None,
            stock=stock if stock != fields.stock else None,
            tags=tags if tags != fields.tags else None,
            public=public if public != fields.public else None,
        )

    @on(Input.Submitted)
    @on(Button.Pressed, "#save")
    def action_save(self) -> None:
        """Check the form and hand back the changes."""
        try:
            changes = self._changes()
        except ValueError as exc:
            self.query_one("#edit-error", Static).update(str(exc))
            return
        self.dismiss(None if changes.empty else changes)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        """Close without changing anything."""
        self.dismiss(None)


__all__ = ["EditItemDialog", "ItemEdit", "ItemFields", "parse_stock", "parse_tags"]
