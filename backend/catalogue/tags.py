"""Provides tags: normalisation, the starter set, an item's tags and counts per viewer.

A tag is 1 to 32 characters from ``a-z``, ``0-9`` and ``-`` after trimming and lower-casing;
anything else is refused with ``bad_request`` rather than silently mangled, so a seller never
ends up with a tag they did not type. An invisible or bidi character gets its own message
(:func:`backend.safetext.refuse_hidden`), since the seller cannot see what is wrong.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final

import aiosqlite

from backend.safetext import refuse_hidden
from backend.storage.database import Database
from protocol.errors import BadRequest
from protocol.messages.catalogue import TagCount

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


async def load_starter_tags(db: Database, path: Path) -> int:
    """Load the starter tags on the first start; return how many were added.

    Later starts leave the table alone (the set may have been curated since).
    """
    if await db.fetchone("SELECT 1 FROM tags WHERE starter = 1 LIMIT 1") is not None:
        return 0
    if not path.is_file():
        log.warning("no starter tags: %s is missing", path)
        return 0
    tags = read_starter_tags(path)
    async with db.transaction() as conn:
        await conn.executemany(
            "INSERT INTO tags (name, starter) VALUES (?, 1)"
            " ON CONFLICT (name) DO UPDATE SET starter = 1",
            [(tag,) for tag in tags],
        )
    return len(tags)


async def set_item_tags(conn: aiosqlite.Connection, item_id: int, tags: Sequence[str]) -> None:
    """Replace an item's tags inside the caller's write transaction (text index included)."""
    await conn.execute("DELETE FROM item_tags WHERE item_id = ?", (item_id,))
    if tags:
        await conn.executemany(
            "INSERT INTO tags (name) VALUES (?) ON CONFLICT (name) DO NOTHING",
            [(tag,) for tag in tags],
        )
        marks = ", ".join("?" * len(tags))
        await conn.execute(
            "INSERT INTO item_tags (item_id, tag_id)"
            f" SELECT ?, id FROM tags WHERE name IN ({marks})",
            (item_id, *tags),
        )
    await conn.execute("UPDATE items_fts SET tags = ? WHERE rowid = ?", (" ".join(tags), item_id))


async def tags_of(db: Database, item_ids: Sequence[int]) -> dict[int, list[str]]:
    """Return the tags of each item (sorted by name); items without tags are absent."""
    found: dict[int, list[str]] = {}
    if not item_ids:
        return found
    marks = ", ".join("?" * len(item_ids))
    rows = await db.fetchall(
        "SELECT it.item_id, t.name FROM item_tags it JOIN tags t ON t.id = it.tag_id"
        f" WHERE it.item_id IN ({marks}) ORDER BY t.name",
        tuple(item_ids),
    )
    for row in rows:
        found.setdefault(int(row[0]), []).append(str(row[1]))
    return found


async def tag_counts(db: Database, viewer_id: int, prefix: str, limit: int) -> list[TagCount]:
    """Return tags starting with ``prefix`` and how many items ``viewer_id`` can see carry each.

    Tags only private items of other people carry are left out: their names alone would
    reveal something of those items. Starter tags are listed even when unused, for completion.
    Most used first, then by name.
    """
    normalised = normalise_prefix(prefix)
    if normalised is None:
        return []
    # The prefix holds only [a-z0-9-], none of which GLOB treats specially.
    rows = await db.fetchall(
        "SELECT t.name, COUNT(i.id) AS n FROM tags t"
        " LEFT JOIN item_tags it ON it.tag_id = t.id"
        " LEFT JOIN items i ON i.id = it.item_id AND (i.public = 1 OR i.owner_id = ?)"
        " WHERE t.name GLOB ?"
        " GROUP BY t.id HAVING n > 0 OR t.starter = 1"
        " ORDER BY n DESC, t.name LIMIT ?",
        (viewer_id, normalised + "*", limit),
    )
    return [TagCount(name=str(row[0]), count=int(row[1])) for row in rows]
