"""Provides the pixmart widgets: header, connection indicator, pictures and the card grid."""

from __future__ import annotations

from tui.widgets.card_grid import CardGrid, ItemTile, stock_label
from tui.widgets.catalogue_view import CatalogueView
from tui.widgets.connection_indicator import ConnectionIndicator, describe_status, short_fingerprint
from tui.widgets.picture import Picture, image_widget_class
from tui.widgets.status_header import StatusHeader

__all__ = [
    "CardGrid",
    "CatalogueView",
    "ConnectionIndicator",
    "ItemTile",
    "Picture",
    "StatusHeader",
    "describe_status",
    "image_widget_class",
    "short_fingerprint",
    "stock_label",
]
