"""Tests for backend.media.blobstore: content-addressed, atomic, write-once storage."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import time
from pathlib import Path

import pytest

from backend.media import fsutil
from backend.media.blobstore import BlobStore, is_sha256


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def files_under(root: Path) -> list[str]:
    """Return every file below ``root``, relative, sorted."""
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


def test_put_stores_the_bytes_under_their_hash(store: BlobStore) -> None:
    name = store.put(b"picture bytes")

    assert name == sha(b"picture bytes")
    assert files_under(store.root) == [f"{name[:2]}/{name[2:4]}/{name}"]
    assert store.read(name) == b"picture bytes"
    assert store.exists(name)
    assert store.size(name) == len(b"picture bytes")
    with store.open(name) as stream:
        assert stream.read() == b"picture bytes"


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_files_and_directories_are_private(store: BlobStore) -> None:
    name = store.put(b"private")

    path = store.path_for(name)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700


def test_put_is_idempotent(store: BlobStore) -> None:
    first = store.put(b"same")
    path = store.path_for(first)
    os.utime(path, (1_000_000, 1_000_000))

    second = store.put(b"same")

    assert second == first
    assert path.stat().st_mtime == 1_000_000  # not rewritten
    assert files_under(store.root) == [str(path.relative_to(store.root))]


def test_failed_write_leaves_nothing_behind(
    store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*args: object) -> None:
        raise OSError(errno.EIO, "disk on fire")

    monkeypatch.setattr(os, "replace", crash)

    with pytest.raises(OSError, match="disk on fire"):
        store.put(b"never stored")

    assert files_under(store.root) == []
    assert not store.exists(sha(b"never stored"))


def test_write_is_fsynced_before_the_rename(
    store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync-dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync-file")
        real_fsync(fd)

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        events.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)

    store.put(b"durable")

    assert events[events.index("rename") - 1] == "fsync-file"
    assert events[-1] == "fsync-dir"


def test_delete(store: BlobStore) -> None:
    name = store.put(b"doomed")

    assert store.delete(name) is True
    assert store.delete(name) is False
    assert not store.exists(name)
    with pytest.raises(FileNotFoundError):
        store.read(name)


def test_iter_all_lists_blobs_and_nothing_else(store: BlobStore) -> None:
    names = {store.put(f"blob {i}".encode()) for i in range(20)}
    some = next(iter(names))
    directory = store.path_for(some).parent
    (directory / f"{fsutil.TEMP_PREFIX}leftover").write_bytes(b"half")
    (directory / "README").write_bytes(b"not a blob")
    (directory / ("f" * 64)).write_bytes(b"a blob name in the wrong directory")
    (store.root / "zz").mkdir()

    assert set(store.iter_all()) == names


def test_sweep_removes_only_stale_temp_files(store: BlobStore) -> None:
    name = store.put(b"kept")
    directory = store.path_for(name).parent
    stale = directory / f"{fsutil.TEMP_PREFIX}crashed"
    fresh = directory / f"{fsutil.TEMP_PREFIX}in-progress"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"y")
    long_ago = time.time() - 7200
    os.utime(stale, (long_ago, long_ago))

    assert store.sweep_temp_files(older_than_seconds=3600) == 1

    assert not stale.exists()
    assert fresh.exists()
    assert store.exists(name)
    assert store.sweep_temp_files(older_than_seconds=0) == 1
    assert not fresh.exists()


def test_put_file_moves_the_file_in(store: BlobStore, tmp_path: Path) -> None:
    source = tmp_path / "upload.done"
    source.write_bytes(b"uploaded picture")

    name = store.put_file(source)

    assert name == sha(b"uploaded picture")
    assert not source.exists()
    assert store.read(name) == b"uploaded picture"


def test_put_file_of_known_content_just_removes_the_file(
    store: BlobStore, tmp_path: Path
) -> None:
    name = store.put(b"twice")
    source = tmp_path / "again"
    source.write_bytes(b"twice")

    assert store.put_file(source) == name
    assert not source.exists()
    assert store.read(name) == b"twice"


def test_put_file_copies_across_filesystems(
    store: BlobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "elsewhere"
    source.write_bytes(b"far away" * 1000)
    real_replace = os.replace

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(src) == source:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)

    name = store.put_file(source)

    assert store.read(name) == b"far away" * 1000
    assert not source.exists()
    assert list(store.path_for(name).parent.iterdir()) == [store.path_for(name)]


def test_verify_detects_a_changed_blob(store: BlobStore) -> None:
    name = store.put(b"original")
    assert store.verify(name)

    store.path_for(name).write_bytes(b"bit rot")

    assert not store.verify(name)


@pytest.mark.parametrize(
    "bad", ["", "../../etc/passwd", "A" * 64, "g" * 64, "a" * 63, "a" * 65, "ab/cd"]
)
def test_names_must_be_sha256_hex(store: BlobStore, bad: str) -> None:
    assert not is_sha256(bad)
    with pytest.raises(ValueError):
        store.path_for(bad)
    with pytest.raises(ValueError):
        store.read(bad)
