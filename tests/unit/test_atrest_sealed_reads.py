"""Ranged reads of sealed blobs: segments opened as they pass through a small buffer."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from backend.atrest.envelope import HEADER_BYTES, SEGMENT_BYTES, TAG_BYTES
from backend.atrest.keyring import open_store_keys
from backend.atrest.keys import KeySet, MasterKey
from backend.atrest.sealed_blobs import SCRATCH_BYTES, SealedBlobs
from backend.media.blobs import BlobDamaged, LocalBlobs

STRIDE = SEGMENT_BYTES + TAG_BYTES
#: Segments the reads' buffer holds: a slice of more passes through it in several pieces.
PER_BUFFER = SCRATCH_BYTES // STRIDE


async def sealed_store(root: Path) -> tuple[LocalBlobs, SealedBlobs]:
    raw = LocalBlobs(root)
    keys = await open_store_keys(raw, KeySet(MasterKey.from_bytes(os.urandom(32))))
    return raw, SealedBlobs(raw, keys)


async def test_ranges_across_the_buffer_s_pieces_are_the_stored_bytes(tmp_path: Path) -> None:
    _, blobs = await sealed_store(tmp_path)
    data = os.urandom((2 * PER_BUFFER + 1) * SEGMENT_BYTES + 123)
    sha256 = await blobs.put(data)
    for offset, length in [
        (0, len(data)),
        (0, (PER_BUFFER + 1) * SEGMENT_BYTES),
        (SEGMENT_BYTES - 5, PER_BUFFER * SEGMENT_BYTES + 10),
        (len(data) - 200, 4096),
        (7, 1),
    ]:
        total, got = await blobs.read_range(sha256, offset, length)
        assert total == len(data) and bytes(got) == data[offset : offset + length]


@pytest.mark.parametrize(
    "cut", [HEADER_BYTES + (PER_BUFFER + 1) * STRIDE, HEADER_BYTES + PER_BUFFER * STRIDE + 99]
)
async def test_a_truncated_blob_read_in_pieces_is_damaged_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, cut: int
) -> None:
    raw, blobs = await sealed_store(tmp_path)
    data = os.urandom(3 * PER_BUFFER * SEGMENT_BYTES)
    sha256 = await blobs.put(data)
    path = raw.store.path_for(blobs.storage_name(sha256))
    path.write_bytes(path.read_bytes()[:cut])

    with caplog.at_level(logging.ERROR):
        # The first piece opens, but the read as a whole is refused: no bytes come back.
        with pytest.raises(BlobDamaged):
            await blobs.read_range(sha256, 0, 2 * PER_BUFFER * SEGMENT_BYTES)
    assert len([r for r in caplog.records if "does not open" in r.getMessage()]) == 1
