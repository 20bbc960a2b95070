"""Provides the interface of the area where chunked uploads accumulate, and its local version.

:class:`PartialStorage` is what the upload bookkeeping needs of that area (see
:mod:`backend.media.uploads` for the protocol: ids made by the server, chunks accepted in order,
``finish`` hands back a complete, hashed file on this machine's disk). Two implementations exist:

* :class:`LocalPartials`: the data dir's ``uploads`` folder (:class:`PartialUploads`, run in
  threads), for a single server;
* :class:`~backend.media.s3partials.S3Partials`: chunk objects in the S3-compatible store the
  pictures are in, so an upload begun on one instance of a cluster resumes on any other.

Methods raise the media errors of :mod:`backend.media.errors` (``UnknownUpload``,
``OffsetMismatch``, ``TooLarge``, ``ChecksumMismatch``) and, for a store that cannot be reached,
:class:`~backend.media.blobs.StoreUnavailable`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

from backend.atrest.envelope import Sealer
from backend.media.uploads import FinishedUpload, PartialUploads


class PartialStorage(Protocol):
    """Uploads in progress, chunk by chunk, until they are finished or discarded."""

    #: Whether other server instances see the same uploads (an upload may move between them).
    shared: bool

    async def begin(self) -> str:
        """Start an empty upload and return its new id."""
        ...

    async def append(self, upload_id: str, offset: int, chunk: bytes) -> int:
        """Store ``chunk`` at ``offset``, the upload's current end; return the new end.

        Raises:
            UnknownUpload: No upload in progress has this id.
            OffsetMismatch: ``offset`` is not where the upload ends (``expected`` is).
            TooLarge: The upload would exceed the largest size accepted; it is discarded.
        """
        ...

    async def size(self, upload_id: str) -> int:
        """How many bytes the upload has received, i.e. where the client resumes.

        Raises:
            UnknownUpload: No upload in progress has this id.
        """
        ...

    async def finish(self, upload_id: str, expected_sha256: str | None = None) -> FinishedUpload:
        """The complete upload as one hashed, flushed file on this machine's disk.

        Raises:
            UnknownUpload: No upload has this id.
            ChecksumMismatch: The bytes do not hash to ``expected_sha256`` (the file is removed).
        """
        ...

    async def discard(self, upload_id: str) -> bool:
        """Remove the upload, finished or not; return whether there was anything to remove."""
        ...

    def abandoned(self, older_than_seconds: float) -> AsyncIterator[str]:
        """Yield the ids of uploads untouched for ``older_than_seconds`` (all, for ``-inf``)."""
        ...

    async def rewrap(self) -> int:
        """Re-wrap the data keys of sealed uploads in progress under the current master key (a
        key rotation); return how many objects changed. Idempotent."""
        ...

    async def sweep_scratch(self) -> int:
        """Remove this machine's leftovers of finishes a crash interrupted; return how many.

        Only at start-up, before any request: a finish in progress would lose its file.
        """
        ...


class LocalPartials:
    """:class:`PartialStorage` in a folder of this machine, for a single server.

    Args:
        area: The upload area (the data dir's ``uploads`` folder).
    """

    shared = False

    def __init__(self, area: PartialUploads) -> None:
        self.area = area

    async def begin(self) -> str:
        """Start an empty upload file; return its id."""
        return await asyncio.to_thread(self.area.begin)

    async def append(self, upload_id: str, offset: int, chunk: bytes) -> int:
        """Append ``chunk`` to the upload's file; return its new size."""
        return await asyncio.to_thread(self.area.append, upload_id, offset, chunk)

    async def size(self, upload_id: str) -> int:
        """The size of the upload's file."""
        return await asyncio.to_thread(self.area.size, upload_id)

    async def finish(self, upload_id: str, expected_sha256: str | None = None) -> FinishedUpload:
        """Close, flush and hash the upload's file, where it is."""
        return await asyncio.to_thread(self.area.finish, upload_id, expected_sha256)

    async def discard(self, upload_id: str) -> bool:
        """Delete the upload's file."""
        return await asyncio.to_thread(self.area.discard, upload_id)

    async def abandoned(self, older_than_seconds: float) -> AsyncIterator[str]:
        """Yield the ids of upload files not modified for ``older_than_seconds``."""
        for upload_id in await asyncio.to_thread(self.area.abandoned, older_than_seconds):
            yield upload_id

    async def rewrap(self) -> int:
        """Re-wrap the uploads' data keys, a file at a time."""
        return await asyncio.to_thread(self.area.rewrap)

    async def sweep_scratch(self) -> int:
        """Remove the temporary files of writes a crash interrupted (the uploads themselves
        are swept by their age)."""
        return await asyncio.to_thread(self.area.sweep_temp_files)


def open_partial_storage(
    blobs_url: str | None, root: Path, max_bytes: int, sealer: Sealer | None = None
) -> PartialStorage:
    """Where partial uploads go: beside the pictures in the object store, or in ``root``.

    Args:
        blobs_url: The ``--blobs`` URL, or ``None`` for pictures in the data dir.
        root: The data dir's upload folder (with an object store: where finishes assemble).
        max_bytes: The largest upload accepted.
        sealer: Seals the chunks where they wait (pictures encrypted at rest), or ``None``.

    Raises:
        ValueError: ``blobs_url`` is not a valid object store URL.
    """
    if blobs_url is None:
        return LocalPartials(PartialUploads(root, max_bytes=max_bytes, sealer=sealer))
    # Imported here: the S3 client is loaded only by servers configured to use it.
    from backend.media.s3partials import S3Partials

    return S3Partials.from_url(blobs_url, root, max_bytes=max_bytes, sealer=sealer)
