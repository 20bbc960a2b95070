"""Provides :class:`PixmartCommands`: every action in reach, offered by the command palette."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, Protocol, runtime_checkable

from textual.command import DiscoveryHit, Hit, Hits, Provider

from tui.keys import key_commands

#: A palette entry without a key: name, help, what to run.
PaletteCommand = tuple[str, str, Callable[[], Any]]


@runtime_checkable
class OffersCommands(Protocol):
    """An app with commands for the palette beyond its bound keys."""

    def palette_commands(self) -> Iterator[PaletteCommand]:
        """Commands the palette offers beyond the bound keys."""
        ...


class PixmartCommands(Provider):
    """Offers each described binding of the calling screen and the app, plus palette-only ones.

    A command's help shows its key, so the palette also teaches the keyboard.
    """

    def _commands(self) -> list[PaletteCommand]:
        app = self.app
        commands: list[PaletteCommand] = []
        seen: set[str] = set()
        for command in key_commands(self.screen):
            if not command.enabled or command.description in seen:
                continue
            seen.add(command.description)
            help_text = f"{command.keys} · {command.tooltip or command.section}"
            callback: Callable[[], Any] = partial(app.run_action, command.action, command.node)
            commands.append((command.description, help_text, callback))
        extra = app.palette_commands() if isinstance(app, OffersCommands) else iter(())
        for name, help_text, callback in extra:
            if name not in seen:
                seen.add(name)
                commands.append((name, help_text, callback))
        return commands

    async def discover(self) -> Hits:
        """Everything, before anything is typed."""
        for name, help_text, callback in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        """The commands whose names match ``query``, best first."""
        matcher = self.matcher(query)
        for name, help_text, callback in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)


__all__ = ["OffersCommands", "PaletteCommand", "PixmartCommands"]
