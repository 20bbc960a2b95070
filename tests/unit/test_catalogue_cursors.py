"""Cursors are opaque, signed, bound to their listing and viewer, and survive restarts."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from backend.catalogue.cursors import CursorSigner, cursor_binding, load_or_create_secret
from protocol.errors import BadRequest

BINDING = cursor_binding("catalogue.browse", 7, "newest", [["red"], None])


def test_a_cursor_opens_to_its_position() -> None:
    signer = CursorSigner(b"k" * 32)
    position: list[int | float | str] = [1714000000.123456, 42]
    cursor = signer.seal(BINDING, position)
    assert signer.open(cursor, BINDING) == position
    assert "42" not in cursor and cursor.isascii()  # opaque, URL-safe text


@pytest.mark.parametrize(
    "other",
    [
        cursor_binding("catalogue.browse", 8, "newest", [["red"], None]),  # another viewer
        cursor_binding("catalogue.browse", 7, "price_up", [["red"], None]),  # another sort
        cursor_binding("catalogue.browse", 7, "newest", [["blue"], None]),  # other filters
        cursor_binding("vision.similar", 7, "newest", [["red"], None]),  # another listing
    ],
)
def test_a_cursor_is_bound_to_its_listing(other: bytes) -> None:
    signer = CursorSigner(b"k" * 32)
    with pytest.raises(BadRequest):
        signer.open(signer.seal(BINDING, [1.0, 2]), other)


def test_altered_or_foreign_cursors_are_refused() -> None:
    signer = CursorSigner(b"k" * 32)
    cursor = signer.seal(BINDING, [1.0, 2])
    forged = CursorSigner(b"x" * 32).seal(BINDING, [1.0, 2])
    for bad in (
        forged,
        cursor[:-1],
        cursor[1:],
        "",
        "!!!",
        "A" * 64,
        cursor[:20] + "A" + cursor[21:],
    ):
        if bad == cursor:
            continue
        with pytest.raises(BadRequest):
            signer.open(bad, BINDING)


def test_the_secret_is_private_and_persistent(tmp_path: Path) -> None:
    path = tmp_path / "cursor.key"
    first = load_or_create_secret(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(first) == 32
    assert load_or_create_secret(path) == first
    cursor = CursorSigner(first).seal(BINDING, [3.0, 4])
    assert CursorSigner.from_file(path).open(cursor, BINDING) == [3.0, 4]
    path.write_bytes(b"short")
    with pytest.raises(RuntimeError):
        load_or_create_secret(path)
