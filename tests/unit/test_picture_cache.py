"""The client's on-disk picture cache: bounded LRU, damaged files, two writers, per server."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import time
from pathlib import Path

import pytest

from protocol.messages.catalogue import GetPictures, ItemCard, Picture, Pictures
from protocol.pictures import resolve_thumbnails
from tui.data.picture_cache import (
    CACHE_DIR_VARIABLE,
    DiskPictureCache,
    cache_dir,
    server_namespace,
)
from tui.data.picture_store import CachedPictures

NAMESPACE = server_namespace("wss://127.0.0.1:8765", "sha256:AA")


def picture(seed: int, size: int = 1000) -> tuple[str, bytes]:
    """Distinct bytes for ``seed`` and their hash."""
    data = hashlib.sha256(str(seed).encode()).digest() * (size // 32 + 1)
    data = data[:size]
    return hashlib.sha256(data).hexdigest(), data


def age(path: Path, seconds_ago: float) -> None:
    """Pretend ``path`` was last used ``seconds_ago``."""
    when = time.time() - seconds_ago
    os.utime(path, (when, when))


def test_round_trip_and_hash_checked_on_write(tmp_path: Path) -> None:
    cache = DiskPictureCache(tmp_path, NAMESPACE)
    digest, data = picture(1)
    assert cache.read(digest) is None
    assert cache.write(digest, data)
    assert cache.read(digest) == data
    # Bytes under another picture's name are refused: the cache never lies about content.
    other, _ = picture(2)
    assert not cache.write(other, data)
    assert cache.read(other) is None
    # A name that is not a hash never becomes a path.
    assert not cache.write("../../etc/passwd", data)
    assert cache.read("../" + digest) is None


def test_files_are_private(tmp_path: Path) -> None:
    cache = DiskPictureCache(tmp_path, NAMESPACE)
    digest, data = picture(1)
    cache.write(digest, data)
    path = tmp_path / NAMESPACE / digest[:2] / digest
    assert path.stat().st_mode & 0o777 == 0o600


def test_least_recently_used_go_first_beyond_the_bound(tmp_path: Path) -> None:
    cache = DiskPictureCache(tmp_path, NAMESPACE, limit_bytes=10_000)
    pictures = [picture(seed) for seed in range(9)]  # 9,000 bytes: under the bound
    for index, (digest, data) in enumerate(pictures):
        cache.write(digest, data)
        age(tmp_path / NAMESPACE / digest[:2] / digest, 1000 - index)
    # Reading the oldest makes it the most recent (its age is past the touch threshold).
    oldest_digest, oldest = pictures[0]
    assert cache.read(oldest_digest) == oldest
    assert cache.usage() == 9000
    # Two more go over the bound: eviction brings it under 90% (9,000), oldest use first.
    for seed in (100, 101):
        digest, data = picture(seed)
        cache.write(digest, data)
    assert cache.usage() <= 9000
    assert cache.read(oldest_digest) == oldest  # read recently: kept
    assert cache.read(pictures[1][0]) is None  # the least recently used: gone
    assert cache.read(pictures[2][0]) is None
    assert cache.read(picture(101)[0]) is not None  # the newest: kept


def test_bound_covers_every_server_together(tmp_path: Path) -> None:
    first = DiskPictureCache(tmp_path, server_namespace("wss://a:1", "sha256:AA"), limit_bytes=5000)
    second = DiskPictureCache(
        tmp_path, server_namespace("wss://b:1", "sha256:BB"), limit_bytes=5000
    )
    for seed in range(4):
        first.write(*picture(seed))
    for seed in range(10, 14):
        second.write(*picture(seed))
    assert second.usage() <= 5000


def test_corrupt_or_truncated_file_is_a_miss_and_is_deleted(tmp_path: Path) -> None:
    cache = DiskPictureCache(tmp_path, NAMESPACE)
    digest, data = picture(1)
    cache.write(digest, data)
    path = tmp_path / NAMESPACE / digest[:2] / digest
    path.write_bytes(data[: len(data) // 2])  # a torn write
    assert cache.read(digest) is None
    assert not path.exists()
    cache.write(digest, data)
    path.write_bytes(b"\x00" * len(data))  # flipped bytes
    assert cache.read(digest) is None
    assert not path.exists()
    assert cache.write(digest, data) and cache.read(digest) == data


def test_stale_temporary_files_are_swept(tmp_path: Path) -> None:
    cache = DiskPictureCache(tmp_path, NAMESPACE)
    cache.write(*picture(1))
    tmp = tmp_path / NAMESPACE / "tmp"
    stale, fresh = tmp / "stale.part", tmp / "fresh.part"
    stale.write_bytes(b"half a picture")
    fresh.write_bytes(b"a write in progress")
    age(stale, 7200)
    assert cache.sweep_temporary() == 1
    assert not stale.exists() and fresh.exists()
    # Temporary files are not pictures: never counted, never served.
    assert cache.usage() == 1000


def test_namespaces_keep_servers_apart(tmp_path: Path) -> None:
    digest, data = picture(1)
    mine = DiskPictureCache(tmp_path, server_namespace("wss://shop:1", "sha256:AA"))
    mine.write(digest, data)
    # The same address under another certificate (a reinstall, an impostor) sees nothing.
    other = DiskPictureCache(tmp_path, server_namespace("wss://shop:1", "sha256:BB"))
    assert other.read(digest) is None
    assert server_namespace("wss://shop:1", "sha256:AA") != server_namespace(
        "wss://shop:2", "sha256:AA"
    )
    with pytest.raises(ValueError):
        DiskPictureCache(tmp_path, "../elsewhere")


def _write_many(root: str, seeds: list[int]) -> None:
    cache = DiskPictureCache(Path(root), NAMESPACE, limit_bytes=60_000)
    for seed in seeds:
        digest, data = picture(seed, 2000)
        assert cache.write(digest, data)
        cache.read(picture(seeds[0], 2000)[0])


def test_two_processes_write_and_evict_at_once(tmp_path: Path) -> None:
    """Two app instances share the folder: every file left is whole, and the bound holds."""
    context = multiprocessing.get_context("spawn")
    seeds = list(range(60))
    workers = [
        context.Process(target=_write_many, args=(str(tmp_path), seeds[i::2] + seeds[:10]))
        for i in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    cache = DiskPictureCache(tmp_path, NAMESPACE, limit_bytes=60_000)
    assert cache.usage() <= 60_000
    kept = 0
    for seed in seeds:
        digest, data = picture(seed, 2000)
        found = cache.read(digest)
        assert found is None or found == data
        kept += found is not None
    assert kept >= 20
    assert not list((tmp_path / NAMESPACE / "tmp").iterdir())  # no temporary file left


def test_cache_dir_follows_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_DIR_VARIABLE, str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"


# -- the session's store over the disk -----------------------------------------------------


async def test_store_writes_in_the_background_and_prefetches_from_disk(tmp_path: Path) -> None:
    disk = DiskPictureCache(tmp_path, NAMESPACE)
    store = CachedPictures(disk)
    digest, data = picture(1)
    store.put(digest, data)
    await store.flush()
    assert disk.read(digest) == data
    await store.close()
    # A new run: nothing in memory, so get misses until prefetch read the disk.
    reopened = CachedPictures(disk)
    assert reopened.get(digest) is None
    await reopened.prefetch([digest, picture(2)[0]])
    assert reopened.get(digest) == data
    assert (reopened.disk_hits, reopened.disk_misses) == (1, 1)
    await reopened.close()


class _FakeSession:
    """Answers GetPictures from a table and counts what it was asked."""

    def __init__(self, pictures: dict[int, bytes]) -> None:
        self.pictures = pictures
        self.asked: list[list[int]] = []

    async def request(self, request: GetPictures, expect: type[Pictures]) -> Pictures:
        self.asked.append(list(request.item_ids))
        return Pictures(
            id=1,
            pictures=[
                Picture(item_id=i, sha256=hashlib.sha256(self.pictures[i]).hexdigest(), data=d)
                for i in request.item_ids
                if (d := self.pictures[i])
            ],
        )


def _card(item_id: int, digest: str) -> ItemCard:
    return ItemCard(
        id=item_id,
        title="",
        price_cents=0,
        stock=1,
        public=True,
        owner_id=1,
        owner_name="ada",
        tags=[],
        width=1,
        height=1,
        created_at=0.0,
        thumbnail_sha256=digest,
    )


async def test_resolving_a_batch_asks_the_server_only_for_what_the_disk_lacks(
    tmp_path: Path,
) -> None:
    disk = DiskPictureCache(tmp_path, NAMESPACE)
    on_disk = {item_id: picture(item_id) for item_id in (1, 2, 3)}
    missing = {item_id: picture(item_id) for item_id in (4, 5)}
    for digest, data in on_disk.values():
        disk.write(digest, data)
    store = CachedPictures(disk)
    session = _FakeSession({i: data for i, (_, data) in (on_disk | missing).items()})
    cards = [_card(i, digest) for i, (digest, _) in (on_disk | missing).items()]
    await resolve_thumbnails(session, cards, store)  # type: ignore[arg-type]
    assert session.asked == [[4, 5]]  # one request, for the two the disk lacks
    assert all(card.thumbnail == picture(card.id)[1] for card in cards)
    await store.flush()
    assert disk.read(missing[4][0]) == missing[4][1]  # fetched ones are on disk for next time
    await store.close()
