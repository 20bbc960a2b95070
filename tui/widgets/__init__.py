"""Provides the pixmart widgets: header, connection indicator, pictures, the card grid, the
cart table, the batched table of orders and sales, picture files, the upload queue, look-alikes,
tag proposals, the dashboard's sales charts and the key footer."""

from __future__ import annotations

from tui.widgets.batch_table import BatchTable
from tui.widgets.card_grid import CardGrid, ItemTile, stock_label
from tui.widgets.cart_table import CartTable
from tui.widgets.catalogue_view import CatalogueView
from tui.widgets.connection_indicator import ConnectionIndicator, describe_status, short_fingerprint
from tui.widgets.key_footer import KeyFooter
from tui.widgets.picture import Picture, image_widget_class
from tui.widgets.picture_tree import PathInput, PictureTree, is_picture, path_completions
from tui.widgets.sales_chart import SalesChart
from tui.widgets.similar_strip import SimilarStrip
from tui.widgets.status_header import StatusHeader
from tui.widgets.tag_chips import TagChips
from tui.widgets.upload_queue import UploadQueue, UploadRow

__all__ = [
    "BatchTable",
    "CardGrid",
    "CartTable",
    "CatalogueView",
    "ConnectionIndicator",
    "ItemTile",
    "KeyFooter",
    "PathInput",
    "Picture",
    "PictureTree",
    "SalesChart",
    "SimilarStrip",
    "StatusHeader",
    "TagChips",
    "UploadQueue",
    "UploadRow",
    "describe_status",
    "image_widget_class",
    "is_picture",
    "path_completions",
    "short_fingerprint",
    "stock_label",
]
