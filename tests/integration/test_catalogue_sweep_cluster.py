"""The catalogue's periodic sweeps on two instances sharing one database and one object store.

While one instance holds a sweep's job, the other skips its round (the lock is PostgreSQL's, so
the two never sweep at once); a round that runs spares files younger than the grace period,
since another instance may have stored one and not yet committed the row naming it.
"""

from __future__ import annotations

import hashlib
from contextlib import AsyncExitStack
from pathlib import Path

import obstore
import pytest

from backend.catalogue.sweeper import PICTURE_SWEEP_JOB, UPLOAD_EXPIRY_JOB, CatalogueSweeper
from backend.config import Limits, ServerConfig
from backend.media.s3blobs import key_for
from backend.server import PixmartServer
from protocol.catalogue_client import download_original
from tests.support import pinned_session, running_server
from tests.support.catalogue import blob_name, blob_names, catalogue, jpeg, upload
from tests.support.s3 import ObjectStore

pytestmark = pytest.mark.timeout(120)


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
        limits=Limits(max_unauthenticated_per_address=1_000),
    )


def sweeper(server: PixmartServer, grace_seconds: float) -> CatalogueSweeper:
    """A sweeper of ``server``'s catalogue, as its domain runs one, with its own grace."""
    service = catalogue(server)
    return CatalogueSweeper(
        service.pictures,
        service.uploads,
        upload_expiry=service.upload_expiry,
        exclusive_job=server.db.exclusive_job,
        grace_seconds=grace_seconds,
    )


async def test_one_instance_sweeps_at_a_time_and_young_files_are_spared(
    pg_url: str, blobs_url: str, object_store: ObjectStore, tmp_path: Path
) -> None:
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(
            running_server(instance_config(pg_url, blobs_url, tmp_path / "a"))
        )
        b = await stack.enter_async_context(
            running_server(instance_config(pg_url, blobs_url, tmp_path / "b"))
        )
        alice = await stack.enter_async_context(pinned_session(a))
        await alice.create_account("alice", "password123")
        await alice.login("alice", "password123")
        kept = jpeg(41, (320, 240))
        created = await upload(alice, tmp_path, kept)
        # A file no row names, just written (as by an instance whose row is on its way).
        orphan = b"a picture whose row never came"
        obstore.put(object_store.client(blobs_url), key_for(blob_name(b, sha(orphan))), orphan)

        eager = sweeper(b, grace_seconds=0.0)
        # While A runs the sweep (it holds the job), B's round is skipped: nothing removed.
        async with a.db.exclusive_job(PICTURE_SWEEP_JOB) as mine:
            assert mine
            assert not await eager.sweep_pictures()
            assert blob_name(b, sha(orphan)) in await blob_names(b)
        async with a.db.exclusive_job(UPLOAD_EXPIRY_JOB) as mine:
            assert mine
            assert not await eager.expire_uploads()  # partials are shared: one expiry at a time

        # A done, B's round runs; with the default grace the young orphan is spared.
        assert await sweeper(b, grace_seconds=3600.0).sweep_pictures()
        assert blob_name(b, sha(orphan)) in await blob_names(b)
        # Past the grace (none here), it goes; the listed picture's files stay.
        assert await eager.sweep_pictures()
        names = await blob_names(b)
        assert blob_name(b, sha(orphan)) not in names and blob_name(b, sha(kept)) in names
        original, _ = await download_original(alice, created.item.id)
        assert original == kept
