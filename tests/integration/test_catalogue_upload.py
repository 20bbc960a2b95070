"""Uploads end to end: listing, duplicates, refusals that leave nothing behind, resume, sweeps."""

from __future__ import annotations

import asyncio
import hashlib
import io
import sqlite3
import struct
import zlib
from contextlib import AsyncExitStack
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from backend.config import ServerConfig
from backend.server import PixmartServer
from protocol.catalogue_client import delete_items, download_original, get_item, upload_file
from protocol.client import ConnectionState
from protocol.errors import BadRequest, Conflict, NotFound, PixmartError, TooLarge, UnsupportedMedia
from protocol.messages.catalogue import (
    BeginUpload,
    ChunkAck,
    FinishUpload,
    ItemCreated,
    ItemMetadata,
    UploadChunk,
    UploadState,
)
from tests.conftest import SessionFactory, logged_in, with_limits
from tests.support import StatusRecorder, eventually, pinned_session, running_server
from tests.support.catalogue import (
    EMPTY,
    account,
    blob_name,
    blob_names,
    encode,
    jpeg,
    meta,
    pixels,
    png,
    stored,
    upload,
    webp,
    write,
)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width`` x ``height`` (a decompression bomb's shape)."""
    data = bytearray(png(0, (8, 8)))
    struct.pack_into(">II", data, 16, width, height)  # IHDR data starts at byte 16
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    return bytes(data)


async def test_upload_lists_the_item_with_its_pictures(
    server: PixmartServer, make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    data = jpeg(1, (300, 200))
    created = await upload(
        alice,
        tmp_path,
        data,
        "  Red noise ",
        price_cents=1250,
        stock=3,
        tags=[" Abstract", "NOISE", "noise"],
        description="Grainy.",
    )
    card = created.item
    assert not created.duplicate
    assert (card.title, card.price_cents, card.stock, card.public) == ("Red noise", 1250, 3, True)
    assert card.tags == ["abstract", "noise"]
    assert (card.width, card.height, card.owner_name) == (300, 200, "alice")
    assert card.thumbnail is not None
    thumbnail = Image.open(io.BytesIO(card.thumbnail))
    assert thumbnail.format == "WEBP" and max(thumbnail.size) <= 256
    assert any("small" in warning for warning in created.warnings)

    detail = await get_item(alice, card.id)
    assert detail.sha256 == sha(data) and detail.format == "JPEG"
    assert detail.size_bytes == len(data) and detail.description == "Grainy."
    assert detail.preview is not None
    assert Image.open(io.BytesIO(detail.preview)).format == "WEBP"
    assert blob_name(server, sha(data)) in await blob_names(server)
    after = await stored(server)
    assert (after.items, after.pictures, after.uploads, after.partial_files) == (1, 1, 0, 0)


@pytest.mark.parametrize(
    ("name", "data"),
    [("png", png(2, (40, 30))), ("webp", webp(3, (40, 30)))],
)
async def test_png_and_webp_are_accepted(
    make_session: SessionFactory, tmp_path: Path, name: str, data: bytes
) -> None:
    alice = await logged_in(make_session, "alice")
    created = await upload(alice, tmp_path, data, name)
    assert (created.item.width, created.item.height) == (40, 30)
    assert (await get_item(alice, created.item.id)).format == name.upper()


async def test_orientation_is_applied_and_metadata_stripped_for_others(
    make_session: SessionFactory, tmp_path: Path
) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to show
    exif[0x010F] = "SpyCam"  # camera make: private to the seller
    data = encode(pixels(5, (80, 40)), "JPEG", quality=90, exif=exif.tobytes())
    alice = await logged_in(make_session, "alice")
    card = (await upload(alice, tmp_path, data)).item
    assert (card.width, card.height) == (40, 80) and card.thumbnail is not None
    assert Image.open(io.BytesIO(card.thumbnail)).size == (40, 80)
    assert not Image.open(io.BytesIO(card.thumbnail)).getexif()

    own, own_reply = await download_original(alice, card.id)
    assert own == data and not own_reply.stripped

    bob = await logged_in(make_session, "bob")
    theirs, reply = await download_original(bob, card.id)
    assert reply.stripped and b"SpyCam" not in theirs
    assert reply.sha256 == sha(theirs) and reply.total == len(theirs)
    picture = Image.open(io.BytesIO(theirs))
    picture.load()
    assert picture.size == (80, 40) and picture.getexif().get(0x0112) == 6


async def test_exact_duplicate_names_the_existing_item(
    server: PixmartServer, make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    data = jpeg(7)
    first = await upload(alice, tmp_path, data, "First")
    before = await stored(server)
    again = await upload(alice, tmp_path, data, "Second try")
    assert again.duplicate and again.item.id == first.item.id and again.item.title == "First"
    assert await stored(server) == before


async def test_same_picture_from_another_seller_shares_one_file(
    server: PixmartServer, make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    bob = await logged_in(make_session, "bob")
    data = jpeg(8)
    mine = await upload(alice, tmp_path, data)
    files = (await stored(server)).blobs
    theirs = await upload(bob, tmp_path, data)
    assert not theirs.duplicate and theirs.item.id != mine.item.id
    after = await stored(server)
    assert (after.items, after.pictures, after.blobs) == (2, 1, files)

    await delete_items(alice, [mine.item.id])
    after = await stored(server)
    assert (after.items, after.pictures, after.blobs) == (1, 1, files)
    await delete_items(bob, [theirs.item.id])
    assert await stored(server) == EMPTY


# -- refusals: a typed error, and nothing written ------------------------------------------


_REFUSED = [
    ("not a picture", b"hello, I am a text file\n" * 20, UnsupportedMedia),
    ("GIF", encode(pixels(9), "GIF"), UnsupportedMedia),
    ("truncated JPEG", jpeg(10, (120, 90))[:2500], UnsupportedMedia),
    ("PNG magic, no PNG", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8, UnsupportedMedia),
    ("JPEG magic, PNG body", b"\xff\xd8\xff" + png(11)[3:], UnsupportedMedia),
    ("over the pixel limit", png_claiming(8000, 8000), TooLarge),
    ("decompression bomb", png_claiming(100_000, 100_000), TooLarge),
]


@pytest.mark.parametrize(("case", "data", "error"), _REFUSED, ids=[c[0] for c in _REFUSED])
async def test_refused_files_leave_nothing_behind(
    server: PixmartServer,
    make_session: SessionFactory,
    tmp_path: Path,
    case: str,
    data: bytes,
    error: type[PixmartError],
) -> None:
    alice = await logged_in(make_session, "alice")
    with pytest.raises(error) as refused:
        await upload(alice, tmp_path, data)
    assert refused.value.message and "Traceback" not in refused.value.message
    assert await stored(server) == EMPTY


async def test_empty_file_is_refused_at_begin(
    server: PixmartServer, make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    with pytest.raises(UnsupportedMedia, match="empty"):
        await upload_file(alice, write(tmp_path, "empty.jpg", b""), meta())
    assert await stored(server) == EMPTY


async def test_declared_size_over_the_limit_is_refused_before_any_byte(
    server: PixmartServer, make_session: SessionFactory
) -> None:
    alice = await logged_in(make_session, "alice")
    too_big = server.config.limits.max_upload_bytes + 1
    with pytest.raises(TooLarge, match="limit"):
        await alice.request(
            BeginUpload(sha256="ab" * 32, size=too_big, metadata=meta()), UploadState
        )
    assert await stored(server) == EMPTY


async def test_more_bytes_than_declared_discards_the_upload(
    server: PixmartServer, make_session: SessionFactory
) -> None:
    alice = await logged_in(make_session, "alice")
    data = jpeg(12)
    state = await alice.request(
        BeginUpload(sha256=sha(data), size=100, metadata=meta()), UploadState
    )
    with pytest.raises(TooLarge):
        await alice.request(
            UploadChunk(upload_id=state.upload_id, offset=0, data=data[:200]), ChunkAck
        )
    assert await stored(server) == EMPTY
    with pytest.raises(NotFound):
        await alice.request(FinishUpload(upload_id=state.upload_id), ItemCreated)


async def test_content_not_matching_the_announced_hash_is_refused(
    server: PixmartServer, make_session: SessionFactory
) -> None:
    alice = await logged_in(make_session, "alice")
    data = jpeg(13)
    state = await alice.request(
        BeginUpload(sha256=sha(b"something else"), size=len(data), metadata=meta()), UploadState
    )
    await alice.request(UploadChunk(upload_id=state.upload_id, offset=0, data=data), ChunkAck)
    with pytest.raises(BadRequest, match="checksum"):
        await alice.request(FinishUpload(upload_id=state.upload_id), ItemCreated)
    assert await stored(server) == EMPTY


@pytest.mark.parametrize(
    "metadata",
    [
        ItemMetadata(title="   "),
        ItemMetadata(title="Clear screen \x1b[2J"),
        ItemMetadata(title="Tagged", tags=["Bad Tag!"]),
        ItemMetadata(title="Tagged", tags=["x" * 33]),
        ItemMetadata(title="Tagged", tags=[f"t{i}" for i in range(21)]),
        ItemMetadata(title="Negative", price_cents=-1),
        ItemMetadata(title="Negative", stock=-5),
    ],
)
async def test_invalid_listing_is_refused_before_any_byte(
    server: PixmartServer, make_session: SessionFactory, tmp_path: Path, metadata: ItemMetadata
) -> None:
    alice = await logged_in(make_session, "alice")
    with pytest.raises(BadRequest):
        await upload_file(alice, write(tmp_path, "ok.jpg", jpeg(14)), metadata)
    assert await stored(server) == EMPTY


async def test_upload_ids_are_never_paths(
    server: PixmartServer, make_session: SessionFactory
) -> None:
    alice = await logged_in(make_session, "alice")
    for upload_id in ("../../../../../../etc/passwd", "../" * 10 + "xx", "a" * 31 + "/"):
        with pytest.raises(BadRequest):
            await alice.request(UploadChunk(upload_id=upload_id, offset=0, data=b"x"), ChunkAck)
    assert await stored(server) == EMPTY


async def test_other_users_cannot_touch_an_upload(
    server: PixmartServer, make_session: SessionFactory
) -> None:
    alice = await logged_in(make_session, "alice")
    bob = await logged_in(make_session, "bob")
    data = jpeg(15)
    state = await alice.request(
        BeginUpload(sha256=sha(data), size=len(data), metadata=meta()), UploadState
    )
    with pytest.raises(NotFound):
        await bob.request(UploadChunk(upload_id=state.upload_id, offset=0, data=data), ChunkAck)
    with pytest.raises(NotFound):
        await bob.request(FinishUpload(upload_id=state.upload_id), ItemCreated)
    assert (await stored(server)).uploads == 1


async def test_wrong_offset_and_early_finish_keep_the_upload_resumable(
    server: PixmartServer, make_session: SessionFactory
) -> None:
    alice = await logged_in(make_session, "alice")
    data = jpeg(16)
    state = await alice.request(
        BeginUpload(sha256=sha(data), size=len(data), metadata=meta()), UploadState
    )
    half = len(data) // 2
    await alice.request(
        UploadChunk(upload_id=state.upload_id, offset=0, data=data[:half]), ChunkAck
    )
    with pytest.raises(Conflict) as conflict:
        await alice.request(UploadChunk(upload_id=state.upload_id, offset=7, data=b"x"), ChunkAck)
    assert conflict.value.details == {"offset": half}
    with pytest.raises(BadRequest, match="incomplete") as early:
        await alice.request(FinishUpload(upload_id=state.upload_id), ItemCreated)
    assert early.value.details == {"offset": half}
    rest = UploadChunk(upload_id=state.upload_id, offset=half, data=data[half:])
    assert (await alice.request(rest, ChunkAck)).offset == len(data)
    created = await alice.request(FinishUpload(upload_id=state.upload_id), ItemCreated)
    assert created.item.title == "A picture"


# -- resume --------------------------------------------------------------------------------


@pytest.fixture
def small_chunks(server_config: ServerConfig) -> ServerConfig:
    """A server config with 8 KiB chunks, so small pictures take many."""
    return with_limits(server_config, upload_chunk_bytes=8 * 1024)


async def test_upload_survives_a_cut_connection(small_chunks: ServerConfig, tmp_path: Path) -> None:
    data = jpeg(17, (320, 240))
    assert len(data) > 6 * 8 * 1024
    path = write(tmp_path, "big.jpg", data)
    async with running_server(small_chunks) as server, AsyncExitStack() as stack:
        alice = await account(stack, server, "alice")
        recorder = StatusRecorder(alice)
        offsets: list[int] = []

        def progress(done: int, total: int) -> None:
            offsets.append(done)
            if len(offsets) == 3:
                alice.abort_transport()  # mid-upload, as a network failure would

        created = await upload_file(alice, path, meta("Survivor"), progress=progress)
        assert ConnectionState.RECONNECTING in recorder.states()
        assert offsets == sorted(offsets) and offsets[-1] == len(data)
        assert (await get_item(alice, created.item.id)).sha256 == sha(data)
        after = await stored(server)
        assert (after.items, after.uploads, after.partial_files) == (1, 0, 0)


async def test_a_new_session_resumes_an_upload_by_its_hash(
    small_chunks: ServerConfig, tmp_path: Path
) -> None:
    data = jpeg(18, (320, 240))
    path = write(tmp_path, "resume.jpg", data)
    async with running_server(small_chunks) as server, AsyncExitStack() as stack:
        first = await account(stack, server, "alice")
        state = await first.request(
            BeginUpload(sha256=sha(data), size=len(data), metadata=meta()), UploadState
        )
        sent = 0
        for _ in range(3):
            chunk = data[sent : sent + state.chunk_bytes]
            request = UploadChunk(upload_id=state.upload_id, offset=sent, data=chunk)
            sent = (await first.request(request, ChunkAck)).offset
        await first.close()  # e.g. the CLI was interrupted

        second = await stack.enter_async_context(pinned_session(server))
        await second.login("alice", "password123")
        offsets: list[int] = []
        created = await upload_file(
            second, path, meta("Resumed"), progress=lambda done, _: offsets.append(done)
        )
        assert offsets[0] == sent == 3 * 8 * 1024
        assert created.item.title == "Resumed" and not created.duplicate
        assert (await get_item(second, created.item.id)).sha256 == sha(data)
        assert (await stored(server)).partial_files == 0


async def test_abandoned_uploads_expire(server_config: ServerConfig) -> None:
    config = replace(server_config, upload_expiry=0.3)
    data = jpeg(19)
    async with running_server(config) as server, AsyncExitStack() as stack:
        alice = await account(stack, server, "alice")
        state = await alice.request(
            BeginUpload(sha256=sha(data), size=len(data), metadata=meta()), UploadState
        )
        await alice.request(
            UploadChunk(upload_id=state.upload_id, offset=0, data=data[:100]), ChunkAck
        )
        assert (await stored(server)).uploads == 1

        async def swept() -> bool:
            return await stored(server) == EMPTY

        await eventually(swept, timeout=5.0)
        with pytest.raises(NotFound):
            await alice.request(
                UploadChunk(upload_id=state.upload_id, offset=100, data=data[100:]), ChunkAck
            )


@pytest.mark.sqlite_only  # plants rows straight into the SQLite file
@pytest.mark.local_blobs  # and files straight into the data dir's blobs folder
async def test_startup_sweep_removes_what_no_row_owns(
    server: PixmartServer, server_config: ServerConfig, make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    kept = await upload(alice, tmp_path, jpeg(20))
    kept_sha = sha(jpeg(20))
    await alice.close()
    await server.stop()

    data_dir = server_config.data_dir
    orphan = "0f" * 32
    orphan_blob = write(data_dir / "blobs" / orphan[:2] / orphan[2:4], orphan, b"nobody's")
    temp_file = write(data_dir / "blobs" / orphan[:2] / orphan[2:4], ".tmp-crashed", b"half")
    orphan_part = write(data_dir / "uploads", "A" * 32 + ".part", b"partial bytes")
    ghost_sha = "1e" * 32
    ghost_blob = write(data_dir / "blobs" / ghost_sha[:2] / ghost_sha[2:4], ghost_sha, b"ghost")
    with sqlite3.connect(server_config.db_path) as db:
        # An upload row whose bytes are gone, and a picture no item shows.
        db.execute(
            "INSERT INTO uploads (id, owner_id, sha256, size, metadata, created_at)"
            " VALUES (?, 1, ?, 10, x'80', 0)",
            ("B" * 32, "2d" * 32),
        )
        db.execute(
            "INSERT INTO pictures (sha256, format, width, height, orientation, size_bytes,"
            " clean_sha256, clean_size, created_at, thumbnail)"
            " VALUES (?, 'JPEG', 1, 1, 1, 5, ?, 5, 0, x'00')",
            (ghost_sha, ghost_sha),
        )

    async with running_server(server_config) as restarted, AsyncExitStack() as stack:
        for path in (orphan_blob, temp_file, orphan_part, ghost_blob):
            assert not path.exists(), path
        after = await stored(restarted)
        assert (after.items, after.pictures, after.uploads, after.partial_files) == (1, 1, 0, 0)
        again = await stack.enter_async_context(pinned_session(restarted))
        await again.login("alice", "password123")
        assert (await get_item(again, kept.item.id)).sha256 == kept_sha
        original, _ = await download_original(again, kept.item.id)
        assert sha(original) == kept_sha


async def test_concurrent_uploads_of_the_same_file_list_it_once(
    server: PixmartServer, make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    path = write(tmp_path, "twice.jpg", jpeg(21))
    results = await asyncio.gather(
        *(upload_file(alice, path, meta(f"copy {i}")) for i in range(3)), return_exceptions=True
    )
    created = [r for r in results if isinstance(r, ItemCreated)]
    assert created and len({r.item.id for r in created}) == 1
    assert (await stored(server)).items == 1
