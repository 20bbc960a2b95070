"""Provides the shared helpers of the catalogue tests: pictures, uploads, storage counts."""

from __future__ import annotations

import io
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from backend.atrest.keyring import KEYRING, Keyring, StoreKeys
from backend.atrest.keys import KeySet, load_key_file
from backend.catalogue.service import CatalogueService
from backend.server import PixmartServer
from backend.vision.service import VisionService
from protocol.catalogue_client import upload_file
from protocol.client import Session
from protocol.messages.catalogue import ItemCreated, ItemMetadata
from tests.support import pinned_session


def pixels(seed: int, size: tuple[int, int] = (64, 48)) -> Image.Image:
    """A small RGB picture with content unique to ``seed`` (so its hash is unique too)."""
    width, height = size
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(noise, "RGB")


def encode(image: Image.Image, fmt: str = "JPEG", **params: Any) -> bytes:
    """``image`` saved in ``fmt`` with Pillow's ``params``."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def jpeg(seed: int = 0, size: tuple[int, int] = (64, 48), **params: Any) -> bytes:
    """A small JPEG unique to ``seed``."""
    return encode(pixels(seed, size), "JPEG", quality=90, **params)


def png(seed: int = 0, size: tuple[int, int] = (64, 48)) -> bytes:
    """A small PNG unique to ``seed``."""
    return encode(pixels(seed, size), "PNG")


def webp(seed: int = 0, size: tuple[int, int] = (64, 48)) -> bytes:
    """A small WebP unique to ``seed``."""
    return encode(pixels(seed, size), "WEBP", quality=80)


def write(directory: Path, name: str, data: bytes) -> Path:
    """Write ``data`` to ``directory/name`` (parents created) and return the path."""
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def meta(title: str = "A picture", **fields: Any) -> ItemMetadata:
    """Listing metadata with a title and any other fields."""
    return ItemMetadata(title=title, **fields)


async def upload(
    session: Session, directory: Path, data: bytes, title: str = "A picture", **fields: Any
) -> ItemCreated:
    """Upload ``data`` as a file in ``directory`` and return the reply."""
    path = write(directory, f"upload-{abs(hash(data))}.bin", data)
    return await upload_file(session, path, meta(title, **fields))


def catalogue(server: PixmartServer) -> CatalogueService:
    """The server's catalogue service."""
    assert server.domains is not None, "the server is not started"
    return server.domains.catalogue.service


def vision(server: PixmartServer) -> VisionService:
    """The server's vision service (the server must run with the image model)."""
    assert server.domains is not None, "the server is not started"
    service = server.domains.vision.service
    assert service is not None, "the server runs without the image model"
    return service


@dataclass(frozen=True)
class Stored:
    """Everything the catalogue keeps, counted."""

    blobs: int
    partial_files: int
    items: int
    pictures: int
    uploads: int


async def blob_names(server: PixmartServer) -> set[str]:
    """The names of the pictures' files ``server`` stores (in its data dir or object store):
    keyed hashes of their content (see :func:`blob_name`)."""
    return {name async for name in catalogue(server).pictures.blobs.names()}


def blob_name(server: PixmartServer, sha256: str) -> str:
    """The name ``server`` stores the file whose content hashes to ``sha256`` under."""
    return catalogue(server).pictures.blobs.storage_name(sha256)


def sealed_store_keys(blobs: Path, key_file: Path) -> StoreKeys:
    """What names the files of the sealed ``blobs`` folder (``storage_name(sha256)``), read
    from its keyring with the master key in ``key_file``: for a server in another process."""
    keyring = Keyring.parse((blobs / KEYRING).read_bytes())
    keys = KeySet(load_key_file(key_file))
    return StoreKeys(keys, keyring.name_key(keys), keyring)


async def stored(server: PixmartServer) -> Stored:
    """Count the blob files, partial upload files and catalogue rows of ``server``."""
    data_dir = server.config.data_dir
    blobs: list[object]
    if server.config.blobs is None:
        # Every file, temporary ones too: a leftover of a failed write is a leak as well. The
        # keyring is the store's, not a picture's.
        blobs = [p for p in (data_dir / "blobs").rglob("*") if p.is_file() and p.name != KEYRING]
    else:
        blobs = list(await blob_names(server))
    partials: list[object] = [p for p in (data_dir / "uploads").iterdir() if p.is_file()]
    uploads = catalogue(server).uploads.partials
    if uploads.shared:
        # Uploads in progress in the object store, beside this server's scratch files.
        partials.extend([upload_id async for upload_id in uploads.abandoned(float("-inf"))])

    async def count(table: str) -> int:
        row = await server.db.fetchone(f"SELECT COUNT(*) FROM {table}")
        assert row is not None
        return int(row[0])

    return Stored(
        blobs=len(blobs),
        partial_files=len(partials),
        items=await count("items"),
        pictures=await count("pictures"),
        uploads=await count("uploads"),
    )


EMPTY = Stored(blobs=0, partial_files=0, items=0, pictures=0, uploads=0)


async def account(stack: AsyncExitStack, server: PixmartServer, username: str) -> Session:
    """A session on ``server`` logged in as a new account, closed when ``stack`` closes."""
    session = await stack.enter_async_context(pinned_session(server))
    await session.create_account(username, "password123")
    await session.login(username, "password123")
    return session
