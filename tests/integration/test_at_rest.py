"""Pictures encrypted at rest: what a stolen disk or bucket shows, damage, keys, rotation.

The first test runs on the data dir and, in the object-store pass of ``make test``
(``PIXMART_TEST_BLOBS=s3``), on the bucket; the others plant damage, swap keys or kill processes
in the data dir, so they are for the local store.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import signal
import subprocess
import sys
from contextlib import AsyncExitStack
from dataclasses import replace
from pathlib import Path

import obstore
import pytest

from backend.atrest.envelope import HEADER_BYTES, TAG_BYTES
from backend.atrest.keyring import load_keyring, open_store_keys
from backend.atrest.keys import KeySet, generate_key_file, load_key_file
from backend.atrest.sealed_blobs import BLOB_SEGMENT_BYTES, SealedBlobs
from backend.cli import main as server_cli
from backend.config import ServerConfig, default_master_key_file
from backend.media.blobs import LocalBlobs
from backend.server import PixmartServer
from backend.startup import StartupError
from protocol.catalogue_client import browse, download_original, upload_file
from protocol.client import Session
from protocol.errors import ErrorCode, PixmartError
from protocol.messages.catalogue import BeginUpload, ChunkAck, UploadChunk, UploadState
from tests.support import eventually, pinned_session, running_server
from tests.support.catalogue import account, blob_name, jpeg, meta, png, upload, webp, write

#: How picture files begin (WebP: RIFF, the size, then WEBP).
SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF8")
STRIDE = BLOB_SEGMENT_BYTES + TAG_BYTES


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def looks_like_a_picture(head: bytes) -> bool:
    return head.startswith(SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def noise_jpeg(seed: int) -> bytes:
    """A JPEG of several sealed segments of an upload in progress (random pixels compress
    badly)."""
    return jpeg(seed, (700, 500))


def large_noise_jpeg(seed: int) -> bytes:
    """A JPEG of more than three segments as the picture store seals them (about 3.6 MB)."""
    return jpeg(seed, (2200, 1800))


async def begin_partial(session: Session, data: bytes) -> str:
    """Begin uploading ``data`` and send its first half only: an upload in progress."""
    state = await session.request(
        BeginUpload(sha256=sha(data), size=len(data), metadata=meta("Half way")), UploadState
    )
    chunk = UploadChunk(upload_id=state.upload_id, offset=0, data=data[: len(data) // 2])
    await session.request(chunk, ChunkAck)
    return state.upload_id


async def stored_objects(server: PixmartServer, request: pytest.FixtureRequest) -> dict[str, bytes]:
    """Every stored file of the shop, by path or object key, with its bytes."""
    config = server.config
    found = {
        str(path.relative_to(config.data_dir)): path.read_bytes()
        for path in config.data_dir.rglob("*")
        if path.is_file()
    }
    if config.blobs is not None:
        client = request.getfixturevalue("object_store").client(config.blobs)
        for page in obstore.list(client):
            for entry in page:
                found["s3:" + entry["path"]] = bytes(obstore.get(client, entry["path"]).bytes())
    return found


async def test_nothing_stored_shows_a_picture_or_its_hash(
    server: PixmartServer, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    async with AsyncExitStack() as stack:
        alice = await account(stack, server, "alice")
        pictures = [noise_jpeg(1), png(2, (300, 200)), webp(3, (300, 200))]
        for data in pictures:
            await upload(alice, tmp_path, data)
        in_progress = noise_jpeg(4)
        await begin_partial(alice, in_progress)
        rows = await server.db.fetchall("SELECT sha256, clean_sha256 FROM pictures")
        hashes = {str(name) for row in rows for name in row} | {sha(in_progress)}
        assert len(hashes) >= 4

        files = await stored_objects(server, request)
        blob_files = [name for name in files if "blobs" in name or name.startswith("s3:")]
        assert len(blob_files) >= 3
        for name, data in files.items():
            assert not looks_like_a_picture(data[:12]), name
            assert not any(picture in name for picture in hashes), name
            # Thumbnails and previews in the database are sealed as well.
            assert b"WEBPVP8" not in data, name
            for picture in pictures:
                assert picture[:64] not in data and picture[-64:] not in data, name


@pytest.mark.sqlite_only
@pytest.mark.local_blobs  # damages files in the data dir
async def test_a_damaged_picture_is_an_internal_error_never_wrong_bytes(
    server: PixmartServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with AsyncExitStack() as stack:
        alice = await account(stack, server, "alice")
        originals = [large_noise_jpeg(seed) for seed in (10, 11, 12, 13)]
        items = [(await upload(alice, tmp_path, data)).item.id for data in originals]

        def file_of(data: bytes) -> Path:
            name = blob_name(server, sha(data))
            return server.config.data_dir / "blobs" / name[:2] / name[2:4] / name

        sealed = [file_of(data) for data in originals]
        assert all(path.stat().st_size > HEADER_BYTES + 3 * STRIDE for path in sealed)
        flipped = bytearray(sealed[0].read_bytes())
        flipped[HEADER_BYTES + STRIDE + 100] ^= 0x01
        sealed[0].write_bytes(bytes(flipped))
        truncated = sealed[1].read_bytes()
        sealed[1].write_bytes(truncated[: HEADER_BYTES + 2 * STRIDE])
        swapped = sealed[2].read_bytes()
        one, two = (
            swapped[HEADER_BYTES : HEADER_BYTES + STRIDE],
            swapped[HEADER_BYTES + STRIDE :][:STRIDE],
        )
        sealed[2].write_bytes(
            swapped[:HEADER_BYTES] + two + one + swapped[HEADER_BYTES + 2 * STRIDE :]
        )

        for item_id in items[:3]:
            caplog.clear()
            with caplog.at_level(logging.ERROR):
                with pytest.raises(PixmartError) as caught:
                    await download_original(alice, item_id)
            assert caught.value.code is ErrorCode.INTERNAL
            damaged = [r for r in caplog.records if "does not open" in r.getMessage()]
            assert len(damaged) == 1 and damaged[0].exc_info is None
        # The untouched picture, and everything else, is served as before.
        data, _ = await download_original(alice, items[3])
        assert data == originals[3]
        assert len((await browse(alice)).items) == 4


@pytest.mark.sqlite_only
@pytest.mark.local_blobs
async def test_a_server_with_the_wrong_key_or_none_refuses_to_start(
    server_config: ServerConfig, tmp_path: Path
) -> None:
    async with running_server(server_config) as server, AsyncExitStack() as stack:
        alice = await account(stack, server, "alice")
        await upload(alice, tmp_path, jpeg(1))
    right = load_key_file(default_master_key_file())
    wrong = generate_key_file(tmp_path / "keys" / "wrong.key")
    with pytest.raises(StartupError) as caught:
        async with running_server(
            replace(server_config, master_key_file=tmp_path / "keys" / "wrong.key")
        ):
            pass
    assert right.key_id in str(caught.value) and wrong.key_id in str(caught.value)
    with pytest.raises(StartupError, match=right.key_id):
        async with running_server(replace(server_config, encrypt_at_rest=False)):
            pass
    # From the command line: one line naming the key, exit status 1, at once.
    command = [
        sys.executable,
        "-m",
        "backend.cli",
        "serve",
        "--port",
        "0",
        "--no-vision",
        "--data-dir",
        str(server_config.data_dir),
        "--key-file",
        str(tmp_path / "keys" / "wrong.key"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert right.key_id in done.stderr and wrong.key_id in done.stderr


async def seed_sealed_blobs(data_dir: Path, keys: KeySet, count: int) -> None:
    """``count`` small sealed blobs no row names: enough for a rotation to take a while."""
    raw = LocalBlobs(data_dir / "blobs")
    blobs = SealedBlobs(raw, await open_store_keys(raw, keys))
    for n in range(count):
        await blobs.put(f"filler {n}".encode())


def rotate_command(data_dir: Path, old: Path, new: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "backend.cli",
        "keys",
        "rotate",
        "--data-dir",
        str(data_dir),
        "--key-file",
        str(old),
        "--new-key-file",
        str(new),
    ]


@pytest.mark.sqlite_only
@pytest.mark.local_blobs
async def test_rotation_killed_midway_resumes_and_downloads_stay_byte_identical(
    server_config: ServerConfig, tmp_path: Path
) -> None:
    originals = [noise_jpeg(20), png(21, (200, 150))]
    partial = noise_jpeg(22)
    async with running_server(server_config) as server, AsyncExitStack() as stack:
        alice = await account(stack, server, "alice")
        items = [(await upload(alice, tmp_path, data)).item.id for data in originals]
        await begin_partial(alice, partial)
        assert (await download_original(alice, items[0]))[0] == originals[0]
    data_dir = server_config.data_dir
    old_path = default_master_key_file()
    old = load_key_file(old_path)
    new_path = tmp_path / "keys" / "new.key"
    new = generate_key_file(new_path)
    await seed_sealed_blobs(data_dir, KeySet(old), 1500)

    # Killed (SIGKILL) once it has re-wrapped some but not all files.
    process = subprocess.Popen(
        rotate_command(data_dir, old_path, new_path), stderr=subprocess.PIPE, text=True
    )
    assert process.stderr is not None
    progress = ""
    while "100 files re-wrapped" not in progress:
        char = process.stderr.read(1)
        assert char, f"rotation ended early: {progress!r}"
        progress += char
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    keyring = await load_keyring(LocalBlobs(data_dir / "blobs"))
    assert keyring is not None and keyring.retiring == old.key_id

    # Half way, a server must hold both keys.
    with pytest.raises(StartupError, match=old.key_id):
        async with running_server(replace(server_config, master_key_file=new_path)):
            pass
    # Run again, it finishes; then the old key opens nothing and the new one everything.
    finish = rotate_command(data_dir, old_path, new_path)[3:]
    assert await asyncio.to_thread(server_cli, finish) == 0
    keyring = await load_keyring(LocalBlobs(data_dir / "blobs"))
    assert keyring is not None and set(keyring.names) == {new.key_id} and keyring.retiring is None
    with pytest.raises(StartupError, match=new.key_id):
        async with running_server(server_config):  # the old key, at the default path
            pass
    async with (
        running_server(replace(server_config, master_key_file=new_path)) as server,
        AsyncExitStack() as stack,
    ):
        alice = await stack.enter_async_context(pinned_session(server))
        await alice.login("alice", "password123")
        for item_id, data in zip(items, originals, strict=True):
            assert (await download_original(alice, item_id))[0] == data
        # The upload in progress resumes where it stood and finishes.
        created = await upload_file(
            alice, write(tmp_path, "partial.jpg", partial), meta("Half way")
        )
        assert (await download_original(alice, created.item.id))[0] == partial


@pytest.mark.sqlite_only
@pytest.mark.local_blobs
async def test_a_store_from_before_encryption_is_sealed_in_place(
    server_config: ServerConfig, tmp_path: Path
) -> None:
    originals = [noise_jpeg(30), png(31, (200, 150)), webp(32, (200, 150))]
    async with running_server(replace(server_config, encrypt_at_rest=False)) as plain:
        async with AsyncExitStack() as stack:
            alice = await account(stack, plain, "alice")
            items = [(await upload(alice, tmp_path, data)).item.id for data in originals]
    blobs_dir = server_config.data_dir / "blobs"
    assert any(
        looks_like_a_picture(p.read_bytes()[:12]) for p in blobs_dir.rglob("*") if p.is_file()
    )

    async with running_server(server_config) as server, AsyncExitStack() as stack:
        alice = await stack.enter_async_context(pinned_session(server))
        await alice.login("alice", "password123")
        # Served throughout, whichever name each picture has at the moment.
        for item_id, data in zip(items, originals, strict=True):
            assert (await download_original(alice, item_id))[0] == data

        async def sealed() -> bool:
            keyring = await load_keyring(LocalBlobs(blobs_dir))
            return keyring is not None and not keyring.plaintext_left

        await eventually(sealed, timeout=30)
        metrics = server.services.metrics.registry
        files = metrics.get_sample_value(
            "pixmart_pictures_encrypted_in_place_total", {"kind": "file"}
        )
        assert files is not None and files >= len(originals)
        for item_id, data in zip(items, originals, strict=True):
            assert (await download_original(alice, item_id))[0] == data
            assert (await browse(alice)).items
    for path in server_config.data_dir.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert not looks_like_a_picture(content[:12]), path
            assert b"WEBPVP8" not in content, path
