"""Provides the pixmart terminal client: the Textual app and the scripting commands.

The app is imported lazily so the scripting commands start without loading Textual.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tui.app import PixmartApp

__all__ = ["PixmartApp"]


def __getattr__(name: str) -> Any:
    if name == "PixmartApp":
        from tui.app import PixmartApp

        return PixmartApp
    raise AttributeError(f"module 'tui' has no attribute {name!r}")
