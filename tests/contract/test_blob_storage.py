"""The picture stores' contract: the data dir's folder and the S3 object store alike, each
plain and sealed (encrypted at rest, :class:`~backend.atrest.sealed_blobs.SealedBlobs`).

The S3 store is a real SeaweedFS on loopback (the session's, a prefix per test).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from backend.atrest.keyring import open_store_keys
from backend.atrest.keys import KeySet, MasterKey
from backend.atrest.sealed_blobs import BLOB_SEGMENT_BYTES, SealedBlobs
from backend.media.blobs import BlobStorage, LocalBlobs, ObjectStore, open_blob_storage


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(params=["local", "s3", "local-sealed", "s3-sealed"])
async def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStorage:
    """Each picture store in turn, empty."""
    raw: ObjectStore
    if request.param.startswith("local"):
        raw = LocalBlobs(tmp_path / "blobs")
    else:
        # Looked up only here, so a run without S3 tests never starts SeaweedFS.
        raw = open_blob_storage(str(request.getfixturevalue("blobs_url")), tmp_path / "unused")
    if not request.param.endswith("sealed"):
        return raw
    keys = KeySet(MasterKey.from_bytes(os.urandom(32)))
    return SealedBlobs(raw, await open_store_keys(raw, keys))


def listed(blobs: BlobStorage, *hashes: str) -> set[str]:
    """The names :meth:`~BlobStorage.names` lists the blobs of ``hashes`` under."""
    return {blobs.storage_name(sha256) for sha256 in hashes}


async def test_put_then_read_whole_and_by_range(blobs: BlobStorage) -> None:
    data = os.urandom(1000)
    name = await blobs.put(data)
    assert name == sha(data) and await blobs.exists(name)
    assert await blobs.read(name) == data
    assert await blobs.read_range(name, 100, 50) == (1000, data[100:150])
    assert await blobs.read_range(name, 990, 50) == (1000, data[990:])
    # At or past the end: the size and no bytes, as a file read there gives.
    assert await blobs.read_range(name, 1000, 50) == (1000, b"")
    assert await blobs.read_range(name, 5000, 50) == (1000, b"")


async def test_slices_of_a_large_blob_read_as_a_download_does(blobs: BlobStorage) -> None:
    """Slices on and off the sealed segments' bounds, interleaved with reads of another blob:
    the sealed store reads them all into the same few reused buffers."""
    segment = BLOB_SEGMENT_BYTES
    data, other = os.urandom(3 * segment + 123), os.urandom(2 * segment)
    name, other_name = await blobs.put(data), await blobs.put(other)
    for size in (segment, segment * 2 // 3, len(data)):
        received = bytearray()
        for offset in range(0, len(data), size):
            total, piece = await blobs.read_range(name, offset, size)
            assert total == len(data)
            received += piece
            at = offset % len(other)
            assert await blobs.read_range(other_name, at, 70_000) == (
                len(other),
                other[at : at + 70_000],
            )
        assert received == data


async def test_put_file_consumes_the_file_and_is_idempotent(
    blobs: BlobStorage, tmp_path: Path
) -> None:
    data = os.urandom(3000)
    first, second = tmp_path / "first.bin", tmp_path / "second.bin"
    first.write_bytes(data)
    second.write_bytes(data)
    assert await blobs.put_file(first) == sha(data)
    assert await blobs.put_file(second) == sha(data)  # already stored: the file just goes
    assert not first.exists() and not second.exists()
    assert await blobs.read(sha(data)) == data


async def test_put_file_with_its_hash_known_stores_it_under_that_hash(
    blobs: BlobStorage, tmp_path: Path
) -> None:
    data = os.urandom(70_000)
    first, second = tmp_path / "first.bin", tmp_path / "second.bin"
    first.write_bytes(data)
    second.write_bytes(data)

    assert await blobs.put_file(first, expected_sha256=sha(data)) == sha(data)
    assert await blobs.put_file(second, expected_sha256=sha(data)) == sha(data)

    assert not first.exists() and not second.exists()
    assert await blobs.read(sha(data)) == data


async def test_missing_blobs(blobs: BlobStorage) -> None:
    absent = "ab" * 32
    assert not await blobs.exists(absent)
    assert not await blobs.delete(absent)
    with pytest.raises(FileNotFoundError):
        await blobs.read(absent)
    with pytest.raises(FileNotFoundError):
        await blobs.read_range(absent, 0, 10)
    with pytest.raises(ValueError):
        await blobs.exists("../../etc/passwd")


async def test_names_lists_every_blob_and_delete_removes_one(blobs: BlobStorage) -> None:
    names = {await blobs.put(f"picture {n}".encode()) for n in range(5)}
    assert {name async for name in blobs.names()} == listed(blobs, *names)
    # Nothing is an hour old yet: a sweep of a shared store spares them all.
    assert [name async for name in blobs.names(older_than_seconds=3600)] == []
    gone = sorted(names)[0]
    assert await blobs.delete(gone) and not await blobs.exists(gone)
    assert {name async for name in blobs.names()} == listed(blobs, *(names - {gone}))


def test_only_the_object_store_is_shared(blobs: BlobStorage) -> None:
    # A shared store's sweep spares young files: another server may be about to name them.
    raw = blobs.raw if isinstance(blobs, SealedBlobs) else blobs
    assert blobs.shared is not isinstance(raw, LocalBlobs)
