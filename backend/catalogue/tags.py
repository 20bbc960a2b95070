"""Provides the rules of tags: normalisation, autocomplete prefixes and the starter set's file.

A tag is 1 to 32 characters from ``a-z``, ``0-9`` and ``-`` after trimming and lower-casing;
anything else is refused with ``bad_request`` rather than silently mangled, so a seller never
ends up with a tag they did not type. An invisible or bidi character gets its own message
(:func:`backend.safetext.refuse_hidden`), since the seller cannot see what is wrong.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from backend.safetext import refuse_hidden
from protocol.errors import BadRequest

log = logging.getLogger(__name__)

MAX_TAG_LENGTH: Final = 32
MAX_TAGS_PER_ITEM: Final = 20
_TAG: Final = re.compile(r"[a-z0-9-]{1,32}")
_PREFIX: Final = re.compile(r"[a-z0-9-]{0,32}")


def normalise_tag(raw: str) -> str:
    """Return ``raw`` trimmed and lower-cased, or raise :class:`BadRequest` if it is no tag."""
    tag = refuse_hidden(raw, "tag").strip().lower()
    if not _TAG.fullmatch(tag):
        raise BadRequest(
            f"{raw!r} is not a valid tag: a tag has 1 to {MAX_TAG_LENGTH} characters "
            "from a-z, 0-9 and '-'"
        )
    return tag


def normalise_tags(raws: Iterable[str]) -> tuple[str, ...]:
    """Return the normalised tags without duplicates, in the order given.

    Raises:
        BadRequest: a tag is invalid, or there are too many.
    """
    tags = tuple(dict.fromkeys(normalise_tag(raw) for raw in raws))
    if len(tags) > MAX_TAGS_PER_ITEM:
        raise BadRequest(f"An item has at most {MAX_TAGS_PER_ITEM} tags")
    return tags


def normalise_prefix(prefix: str) -> str | None:
    """Return an autocomplete prefix normalised, or ``None`` if no tag can start with it."""
    cleaned = prefix.strip().lower()
    return cleaned if _PREFIX.fullmatch(cleaned) else None


def read_starter_tags(path: Path) -> list[str]:
    """Return the tags listed in ``path``: one per line, blank lines and ``#`` comments skipped.

    Lines that are not valid tags are logged and skipped: a typo in a shipped file must not
    keep the server from starting.
    """
    tags: list[str] = []
    for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            tags.append(normalise_tag(text))
        except BadRequest:
            log.warning("%s:%d: %r is not a valid tag; skipped", path, number, text)
    return list(dict.fromkeys(tags))
