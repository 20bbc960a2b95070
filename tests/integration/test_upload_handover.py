"""Uploads that move between instances: two servers on one PostgreSQL database and one S3 prefix.

Each instance has its own data dir; the partial bytes are chunk objects in the object store
(``partials/<upload id>/<offset>``), so an upload begun on A and cut off when A stops resumes on
B from the last acknowledged byte. Also: a chunk retried on the other instance is a no-op, a gap
is refused, and cancelling or expiring an upload removes its chunk objects.
"""

from __future__ import annotations

import hashlib
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from backend.config import Limits, ServerConfig
from backend.media.s3partials import PARTIALS
from backend.server import PixmartServer
from protocol.catalogue_client import download_original, get_item, upload_file
from protocol.client import Session
from protocol.errors import Conflict, NotFound
from protocol.messages.base import Ok
from protocol.messages.catalogue import (
    BeginUpload,
    CancelUpload,
    ChunkAck,
    UploadChunk,
    UploadState,
)
from tests.support import eventually, pinned_session, running_server
from tests.support.catalogue import catalogue, jpeg, meta, stored, write
from tests.support.s3 import ObjectStore

pytestmark = pytest.mark.timeout(120)

CHUNK = 8 * 1024
PASSWORD = "password123"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def instance_config(pg_url: str, blobs_url: str, data_dir: Path) -> ServerConfig:
    """An instance on the shared database and object store, with a data dir of its own."""
    return ServerConfig(
        database=pg_url,
        blobs=blobs_url,
        data_dir=data_dir,
        port=0,
        enable_vision=False,
        limits=Limits(max_unauthenticated_per_address=1_000, upload_chunk_bytes=CHUNK),
    )


async def login(stack: AsyncExitStack, server: PixmartServer, username: str) -> Session:
    """A session on ``server`` logged in as ``username``, closed when ``stack`` closes."""
    session = await stack.enter_async_context(pinned_session(server))
    await session.login(username, PASSWORD)
    return session


def partial_keys(object_store: ObjectStore, blobs_url: str) -> list[str]:
    """The keys of partial uploads under the shared prefix."""
    return [key for key in object_store.keys(blobs_url) if key.startswith(PARTIALS + "/")]


async def test_an_upload_begun_on_one_instance_is_finished_on_another(
    pg_url: str, blobs_url: str, object_store: ObjectStore, tmp_path: Path
) -> None:
    data = jpeg(31, (320, 240))
    assert len(data) > 6 * CHUNK
    async with AsyncExitStack() as stack:
        b = await stack.enter_async_context(
            running_server(instance_config(pg_url, blobs_url, tmp_path / "b"))
        )
        async with running_server(instance_config(pg_url, blobs_url, tmp_path / "a")) as a:
            on_a = await stack.enter_async_context(pinned_session(a))
            await on_a.create_account("alice", PASSWORD)
            await on_a.login("alice", PASSWORD)
            state = await on_a.request(
                BeginUpload(sha256=sha(data), size=len(data), metadata=meta("Moved")), UploadState
            )
            sent = 0
            for _ in range(3):
                chunk = UploadChunk(
                    upload_id=state.upload_id, offset=sent, data=data[sent : sent + CHUNK]
                )
                sent = (await on_a.request(chunk, ChunkAck)).offset
            assert sent == 3 * CHUNK
        # A is gone; its data dir held none of the upload.
        assert not any((tmp_path / "a" / "uploads").iterdir())

        on_b = await login(stack, b, "alice")
        resumed = await on_b.request(
            BeginUpload(sha256=sha(data), size=len(data), metadata=meta("Moved")), UploadState
        )
        assert (resumed.upload_id, resumed.offset) == (state.upload_id, sent)
        # The last chunk A acknowledged, sent again to B (a retry after the drop): a no-op.
        again = UploadChunk(
            upload_id=state.upload_id, offset=sent - CHUNK, data=data[sent - CHUNK : sent]
        )
        assert (await on_b.request(again, ChunkAck)).offset == sent
        # A gap is refused as on one server, naming where to resume.
        gap = UploadChunk(upload_id=state.upload_id, offset=sent + CHUNK, data=b"x")
        with pytest.raises(Conflict) as refused:
            await on_b.request(gap, ChunkAck)
        assert refused.value.details == {"offset": sent}

        offsets: list[int] = []
        created = await upload_file(
            on_b,
            write(tmp_path, "moved.jpg", data),
            meta("Moved"),
            progress=lambda done, _: offsets.append(done),
        )
        assert offsets[0] == sent and offsets[-1] == len(data)
        assert created.item.title == "Moved" and not created.duplicate
        assert (await get_item(on_b, created.item.id)).sha256 == sha(data)
        original, _ = await download_original(on_b, created.item.id)
        assert original == data
        after = await stored(b)
        assert (after.items, after.pictures, after.uploads, after.partial_files) == (1, 1, 0, 0)
        assert partial_keys(object_store, blobs_url) == []


async def test_cancel_and_expiry_remove_the_chunk_objects(
    pg_url: str, blobs_url: str, object_store: ObjectStore, tmp_path: Path
) -> None:
    cancelled, expired = jpeg(32), jpeg(33)
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(
            running_server(instance_config(pg_url, blobs_url, tmp_path / "a"))
        )
        b = await stack.enter_async_context(
            running_server(instance_config(pg_url, blobs_url, tmp_path / "b"))
        )
        on_a = await stack.enter_async_context(pinned_session(a))
        await on_a.create_account("alice", PASSWORD)
        await on_a.login("alice", PASSWORD)
        on_b = await login(stack, b, "alice")

        ids = []
        for data in (cancelled, expired):
            state = await on_a.request(
                BeginUpload(sha256=sha(data), size=len(data), metadata=meta()), UploadState
            )
            chunk = UploadChunk(upload_id=state.upload_id, offset=0, data=data[:100])
            await on_a.request(chunk, ChunkAck)
            ids.append(state.upload_id)
        assert {key.split("/")[1] for key in partial_keys(object_store, blobs_url)} == set(ids)

        # Cancelled on the other instance: its objects go with it.
        assert isinstance(await on_b.request(CancelUpload(upload_id=ids[0]), Ok), Ok)
        assert {key.split("/")[1] for key in partial_keys(object_store, blobs_url)} == {ids[1]}

        # Expired (here: untouched for no time at all) by the other instance.
        async def expired_on_b() -> bool:
            await catalogue(b).uploads.expire(0.0)
            return partial_keys(object_store, blobs_url) == []

        await eventually(expired_on_b, timeout=5.0, interval=0.2)
        assert (await stored(b)).uploads == 0
        with pytest.raises(NotFound):
            await on_a.request(
                UploadChunk(upload_id=ids[1], offset=100, data=expired[100:]), ChunkAck
            )
