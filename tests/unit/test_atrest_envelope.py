"""The sealed format: what opens, what is refused, and that a ranged read touches few segments."""

from __future__ import annotations

import os

import pytest

from backend.atrest.envelope import (
    HEADER_BYTES,
    TAG_BYTES,
    NotSealed,
    SealBroken,
    Sealer,
    plaintext_size,
)
from backend.atrest.keys import KeySet, MasterKey, WrongKey

SEGMENT = 1024
STRIDE = SEGMENT + TAG_BYTES


def key() -> MasterKey:
    return MasterKey.from_bytes(os.urandom(32))


@pytest.fixture
def sealer() -> Sealer:
    return Sealer(KeySet(key()), segment_bytes=SEGMENT)


@pytest.mark.parametrize("size", [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 5 * SEGMENT + 7])
def test_round_trip_and_size(sealer: Sealer, size: int) -> None:
    data = os.urandom(size)
    sealed = sealer.seal(data, b"blob A")
    assert sealed[: len(b"PXSEAL01")] == b"PXSEAL01"
    assert size < 16 or data not in sealed
    assert sealer.open(sealed, b"blob A") == data
    assert plaintext_size(len(sealed), SEGMENT) == size


def test_ranged_reads_open_only_the_segments_they_touch(sealer: Sealer) -> None:
    data = os.urandom(10 * SEGMENT + 100)
    sealed = sealer.seal(data, b"ctx")
    opened = sealer.open_header(sealed[:HEADER_BYTES], b"ctx")
    for offset, length in [(0, 10), (SEGMENT - 5, 10), (3 * SEGMENT, SEGMENT), (len(data) - 3, 50)]:
        span = opened.sealed_span(offset, length)
        assert span is not None
        first, start, stop = span
        # Never more than the segments the range lies in.
        assert stop - start <= (length // SEGMENT + 2) * STRIDE
        got = opened.plaintext_range(first, sealed[start:stop], offset, length)
        assert got == data[offset : offset + length]
    assert opened.sealed_span(len(data), 10) is None


def test_a_flipped_bit_anywhere_is_refused(sealer: Sealer) -> None:
    sealed = sealer.seal(os.urandom(3 * SEGMENT), b"ctx")
    for position in (
        9,
        30,
        HEADER_BYTES - 1,
        HEADER_BYTES,
        HEADER_BYTES + STRIDE + 5,
        len(sealed) - 1,
    ):
        damaged = bytearray(sealed)
        damaged[position] ^= 0x04
        # In the key id (bytes 8-15) it names a key nobody holds; elsewhere it fails to open.
        with pytest.raises((SealBroken, WrongKey)):
            sealer.open(bytes(damaged), b"ctx")


def test_truncation_at_a_segment_boundary_is_refused(sealer: Sealer) -> None:
    sealed = sealer.seal(os.urandom(3 * SEGMENT), b"ctx")
    for cut in (HEADER_BYTES, HEADER_BYTES + STRIDE, len(sealed) - 1):
        with pytest.raises(SealBroken):
            sealer.open(sealed[:cut], b"ctx")
    # A ranged read of the last segment of a file cut short is refused as well.
    opened = sealer.open_header(sealed, b"ctx")
    span = opened.sealed_span(2 * SEGMENT, 10)
    assert span is not None
    first, start, stop = span
    with pytest.raises(SealBroken):
        opened.plaintext_range(first, sealed[start : stop - 1], 2 * SEGMENT, 10)


def test_swapped_or_dropped_segments_are_refused(sealer: Sealer) -> None:
    sealed = sealer.seal(os.urandom(3 * SEGMENT), b"ctx")
    head, body = sealed[:HEADER_BYTES], sealed[HEADER_BYTES:]
    one, two, three = body[:STRIDE], body[STRIDE : 2 * STRIDE], body[2 * STRIDE :]
    for body_variant in (two + one + three, one + three + two, one + one + three):
        with pytest.raises(SealBroken):
            sealer.open(head + body_variant, b"ctx")
    # Dropping the last segment and claiming fewer bytes needs the header, which is bound.
    with pytest.raises(SealBroken):
        sealer.open(head + one + two, b"ctx")


def test_a_file_under_another_name_or_with_another_files_segments_is_refused(
    sealer: Sealer,
) -> None:
    a = sealer.seal(os.urandom(2 * SEGMENT), b"blob A")
    b = sealer.seal(os.urandom(2 * SEGMENT), b"blob B")
    with pytest.raises(SealBroken):
        sealer.open(a, b"blob B")  # A's file copied over B's name
    with pytest.raises(SealBroken):
        sealer.open(a[:HEADER_BYTES] + b[HEADER_BYTES:], b"blob A")  # B's segments in A


def test_another_master_key_is_named_and_plain_bytes_are_not_sealed(sealer: Sealer) -> None:
    other = Sealer(KeySet(key()), segment_bytes=SEGMENT)
    sealed = other.seal(b"picture", b"ctx")
    with pytest.raises(WrongKey) as caught:
        sealer.open(sealed, b"ctx")
    assert caught.value.key_id == other.keys.current.key_id
    with pytest.raises(NotSealed):
        sealer.open(b"\xff\xd8\xff\xe0 a JPEG", b"ctx")


def test_rewrapping_changes_only_the_header_and_needs_the_old_key() -> None:
    old, new = key(), key()
    data = os.urandom(3 * SEGMENT)
    sealed = Sealer(KeySet(old), SEGMENT).seal(data, b"ctx")
    rotating = Sealer(KeySet(new, [old]), SEGMENT)
    header = rotating.rewrap_header(sealed[:HEADER_BYTES], b"ctx")
    assert header is not None and len(header) == HEADER_BYTES
    moved = header + sealed[HEADER_BYTES:]
    assert Sealer(KeySet(new), SEGMENT).open(moved, b"ctx") == data
    with pytest.raises(WrongKey):
        Sealer(KeySet(old), SEGMENT).open(moved, b"ctx")
    # Already under the new key: nothing to do.
    assert rotating.rewrap_header(moved, b"ctx") is None
