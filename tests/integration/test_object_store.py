"""Pictures in an S3-compatible object store (SeaweedFS, a real server on loopback).

Each test runs its own SeaweedFS, so stopping it disturbs no other test. What is checked: a
large original goes up in parts and comes back range by range; while the store is down,
requests that touch pictures fail with ``unavailable`` (nothing half-written, the upload kept),
and once it is back the same server serves them again without a restart.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import obstore
import pytest

from backend.config import ServerConfig
from backend.media.s3blobs import PART_BYTES, key_for
from backend.server import PixmartServer
from protocol.catalogue_client import download_original
from protocol.errors import Unavailable
from protocol.messages.catalogue import (
    BeginUpload,
    ChunkAck,
    DeleteItems,
    FinishUpload,
    ItemCreated,
    ItemsDeleted,
    UploadChunk,
    UploadState,
)
from tests.conftest import SessionFactory, logged_in
from tests.support.catalogue import (
    blob_name,
    blob_names,
    catalogue,
    jpeg,
    meta,
    png,
    stored,
    upload,
)
from tests.support.s3 import ObjectStore
from tests.support.services import SeaweedS3

PREFIX = "shop"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def seaweed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SeaweedS3]:
    """A SeaweedFS of this test's own, its credentials in the server's environment."""
    service = SeaweedS3(tmp_path / "seaweedfs")
    service.up()
    for key, value in service.credentials.items():
        monkeypatch.setenv(key, value)
    try:
        yield service
    finally:
        service.down()


@pytest.fixture
def server_config(server_config: ServerConfig, seaweed: SeaweedS3) -> ServerConfig:
    return replace(server_config, blobs=seaweed.url(PREFIX))


async def test_large_original_is_stored_in_parts_and_read_by_range(
    server: PixmartServer, seaweed: SeaweedS3, make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    data = png(7, (1800, 1800))  # noise does not compress: ~9.7 MB
    assert len(data) > PART_BYTES
    created = await upload(alice, tmp_path, data)

    original, last = await download_original(alice, created.item.id)
    assert original == data and last.total == len(data) and last.offset > 0  # several ranges
    bucket = ObjectStore(seaweed.url(), seaweed.credentials).client()
    meta = obstore.head(bucket, f"{PREFIX}/{key_for(blob_name(server, sha(data)))}")
    # An S3 multipart object's ETag is "<md5 of the parts' md5s>-<number of parts>".
    assert str(meta["e_tag"]).strip('"').endswith("-2")
    assert blob_name(server, sha(data)) in await blob_names(server)


async def test_requests_fail_unavailable_while_the_store_is_down_then_recover(
    server: PixmartServer, seaweed: SeaweedS3, make_session: SessionFactory, tmp_path: Path
) -> None:
    alice = await logged_in(make_session, "alice")
    listed = await upload(alice, tmp_path, jpeg(1, (320, 240)))
    withdrawn = await upload(alice, tmp_path, jpeg(3, (320, 240)))
    waiting = jpeg(2, (320, 240))
    # Every byte of it sent (into the store, beside the pictures), not yet finished.
    state = await alice.request(
        BeginUpload(sha256=sha(waiting), size=len(waiting), metadata=meta()), UploadState
    )
    chunk = UploadChunk(upload_id=state.upload_id, offset=0, data=waiting)
    assert (await alice.request(chunk, ChunkAck)).offset == len(waiting)

    before = await stored(server)
    seaweed.down(grace=3.0)  # a store that goes away: killed if it does not stop at once
    with pytest.raises(Unavailable) as refused:
        await download_original(alice, listed.item.id)
    assert refused.value.retry_after is not None and refused.value.retry_after > 0
    with pytest.raises(Unavailable):
        await alice.request(FinishUpload(upload_id=state.upload_id), ItemCreated)
    with pytest.raises(Unavailable):  # where its bytes would go is down too
        await upload(alice, tmp_path, jpeg(4, (320, 240)))
    # Deleting needs no file: the rows go, the files wait for the sweep.
    deleted = await alice.request(DeleteItems(item_ids=[withdrawn.item.id]), ItemsDeleted)
    assert [result.error for result in deleted.results] == [None]

    seaweed.up()
    # Nothing half-done: no item, picture row or file more; the upload is kept to be finished.
    during = await stored(server)
    assert (during.items, during.pictures, during.blobs) == (1, 1, before.blobs)
    # The withdrawn picture's files are still there, unowned: the sweep's to remove.
    assert blob_name(server, sha(jpeg(3, (320, 240)))) in await blob_names(server)
    assert during.uploads == 1
    original, _ = await download_original(alice, listed.item.id)
    assert original == jpeg(1, (320, 240))
    finished = await upload(alice, tmp_path, waiting)
    assert not finished.duplicate
    after = await stored(server)
    assert (after.items, after.pictures, after.uploads, after.partial_files) == (2, 2, 0, 0)
    assert {blob_name(server, sha(waiting)), blob_name(server, sha(original))} <= await blob_names(
        server
    )
    # The sweep (here without the shared store's hour of grace) removes the unowned files.
    assert await catalogue(server).pictures.sweep(grace_seconds=0) >= 1
    assert blob_name(server, sha(jpeg(3, (320, 240)))) not in await blob_names(server)
    assert {blob_name(server, sha(waiting)), blob_name(server, sha(original))} <= await blob_names(
        server
    )


def _server_command(data_dir: Path, *options: str) -> list[str]:
    return [
        str(Path(sys.executable).parent / "pixmart-server"),
        "--data-dir",
        str(data_dir),
        *options,
    ]


def test_pixmart_server_takes_blobs_and_never_prints_the_key(
    seaweed: SeaweedS3, tmp_path: Path
) -> None:
    url = seaweed.url(PREFIX)
    command = _server_command(tmp_path / "data", "--blobs", url, "serve", "--port", "0")
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIXMART_")}
    process = subprocess.Popen(
        [*command, "--no-vision"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,  # the key pair comes from the environment (the fixture set it)
    )
    assert process.stdout is not None
    output: list[str] = []
    try:
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline:
            line = process.stdout.readline().decode()
            if not line:
                break
            output.append(line)
            if "listening on" in line:
                break
    finally:
        process.send_signal(signal.SIGINT)
        try:
            rest, _ = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            rest, _ = process.communicate()
        output.append(rest.decode())
    text = "".join(output)
    assert f"pictures stored in s3://pixmart/{PREFIX} at http://127.0.0.1:{seaweed.port}" in text
    assert seaweed.credentials["AWS_SECRET_ACCESS_KEY"] not in text


def test_pixmart_server_refuses_a_malformed_blobs_url(tmp_path: Path) -> None:
    result = subprocess.run(
        _server_command(tmp_path / "data", "--blobs", "s3://key:secret@pixmart", "serve"),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert "--blobs (or PIXMART_BLOBS) must be an s3://BUCKET URL" in result.stderr
    assert "secret" not in result.stderr.replace("AWS_SECRET", "")
