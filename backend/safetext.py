"""Provides the one check that every piece of text shown in other people's terminals passes.

Item titles, descriptions, tags and usernames reach other users' terminals. Three kinds of
characters there make text display as something it is not, so they are refused with
``bad_request`` (never silently stripped: the writer sees exactly what is stored):

* control characters (C0, C1, DEL): escape sequences can move the cursor, recolour, retitle or
  clear a terminal. Multi-line fields may keep line feeds and tabs;
* bidirectional controls (U+202A-U+202E embeddings and overrides, U+2066-U+2069 isolates,
  U+200E/U+200F/U+061C marks): ``"Sunset\\u202egpj.exe"`` displays as ``Sunsetexe.jpg``;
* invisible characters: zero-width space, joiners and non-joiners, the word joiner, the byte
  order mark, soft hyphen, tag characters and every other format character (Unicode category
  ``Cf``, which also holds the bidi controls), line and paragraph separators (``Zl``, ``Zp``),
  and the Hangul fillers and combining grapheme joiner, which render as nothing. They make two
  names or titles that look identical differ, or hide text.

A consequence worth knowing: emoji sequences glued with U+200D ZERO WIDTH JOINER (family
emoji, some flags) are refused too; single emoji and variation selectors are accepted.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

from protocol.errors import BadRequest

# C0 and C1 controls and DEL; the multi-line form keeps tab and line feed (a carriage return
# alone would move the cursor back over what was written).
_CONTROLS: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROLS_MULTILINE: Final = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

#: Unicode categories that never draw anything of their own: format characters (bidi controls,
#: zero-width characters, ...) and the line and paragraph separators.
_HIDDEN_CATEGORIES: Final = frozenset({"Cf", "Zl", "Zp"})
#: Characters outside those categories that render as nothing: the combining grapheme joiner
#: and the Hangul fillers.
_HIDDEN_EXTRA: Final = frozenset("\u034f\u115f\u1160\u3164\uffa0")


def hidden_character(text: str) -> str | None:
    """Return the first invisible or text-direction character in ``text``, or ``None``."""
    if text.isascii():
        return None  # the fast path: ASCII has none (its controls are checked separately)
    for char in text:
        if char in _HIDDEN_EXTRA or unicodedata.category(char) in _HIDDEN_CATEGORIES:
            return char
    return None


def refuse_hidden(text: str, field: str) -> str:
    """Return ``text`` unchanged, or raise :class:`BadRequest` if it holds a hidden character.

    For fields with a stricter character rule of their own (usernames, tags), so that an
    invisible or bidi character gets this clear message rather than the generic one.

    Args:
        text: What the client sent.
        field: The field's name in the message, e.g. ``"title"``.
    """
    char = hidden_character(text)
    if char is not None:
        name = unicodedata.name(char, "unnamed")
        raise BadRequest(
            f"The {field} contains an invisible or text-direction character "
            f"(U+{ord(char):04X} {name}); remove it"
        )
    return text


def check_display_text(text: str, field: str, *, multiline: bool = False) -> str:
    """Return ``text`` unchanged if a terminal shows it as it is, else raise :class:`BadRequest`.

    Args:
        text: What the client sent (already trimmed, if the field trims).
        field: The field's name in the message, e.g. ``"title"``.
        multiline: Whether tabs and line breaks are allowed (descriptions).
    """
    refuse_hidden(text, field)
    if (_CONTROLS_MULTILINE if multiline else _CONTROLS).search(text):
        raise BadRequest(f"The {field} contains control characters")
    return text
