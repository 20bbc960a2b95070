"""Provides the full screens of the TUI (log in, gallery, search, item, upload, my items, help)."""

from __future__ import annotations

from tui.screens.base import PixmartScreen
from tui.screens.gallery import GalleryScreen
from tui.screens.help import HelpScreen
from tui.screens.item import ItemScreen
from tui.screens.login import DEFAULT_SERVER, LoginScreen
from tui.screens.mine import MyItemsScreen
from tui.screens.search import SearchScreen
from tui.screens.upload import UploadScreen

__all__ = [
    "DEFAULT_SERVER",
    "GalleryScreen",
    "HelpScreen",
    "ItemScreen",
    "LoginScreen",
    "MyItemsScreen",
    "PixmartScreen",
    "SearchScreen",
    "UploadScreen",
]
