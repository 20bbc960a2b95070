"""Tests for backend.media.uploads: resumable chunked uploads into the blob store."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import pytest

from backend.atrest.envelope import Sealer
from backend.atrest.keys import KeySet, MasterKey
from backend.media.blobstore import BlobStore
from backend.media.errors import (
    ChecksumMismatch,
    OffsetMismatch,
    TooLarge,
    UnknownUpload,
    UnsupportedMedia,
)
from backend.media.uploads import PartialUploads, is_upload_id
from backend.media.validate import inspect_image
from tests.unit.test_media_samples import png


@pytest.fixture
def uploads(tmp_path: Path) -> PartialUploads:
    return PartialUploads(tmp_path / "uploads", max_bytes=1000)


def test_begin_makes_a_fresh_empty_upload(uploads: PartialUploads) -> None:
    first, second = uploads.begin(), uploads.begin()

    assert first != second
    assert is_upload_id(first) and is_upload_id(second)
    assert uploads.size(first) == 0


def test_chunks_accumulate_and_finish_returns_the_hash(uploads: PartialUploads) -> None:
    upload_id = uploads.begin()

    assert uploads.append(upload_id, 0, b"hello ") == 6
    assert uploads.append(upload_id, 6, b"world") == 11
    assert uploads.size(upload_id) == 11
    finished = uploads.finish(upload_id, hashlib.sha256(b"hello world").hexdigest().upper())

    assert finished.sha256 == hashlib.sha256(b"hello world").hexdigest()
    assert finished.size == 11
    assert finished.path.read_bytes() == b"hello world"
    assert finished.upload_id == upload_id


@pytest.mark.parametrize("offset", [0, 3, 5, -1])
def test_chunk_at_the_wrong_offset_is_refused(uploads: PartialUploads, offset: int) -> None:
    upload_id = uploads.begin()
    uploads.append(upload_id, 0, b"abcd")

    with pytest.raises(OffsetMismatch) as caught:
        uploads.append(upload_id, offset, b"xyz")

    assert (caught.value.expected, caught.value.got) == (4, offset)
    assert uploads.size(upload_id) == 4


def test_concurrent_chunks_at_the_same_offset_are_accepted_once(
    uploads: PartialUploads,
) -> None:
    upload_id = uploads.begin()
    outcomes: list[str] = []
    start = threading.Barrier(8)

    def send() -> None:
        start.wait()
        try:
            uploads.append(upload_id, 0, b"0123456789")
            outcomes.append("ok")
        except OffsetMismatch:
            outcomes.append("mismatch")

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["mismatch"] * 7 + ["ok"]
    assert uploads.size(upload_id) == 10


@pytest.mark.parametrize(
    "upload_id", ["../../etc/passwd", "", "x" * 31, "x" * 33, "a/" * 16, "." * 32, "é" * 32]
)
def test_ids_a_server_cannot_have_made_are_unknown(
    uploads: PartialUploads, upload_id: str
) -> None:
    with pytest.raises(UnknownUpload):
        uploads.append(upload_id, 0, b"x")
    with pytest.raises(UnknownUpload):
        uploads.size(upload_id)
    with pytest.raises(UnknownUpload):
        uploads.finish(upload_id)
    assert uploads.discard(upload_id) is False


def test_well_formed_but_unknown_id_is_unknown(uploads: PartialUploads) -> None:
    with pytest.raises(UnknownUpload):
        uploads.append("A" * 32, 0, b"x")
    assert list(uploads.root.iterdir()) == []  # append never creates files


def test_finished_upload_takes_no_more_chunks_and_finish_repeats(
    uploads: PartialUploads,
) -> None:
    upload_id = uploads.begin()
    uploads.append(upload_id, 0, b"data")
    first = uploads.finish(upload_id)

    with pytest.raises(UnknownUpload):
        uploads.append(upload_id, 4, b"more")
    assert uploads.finish(upload_id) == first


def test_checksum_mismatch_discards_the_upload(uploads: PartialUploads) -> None:
    upload_id = uploads.begin()
    uploads.append(upload_id, 0, b"tampered")

    with pytest.raises(ChecksumMismatch):
        uploads.finish(upload_id, hashlib.sha256(b"original").hexdigest())

    assert list(uploads.root.iterdir()) == []


def test_upload_over_the_limit_is_refused_and_discarded(uploads: PartialUploads) -> None:
    upload_id = uploads.begin()
    uploads.append(upload_id, 0, b"x" * 600)

    with pytest.raises(TooLarge):
        uploads.append(upload_id, 600, b"x" * 401)

    assert list(uploads.root.iterdir()) == []


def test_discard(uploads: PartialUploads) -> None:
    running, finished = uploads.begin(), uploads.begin()
    uploads.finish(finished)

    assert uploads.discard(running) is True
    assert uploads.discard(finished) is True
    assert uploads.discard(running) is False
    assert list(uploads.root.iterdir()) == []


def test_the_start_up_sweep_removes_temporary_files_and_keeps_uploads(
    uploads: PartialUploads,
) -> None:
    running, finished = uploads.begin(), uploads.begin()
    uploads.append(running, 0, b"half")
    uploads.finish(finished)
    # What a kill leaves: a finish opening a sealed upload, a picture being sealed.
    (uploads.root / ".tmp-a1b2c3d4").write_bytes(b"opened half way")
    (uploads.root / ".tmp-seal-e5f6g7h8").write_bytes(b"sealed half way")

    assert uploads.sweep_temp_files() == 2
    assert sorted(path.name for path in uploads.root.iterdir()) == sorted(
        [f"{running}.part", f"{finished}.done"]
    )


def test_abandoned_lists_only_untouched_uploads(uploads: PartialUploads) -> None:
    stale, live, stale_finished = uploads.begin(), uploads.begin(), uploads.begin()
    finished_path = uploads.finish(stale_finished).path
    long_ago = time.time() - 7200
    os.utime(uploads.root / f"{stale}.part", (long_ago, long_ago))
    os.utime(finished_path, (long_ago, long_ago))
    (uploads.root / "stray-file.part").write_bytes(b"not ours")
    os.utime(uploads.root / "stray-file.part", (long_ago, long_ago))

    assert uploads.abandoned(older_than_seconds=3600) == sorted([stale, stale_finished])

    os.utime(uploads.root / f"{live}.part", (long_ago, long_ago))
    uploads.append(live, 0, b"still coming")  # every chunk refreshes the upload
    assert live not in uploads.abandoned(older_than_seconds=3600)


def test_whole_flow_into_the_blob_store(tmp_path: Path) -> None:
    uploads = PartialUploads(tmp_path / "uploads")
    blobs = BlobStore(tmp_path / "blobs")
    data = png((40, 30))
    upload_id = uploads.begin()
    for offset in range(0, len(data), 100):
        uploads.append(upload_id, offset, data[offset : offset + 100])

    finished = uploads.finish(upload_id, hashlib.sha256(data).hexdigest())
    info = inspect_image(finished.path)
    name = blobs.put_file(finished.path)

    assert (info.width, info.height) == (40, 30)
    assert name == finished.sha256
    assert blobs.read(name) == data
    assert list(uploads.root.iterdir()) == []


def test_bad_upload_is_discarded_after_validation_fails(tmp_path: Path) -> None:
    uploads = PartialUploads(tmp_path / "uploads")
    upload_id = uploads.begin()
    uploads.append(upload_id, 0, b"GIF89a not really")
    finished = uploads.finish(upload_id)

    with pytest.raises(UnsupportedMedia):
        inspect_image(finished.path)
    assert uploads.discard(upload_id)


KEY = MasterKey.from_bytes(os.urandom(32))


@pytest.fixture
def sealed_uploads(tmp_path: Path) -> PartialUploads:
    return PartialUploads(tmp_path / "sealed-uploads", max_bytes=1000, sealer=Sealer(KeySet(KEY)))


def test_a_sealed_finish_killed_after_closing_the_upload_is_finished_by_the_next(
    sealed_uploads: PartialUploads,
) -> None:
    """A finish renames the ``.part`` to ``.closed`` before opening it outside the lock; what a
    kill between the two leaves takes no chunks, is opened by the next finish, and is listed,
    re-wrapped and discarded like any upload."""
    upload_id = sealed_uploads.begin()
    sealed_uploads.append(upload_id, 0, b"hello ")
    sealed_uploads.append(upload_id, 6, b"world")
    root = sealed_uploads.root
    os.replace(root / f"{upload_id}.part", root / f"{upload_id}.closed")  # the kill

    with pytest.raises(UnknownUpload):
        sealed_uploads.append(upload_id, 11, b"!")
    long_ago = time.time() - 7200
    os.utime(root / f"{upload_id}.closed", (long_ago, long_ago))
    assert sealed_uploads.abandoned(older_than_seconds=3600) == [upload_id]
    # Restarted for a key rotation, then with the new key alone once it is done.
    old, new = KEY, MasterKey.from_bytes(os.urandom(32))
    assert PartialUploads(root, sealer=Sealer(KeySet(new, [old]))).rewrap() == 1
    sealed_uploads = PartialUploads(root, sealer=Sealer(KeySet(new)))

    finished = sealed_uploads.finish(upload_id, hashlib.sha256(b"hello world").hexdigest())
    assert finished.path.read_bytes() == b"hello world" and finished.size == 11
    assert sorted(path.name for path in root.iterdir()) == [f"{upload_id}.done"]
    assert sealed_uploads.finish(upload_id) == finished  # and repeats
    assert sealed_uploads.discard(upload_id) and list(root.iterdir()) == []


def test_a_sealed_upload_is_closed_to_chunks_and_discarded_whole(
    sealed_uploads: PartialUploads,
) -> None:
    upload_id = sealed_uploads.begin()
    sealed_uploads.append(upload_id, 0, b"abc")
    finished = sealed_uploads.finish(upload_id)
    assert finished.sha256 == hashlib.sha256(b"abc").hexdigest()
    with pytest.raises(UnknownUpload):
        sealed_uploads.append(upload_id, 3, b"d")
    assert sealed_uploads.discard(upload_id) and list(sealed_uploads.root.iterdir()) == []
