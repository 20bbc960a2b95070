"""Reading ahead in downloads, sealed or plain: bounded, never serving a removed blob or damaged
bytes."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import pytest

from backend.atrest.envelope import HEADER_BYTES, TAG_BYTES
from backend.atrest.keyring import open_store_keys
from backend.atrest.keys import KeySet, MasterKey
from backend.atrest.sealed_blobs import BLOB_SEGMENT_BYTES, SealedBlobs
from backend.media.blobs import BlobDamaged, BlobStorage, LocalBlobs
from backend.media.read_ahead import ReadAhead, SliceReader

SLICE = 2 * BLOB_SEGMENT_BYTES


async def sealed_store(raw: LocalBlobs) -> SealedBlobs:
    return SealedBlobs(
        raw, await open_store_keys(raw, KeySet(MasterKey.from_bytes(os.urandom(32))))
    )


async def test_read_ahead_keeps_a_few_slices_and_cancels_the_oldest() -> None:
    ahead = ReadAhead(slices=2)
    started = asyncio.Event()

    async def slow() -> tuple[int, bytes]:
        started.set()
        await asyncio.sleep(60)
        return 0, b""

    ahead.start(("a", 0, 10), slow)
    await started.wait()
    first = ahead.take(("a", 0, 10))
    assert first is not None and ahead.take(("a", 0, 10)) is None
    ahead.start(("a", 0, 10), slow)
    ahead.start(("b", 0, 10), slow)
    ahead.start(("b", 0, 10), slow)  # under way already: not started twice
    ahead.start(("c", 0, 10), slow)
    assert len(ahead) == 2 and ahead.take(("a", 0, 10)) is None
    ahead.forget("b")
    assert len(ahead) == 1 and ahead.take(("b", 0, 10)) is None
    first.cancel()


class CountingBlobs:
    """A store that counts the ranged reads made of it (everything else as ``blobs``)."""

    def __init__(self, blobs: BlobStorage) -> None:
        self.blobs = blobs
        self.reads: list[int] = []

    async def read_range(self, sha256: str, offset: int, length: int) -> tuple[int, bytes]:
        self.reads.append(offset)
        return await self.blobs.read_range(sha256, offset, length)


@pytest.mark.parametrize("sealed", [True, False], ids=["sealed", "plain"])
async def test_a_download_in_slices_reads_the_next_ahead_but_not_once_removed(
    tmp_path: Path, sealed: bool
) -> None:
    raw = LocalBlobs(tmp_path / "blobs")
    blobs: BlobStorage = await sealed_store(raw) if sealed else raw
    data = os.urandom(3 * SLICE + 5)
    sha256 = await blobs.put(data)
    counting = CountingBlobs(blobs)
    reader = SliceReader(counting)  # type: ignore[arg-type]  # only read_range is used
    assert await reader.read_range(sha256, 0, SLICE) == (len(data), data[:SLICE])
    # The second slice, read ahead, is what a read gives, and is not read again.
    assert await reader.read_range(sha256, SLICE, SLICE) == (len(data), data[SLICE : 2 * SLICE])
    assert counting.reads.count(SLICE) == 1
    # The third is under way: the blob goes, and with it what was read ahead of it.
    reader.forget(sha256)
    assert await blobs.delete(sha256)
    with pytest.raises(FileNotFoundError):
        await reader.read_range(sha256, 2 * SLICE, SLICE)
    # The last slice (not whole) starts no read past the end: each slice is read once.
    other = await blobs.put(data[: SLICE + 5])
    counting.reads.clear()
    assert await reader.read_range(other, 0, SLICE) == (SLICE + 5, data[:SLICE])
    assert await reader.read_range(other, SLICE, SLICE) == (SLICE + 5, data[SLICE : SLICE + 5])
    await asyncio.sleep(0)
    assert counting.reads == [0, SLICE]


async def test_a_damaged_slice_read_ahead_is_refused_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    raw = LocalBlobs(tmp_path / "blobs")
    blobs = await sealed_store(raw)
    data = os.urandom(3 * SLICE)
    sha256 = await blobs.put(data)
    path = raw.store.path_for(blobs.storage_name(sha256))
    damaged = bytearray(path.read_bytes())
    damaged[HEADER_BYTES + 2 * (BLOB_SEGMENT_BYTES + TAG_BYTES) + 7] ^= 0x01  # in the second slice
    path.write_bytes(bytes(damaged))
    reader = SliceReader(blobs)

    with caplog.at_level(logging.ERROR):
        assert await reader.read_range(sha256, 0, SLICE) == (len(data), data[:SLICE])
        with pytest.raises(BlobDamaged):
            await reader.read_range(sha256, SLICE, SLICE)
    assert len([r for r in caplog.records if "does not open" in r.getMessage()]) == 1
