"""The partial uploads' contract: the data dir's folder and the S3 object store alike.

The S3 store is a real SeaweedFS on loopback (the session's, a prefix per test). What differs is
written down: a chunk retried at an offset already holding it is a no-op in the shared store (a
request may be retried on another instance), and refused with the offset to resume at on disk.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.atrest.envelope import Sealer
from backend.atrest.keys import KeySet, MasterKey
from backend.media.errors import ChecksumMismatch, OffsetMismatch, TooLarge, UnknownUpload
from backend.media.partials import PartialStorage, open_partial_storage

MAX_BYTES = 10_000


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(params=["local", "s3", "local-sealed", "s3-sealed"])
def partials(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PartialStorage]:
    """Each partial upload store in turn, empty: plain, and sealed (encrypted at rest)."""
    # The blobs URL is looked up only for S3, so a run without S3 tests never starts SeaweedFS.
    local = request.param.startswith("local")
    url = None if local else str(request.getfixturevalue("blobs_url"))
    sealer = None
    if request.param.endswith("sealed"):
        sealer = Sealer(KeySet(MasterKey.from_bytes(os.urandom(32))))
    yield open_partial_storage(url, tmp_path / "uploads", max_bytes=MAX_BYTES, sealer=sealer)


async def ids(partials: PartialStorage, older_than: float = float("-inf")) -> set[str]:
    return {upload_id async for upload_id in partials.abandoned(older_than)}


async def test_chunks_in_order_then_finish(partials: PartialStorage) -> None:
    data = os.urandom(2500)
    upload_id = await partials.begin()
    assert await partials.size(upload_id) == 0
    assert upload_id in await ids(partials)
    for offset in range(0, len(data), 1000):
        end = await partials.append(upload_id, offset, data[offset : offset + 1000])
        assert end == min(offset + 1000, len(data))
    assert await partials.size(upload_id) == len(data)
    finished = await partials.finish(upload_id, sha(data))
    assert (finished.sha256, finished.size) == (sha(data), len(data))
    assert finished.path.read_bytes() == data
    assert await partials.discard(upload_id)
    assert not finished.path.exists()
    assert upload_id not in await ids(partials)
    with pytest.raises(UnknownUpload):
        await partials.size(upload_id)


async def test_gaps_are_refused_and_retries_resume(partials: PartialStorage) -> None:
    upload_id = await partials.begin()
    await partials.append(upload_id, 0, b"a" * 100)
    with pytest.raises(OffsetMismatch) as gap:
        await partials.append(upload_id, 150, b"b")
    assert gap.value.expected == 100
    if partials.shared:
        assert await partials.append(upload_id, 0, b"a" * 100) == 100  # the same chunk again
    else:
        with pytest.raises(OffsetMismatch):
            await partials.append(upload_id, 0, b"a" * 100)
    with pytest.raises(OffsetMismatch):  # not the chunk stored there
        await partials.append(upload_id, 0, b"a" * 50)
    assert await partials.size(upload_id) == 100


async def test_refusals(partials: PartialStorage) -> None:
    with pytest.raises(UnknownUpload):
        await partials.append("../../etc/passwd", 0, b"x")
    with pytest.raises(UnknownUpload):
        await partials.append("A" * 32, 0, b"x")  # the right shape, never begun
    large = await partials.begin()
    with pytest.raises(TooLarge):
        await partials.append(large, 0, b"x" * (MAX_BYTES + 1))
    with pytest.raises(UnknownUpload):  # discarded with the refusal
        await partials.size(large)
    wrong = await partials.begin()
    await partials.append(wrong, 0, b"bytes")
    with pytest.raises(ChecksumMismatch):
        await partials.finish(wrong, "0" * 64)


async def test_abandoned_lists_only_untouched_uploads(partials: PartialStorage) -> None:
    upload_id = await partials.begin()
    await partials.append(upload_id, 0, b"fresh")
    assert upload_id in await ids(partials, older_than=-60.0)  # a cutoff in the future
    assert upload_id not in await ids(partials, older_than=3600.0)


async def test_the_start_up_sweep_removes_what_a_kill_left_mid_finish(
    partials: PartialStorage, tmp_path: Path
) -> None:
    upload_id = await partials.begin()
    await partials.append(upload_id, 0, b"half")
    # A finish opening a sealed upload, a picture being sealed beside it: cut by a kill.
    leftovers = [tmp_path / "uploads" / ".tmp-a1b2c3d4", tmp_path / "uploads" / ".tmp-seal-e5"]
    for path in leftovers:
        path.write_bytes(b"half written")
    assert await partials.sweep_scratch() >= len(leftovers)
    assert not any(path.exists() for path in leftovers)
    assert await partials.size(upload_id) == 4  # the upload itself is kept
