"""Ranged reads of sealed blobs: segments opened as they pass through a small buffer; and large
ranges of every store read into reply buffers used again once let go."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from backend.atrest.envelope import HEADER_BYTES, TAG_BYTES
from backend.atrest.keyring import open_store_keys
from backend.atrest.keys import KeySet, MasterKey
from backend.atrest.sealed_blobs import BLOB_SEGMENT_BYTES, SCRATCH_BYTES, SealedBlobs
from backend.media.blobs import BlobDamaged, BlobStorage, LocalBlobs
from backend.media.reply_buffers import ReplyBuffers

MIB = 1024 * 1024
STRIDE = BLOB_SEGMENT_BYTES + TAG_BYTES
#: Segments the reads' buffer holds: a slice of more passes through it in several pieces.
PER_BUFFER = SCRATCH_BYTES // STRIDE


async def sealed_store(root: Path) -> tuple[LocalBlobs, SealedBlobs]:
    raw = LocalBlobs(root)
    keys = await open_store_keys(raw, KeySet(MasterKey.from_bytes(os.urandom(32))))
    return raw, SealedBlobs(raw, keys)


async def test_ranges_across_the_buffer_s_pieces_are_the_stored_bytes(tmp_path: Path) -> None:
    _, blobs = await sealed_store(tmp_path)
    data = os.urandom((2 * PER_BUFFER + 1) * BLOB_SEGMENT_BYTES + 123)
    sha256 = await blobs.put(data)
    for offset, length in [
        (0, len(data)),
        (0, (PER_BUFFER + 1) * BLOB_SEGMENT_BYTES),
        (BLOB_SEGMENT_BYTES - 5, PER_BUFFER * BLOB_SEGMENT_BYTES + 10),
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
    data = os.urandom(3 * PER_BUFFER * BLOB_SEGMENT_BYTES)
    sha256 = await blobs.put(data)
    path = raw.store.path_for(blobs.storage_name(sha256))
    path.write_bytes(path.read_bytes()[:cut])

    with caplog.at_level(logging.ERROR):
        # The first piece opens, but the read as a whole is refused: no bytes come back.
        with pytest.raises(BlobDamaged):
            await blobs.read_range(sha256, 0, (2 * PER_BUFFER + 1) * BLOB_SEGMENT_BYTES)
    assert len([r for r in caplog.records if "does not open" in r.getMessage()]) == 1


def test_reply_buffers_are_reused_only_once_let_go_and_stay_bounded() -> None:
    replies = ReplyBuffers(keep_bytes=5 * MIB, smallest=MIB)
    assert replies.take(MIB - 1) is None  # small reads get buffers of their own
    first, second = replies.take(2 * MIB), replies.take(2 * MIB)
    assert first is not None and second is not None and first is not second
    held = {id(first): first}  # held anywhere (a reply, a slice read ahead): not handed out
    del first
    assert replies.take(2 * MIB) is None  # none free, and a third would pass the bound
    del second
    again = replies.take(2 * MIB)
    assert again is not None and id(again) not in held
    held.clear()
    assert replies.take(2 * MIB) is not None
    assert len(replies) == 2


@pytest.mark.parametrize("sealed", [True, False], ids=["sealed", "plain"])
async def test_slices_read_one_after_another_reuse_one_buffer_not_one_still_held(
    tmp_path: Path, sealed: bool
) -> None:
    raw, sealed_blobs = await sealed_store(tmp_path)
    blobs: BlobStorage = sealed_blobs if sealed else raw
    data = os.urandom(3 * MIB)
    sha256 = await blobs.put(data)
    _, first = await blobs.read_range(sha256, 0, MIB)
    _, second = await blobs.read_range(sha256, MIB, MIB)
    assert first is not second and bytes(first) == data[:MIB]  # the first is still held
    first_id = id(first)
    del first
    _, third = await blobs.read_range(sha256, 2 * MIB, MIB)
    assert id(third) == first_id and bytes(third) == data[2 * MIB :]
    assert bytes(second) == data[MIB : 2 * MIB]
