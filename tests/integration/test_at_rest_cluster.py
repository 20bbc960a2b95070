"""A master key rotation beside two running instances on PostgreSQL and the object store.

The procedure of the README ("Rotating the master key"): the instances run with the new key
current and the old one accepted, `keys rotate` re-wraps every object, row and upload in
progress while they serve, and afterwards an instance with the new key alone opens everything.
"""

from __future__ import annotations

import hashlib
from contextlib import AsyncExitStack
from dataclasses import replace
from pathlib import Path

import obstore
import pytest

from backend.atrest.envelope import HEADER_BYTES, parse_header
from backend.atrest.keyring import load_keyring
from backend.atrest.keys import generate_key_file
from backend.atrest.rotation import rotate_master_key
from backend.catalogue.repositories import picture_repository
from backend.config import Limits, ServerConfig
from backend.media.blobs import open_blob_storage
from backend.media.partials import open_partial_storage
from protocol.catalogue_client import download_original, get_item, upload_file
from protocol.messages.catalogue import BeginUpload, ChunkAck, UploadChunk, UploadState
from tests.support import pinned_session, running_server
from tests.support.catalogue import account, jpeg, meta, upload, write
from tests.support.s3 import ObjectStore

pytestmark = pytest.mark.timeout(180)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def instance(pg_url: str, blobs_url: str, data_dir: Path, key: Path, old: Path) -> ServerConfig:
    """An instance with ``key`` current and ``old`` accepted (step 2 of the procedure)."""
    return ServerConfig(
        database=pg_url,
        blobs=blobs_url,
        data_dir=data_dir,
        port=0,
        enable_vision=False,
        limits=Limits(max_unauthenticated_per_address=1_000),
        master_key_file=key,
        old_master_key_file=old,
    )


async def test_rotation_beside_running_instances_leaves_every_picture_readable(
    pg_url: str, blobs_url: str, object_store: ObjectStore, tmp_path: Path
) -> None:
    old_path, new_path = tmp_path / "keys" / "old.key", tmp_path / "keys" / "new.key"
    old, new = generate_key_file(old_path), generate_key_file(new_path)
    pictures = [jpeg(seed, (700, 500)) for seed in (1, 2, 3)]
    partial = jpeg(4, (700, 500))
    first = instance(pg_url, blobs_url, tmp_path / "a", old_path, new_path)
    # Pictures sealed under the old key while it was current (step 1).
    async with running_server(first) as a, AsyncExitStack() as stack:
        alice = await account(stack, a, "alice")
        items = [(await upload(alice, tmp_path, data)).item.id for data in pictures[:2]]
        state = await alice.request(
            BeginUpload(sha256=sha(partial), size=len(partial), metadata=meta("Half")),
            UploadState,
        )
        half = UploadChunk(upload_id=state.upload_id, offset=0, data=partial[: len(partial) // 2])
        await alice.request(half, ChunkAck)

    async with AsyncExitStack() as stack:
        # Step 2: both instances wrap new pictures under the new key and open either.
        a = await stack.enter_async_context(
            running_server(instance(pg_url, blobs_url, tmp_path / "a", new_path, old_path))
        )
        b = await stack.enter_async_context(
            running_server(instance(pg_url, blobs_url, tmp_path / "b", new_path, old_path))
        )
        alice = await stack.enter_async_context(pinned_session(a))
        await alice.login("alice", "password123")
        items.append((await upload(alice, tmp_path, pictures[2])).item.id)
        bob_side = await stack.enter_async_context(pinned_session(b))
        await bob_side.login("alice", "password123")
        # An original read through B before the rotation keeps its opened header cached.
        assert (await download_original(bob_side, items[0]))[0] == pictures[0]

        # Step 3: the rotation, beside them.
        raw = open_blob_storage(blobs_url, tmp_path / "unused")
        report = await rotate_master_key(
            raw,
            picture_repository(a.db),
            lambda sealer: open_partial_storage(blobs_url, tmp_path / "scratch", 10**8, sealer),
            old,
            new,
        )
        assert report.objects_changed >= 3 and report.rows_changed == 2
        keyring = await load_keyring(raw)
        assert keyring is not None and set(keyring.names) == {new.key_id}
        client = object_store.client(blobs_url)
        for page in obstore.list(client):
            for entry in page:
                if entry["path"] == "keyring.json":
                    continue
                head = bytes(obstore.get(client, entry["path"]).bytes())[:HEADER_BYTES]
                if len(head) == HEADER_BYTES:
                    assert parse_header(head).key_id == new.key_id, entry["path"]

        # Every original and preview, through either instance, while they keep running.
        for session in (alice, bob_side):
            for item_id, data in zip(items, pictures, strict=True):
                assert (await download_original(session, item_id))[0] == data
                assert (await get_item(session, item_id)).preview

    # Step 4: the new key alone; the half-sent upload resumes and finishes.
    only_new = replace(
        instance(pg_url, blobs_url, tmp_path / "a", new_path, old_path), old_master_key_file=None
    )
    async with running_server(only_new) as a, AsyncExitStack() as stack:
        alice = await stack.enter_async_context(pinned_session(a))
        await alice.login("alice", "password123")
        for item_id, data in zip(items, pictures, strict=True):
            assert (await download_original(alice, item_id))[0] == data
        created = await upload_file(alice, write(tmp_path, "half.jpg", partial), meta("Half"))
        assert (await download_original(alice, created.item.id))[0] == partial
