"""Provides the full screens of the TUI: log in, gallery, search, similar items, item, upload,
my items, cart, orders, the seller's dashboard, favourites, the inbox and help."""

from __future__ import annotations

from tui.screens.base import PixmartScreen
from tui.screens.cart import CartScreen
from tui.screens.dashboard import DashboardScreen
from tui.screens.favourites import FavouritesScreen
from tui.screens.gallery import GalleryScreen
from tui.screens.help import HelpScreen
from tui.screens.inbox import InboxScreen
from tui.screens.item import ItemScreen
from tui.screens.login import DEFAULT_SERVER, LoginScreen
from tui.screens.mine import MyItemsScreen
from tui.screens.orders import OrdersScreen
from tui.screens.search import SearchScreen
from tui.screens.similar import SimilarScreen
from tui.screens.upload import UploadScreen

__all__ = [
    "DEFAULT_SERVER",
    "CartScreen",
    "DashboardScreen",
    "FavouritesScreen",
    "GalleryScreen",
    "HelpScreen",
    "InboxScreen",
    "ItemScreen",
    "LoginScreen",
    "MyItemsScreen",
    "OrdersScreen",
    "PixmartScreen",
    "SearchScreen",
    "SimilarScreen",
    "UploadScreen",
]
