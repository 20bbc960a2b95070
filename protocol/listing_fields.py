"""Provides an item's listing fields as people give them: titles from file names, tag lists.

The TUI's upload screen and edit dialog and the scripting CLI all read them here, so the same
file gets the same title and the same text the same tags wherever it is typed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

#: Tags one item may carry (the server's limit too).
MAX_TAGS: Final = 20
#: The longest title the server takes.
MAX_TITLE: Final = 200
#: The title of an item given none.
UNTITLED: Final = "Untitled"

_SEPARATORS: Final = re.compile(r"[\s_.-]+")


def title_from_filename(path: Path) -> str:
    """A title made from a file name: ``red_bike-02.jpg`` and ``red.bike 02.jpg`` give
    ``Red bike 02``; a name of separators only gives ``Untitled``."""
    words = _SEPARATORS.sub(" ", path.stem).strip()
    return (words[:1].upper() + words[1:])[:MAX_TITLE] or UNTITLED


def parse_tags(text: str) -> list[str]:
    """``"cat, Print ,  cat"`` → ``["cat", "Print"]``: split on commas, trimmed, no repeats.

    The server normalises and validates each tag; this only splits what was typed.

    Raises:
        ValueError: more tags than an item may carry.
    """
    tags: list[str] = []
    seen: set[str] = set()
    for raw in text.split(","):
        tag = raw.strip()
        if tag and tag.casefold() not in seen:
            seen.add(tag.casefold())
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise ValueError(f"An item carries at most {MAX_TAGS} tags")
    return tags


__all__ = ["MAX_TAGS", "MAX_TITLE", "UNTITLED", "parse_tags", "title_from_filename"]
