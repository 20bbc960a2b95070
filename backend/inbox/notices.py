"""Provides the notices of the inbox: what a deliverer hands in, what is stored, what is shown.

The view of a stored notice is made here, once for both engines, and it is where a notice about
an item its reader may no longer see loses its own text (which may name the item) for a neutral
one: visibility is judged again at every listing, never only when the notice was delivered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Protocol

from backend.safetext import hidden_character
from protocol.messages.inbox import Notice, NoticeItemStatus, NoticeKind

#: The longest notice text kept; longer ones are cut (with an ellipsis), never refused.
MAX_TEXT: Final = 300
#: What a notice about an item turned private to its reader says instead of its own text.
PRIVATE_TEXT: Final = "This item is no longer available"
#: What a notice about a deleted item says instead of its own text.
DELETED_TEXT: Final = "This item was deleted by its seller"


@dataclass(frozen=True, slots=True)
class NewNotice:
    """A notice to deliver to a user's inbox.

    Attributes:
        kind: What it is about.
        text: A short text for people (cut to :data:`MAX_TEXT` characters); it may name the
            item: it is not shown once the item is no longer visible to the reader.
        item_id: The item it concerns, if any; the notice is delivered only while the
            receiver may see that item.
    """

    kind: NoticeKind
    text: str
    item_id: int | None = None

    def clipped_text(self) -> str:
        """The text as stored: one line of characters a terminal shows as they are (controls,
        invisible and text-direction characters dropped), at most :data:`MAX_TEXT` of them.

        Dropped, not refused: a notice is the server's own text, made of titles and words that
        were checked when written, so this only guards against a deliverer's slip.
        """
        shown = "".join(c for c in self.text if c.isspace() or _shown(c))
        text = " ".join(shown.split())
        return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


@dataclass(frozen=True, slots=True)
class StoredNotice:
    """A notice as stored, with what its reader may know of its item now.

    Attributes:
        item_exists: Whether the item still exists (``False`` also for a notice about none).
        item_visible: Whether the reader may see the item now.
    """

    id: int
    user_id: int
    kind: str
    item_id: int | None
    text: str
    created_at: float
    read: bool
    item_exists: bool
    item_visible: bool

    def view(self) -> Notice:
        """The notice as the protocol shows it to its reader."""
        text, status = self.text, None
        if self.item_id is not None:
            if not self.item_exists:
                text, status = DELETED_TEXT, NoticeItemStatus.DELETED
            elif not self.item_visible:
                text, status = PRIVATE_TEXT, NoticeItemStatus.PRIVATE
            else:
                status = NoticeItemStatus.AVAILABLE
        return Notice(
            id=self.id,
            kind=_kind(self.kind),
            item_id=self.item_id,
            text=text,
            created_at=self.created_at,
            read=self.read,
            item_status=status,
        )


@dataclass(frozen=True, slots=True)
class Delivered:
    """A notice just stored in one user's inbox, and that inbox's unread count after it."""

    notice: StoredNotice
    unread: int


class _Row(Protocol):
    def __getitem__(self, key: str) -> Any: ...


#: The columns every notice query selects, as :func:`notice_from_row` reads them. Each engine
#: adds its own conditions; ``u`` is the reader, ``i`` the item (NULLs when deleted or none).
NOTICE_SELECT: Final = """
SELECT n.id, n.user_id, n.kind, n.item_id, n.text, n.created_at, n.is_read,
       i.id IS NOT NULL AS item_exists,
       coalesce(i.public OR i.owner_id = n.user_id OR u.is_admin, FALSE) AS item_visible
FROM notices AS n
JOIN users AS u ON u.id = n.user_id
LEFT JOIN items AS i ON i.id = n.item_id
"""


def notice_from_row(row: _Row) -> StoredNotice:
    """A stored notice from a row of :data:`NOTICE_SELECT` (SQLite or asyncpg)."""
    return StoredNotice(
        id=int(row["id"]),
        user_id=int(row["user_id"]),
        kind=str(row["kind"]),
        item_id=None if row["item_id"] is None else int(row["item_id"]),
        text=str(row["text"]),
        created_at=float(row["created_at"]),
        read=bool(row["is_read"]),
        item_exists=bool(row["item_exists"]),
        item_visible=bool(row["item_visible"]),
    )


def _shown(char: str) -> bool:
    """Whether a terminal shows ``char`` as itself (not a control, invisible or bidi one)."""
    return char.isprintable() and hidden_character(char) is None


def _kind(stored: str) -> NoticeKind:
    try:
        return NoticeKind(stored)
    except ValueError:
        # Only this server writes kinds; one from a newer pixmart reads as the most general.
        return NoticeKind.ALERT_MATCH
