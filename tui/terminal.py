"""Provides what the terminal really is: its name and version from the XTVERSION reply.

Asked once, before Textual owns the terminal (Textual's input thread would swallow the reply);
:mod:`tui.widgets.picture` asks on import, as textual-image does for the cell size.
"""

from __future__ import annotations

import functools
import re
import sys
from dataclasses import dataclass

# textual-image's reader of terminal replies: the same raw-mode read its own detection uses.
from textual_image._terminal import TerminalError, capture_terminal_response

#: How long a terminal gets to answer; one that does not answer at all costs this once.
REPLY_TIMEOUT = 0.1
_XTVERSION_QUERY = "\x1b[>q"
_REPLY_START = "\x1bP>|"
_REPLY_END = "\x1b\\"
_NAME_VERSION = re.compile(r"^\s*([A-Za-z][\w.-]*)[ (]+v?(\d+(?:\.\d+)*)")


@dataclass(frozen=True)
class TerminalVersion:
    """A terminal's name (lower case) and version, e.g. ``kitty`` 0.26.5."""

    name: str
    version: tuple[int, ...]


def parse_xtversion(reply: str) -> TerminalVersion | None:
    """``kitty(0.26.5)``, ``XTerm(379)``, ``WezTerm 20240203-...``: the name and version, if any."""
    match = _NAME_VERSION.match(reply)
    if match is None:
        return None
    return TerminalVersion(
        match.group(1).lower(), tuple(int(part) for part in match.group(2).split("."))
    )


@functools.cache
def terminal_version() -> TerminalVersion | None:
    """The terminal's XTVERSION answer, or ``None`` (not a terminal, or it does not say)."""
    stdout = sys.__stdout__
    if stdout is None or not stdout.isatty():
        return None
    try:
        with capture_terminal_response(_REPLY_START, _REPLY_END, REPLY_TIMEOUT) as response:
            stdout.write(_XTVERSION_QUERY)
            stdout.flush()
    except (TerminalError, TimeoutError, OSError):
        return None
    return parse_xtversion(response.sequence[len(_REPLY_START) : -len(_REPLY_END)])


def draws_kitty_placeholders(terminal: TerminalVersion | None) -> bool:
    """Whether ``terminal`` draws pictures placed through Unicode placeholders (textual-image's
    Kitty renderer): kitty from 0.28 on. kitty 0.26 (Debian bookworm's) answers the graphics
    query but shows the placeholders as boxes. Unknown terminals are given the benefit of the
    doubt, as textual-image does.
    """
    if terminal is None or terminal.name != "kitty":
        return True
    return terminal.version >= (0, 28)


__all__ = ["TerminalVersion", "draws_kitty_placeholders", "parse_xtversion", "terminal_version"]
