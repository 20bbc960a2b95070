"""Provides the modal dialogs; each dismisses with a typed result."""

from __future__ import annotations

from tui.dialogs.confirm import ConfirmDialog
from tui.dialogs.edit_item import EditItemDialog, ItemEdit, ItemFields, parse_stock
from tui.dialogs.order import OrderDialog
from tui.dialogs.pick_picture import PickPictureDialog
from tui.dialogs.quantity import QuantityDialog, parse_quantity
from tui.dialogs.trust import FingerprintChangedDialog, TrustDialog, grouped_fingerprint

__all__ = [
    "ConfirmDialog",
    "EditItemDialog",
    "FingerprintChangedDialog",
    "ItemEdit",
    "ItemFields",
    "OrderDialog",
    "PickPictureDialog",
    "QuantityDialog",
    "TrustDialog",
    "grouped_fingerprint",
    "parse_quantity",
    "parse_stock",
]
