"""Provides the bookkeeping of chunked, resumable uploads: begin, append, complete, expire.

An upload belongs to one user and is keyed by the SHA-256 the client announced: beginning the
same file again (after a reconnect, or in a restarted CLI run) resumes it at the number of bytes
the server holds. The bytes accumulate in the media pipeline's
:class:`~backend.media.partials.PartialStorage` (this server's disk, or the object store a
cluster shares, so an upload moves between instances); the ``uploads`` row records owner, hash,
declared size and the listing metadata. Both go away together when the upload is finished,
cancelled, refused or abandoned.

File names are always server-made ids; nothing a client sends ever becomes a path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from backend.catalogue.errors import protocol_error
from backend.catalogue.locks import KeyedLocks
from backend.catalogue.pictures import store_available
from backend.catalogue.repository import (
    UploadExists,
    UploadQuota,
    UploadQuotaExceeded,
    UploadRepository,
    UploadRow,
    UploadStoreFull,
    UploadUsage,
)
from backend.media import errors as media
from backend.media.partials import PartialStorage
from backend.media.uploads import FinishedUpload
from protocol.errors import BadRequest, Conflict, TooLarge, Unavailable
from protocol.messages.catalogue import ItemMetadata

log = logging.getLogger(__name__)

#: Defaults of the per-user quota on unfinished uploads (the server passes
#: ``Limits.max_open_uploads`` and ``Limits.max_open_upload_bytes``).
MAX_OPEN_UPLOADS: Final = 16
MAX_OPEN_UPLOAD_BYTES: Final = 256 * 1024 * 1024
#: Seconds a new upload refused for the shop's bound is told to wait: uploads in progress
#: finish or expire meanwhile.
STORE_FULL_RETRY: Final = 60.0


class Incomplete(BadRequest):
    """Finishing was asked before every byte arrived; the upload is kept, to be resumed.

    ``details["offset"]`` is where to resume.
    """


@dataclass(frozen=True, slots=True)
class UploadPosition:
    """Where an upload stands: its id and the bytes received."""

    upload_id: str
    offset: int


class UploadManager:
    """Uploads in progress: rows in ``uploads``, bytes in a :class:`PartialStorage`.

    Every method turns an outage of a shared partial store into the protocol's
    ``unavailable``: the upload is kept, to be resumed.
    """

    def __init__(
        self,
        uploads: UploadRepository,
        partials: PartialStorage,
        *,
        max_bytes: int,
        chunk_bytes: int,
        max_open_uploads: int = MAX_OPEN_UPLOADS,
        max_open_bytes: int = MAX_OPEN_UPLOAD_BYTES,
        max_total_bytes: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._uploads = uploads
        self._partials = partials
        self.max_bytes = max_bytes
        self.chunk_bytes = chunk_bytes
        #: Per user: unfinished uploads at once, and the bytes they declare in all. Each may
        #: hold its declared size on disk until finished, cancelled or expired.
        self.max_open_uploads = max_open_uploads
        self.max_open_bytes = max_open_bytes
        #: Everyone's unfinished uploads together, in declared bytes (``None``: no bound).
        self.max_total_bytes = max_total_bytes
        self._clock = clock
        #: Held per upload id while its bytes change or it is finished or discarded, and per
        #: "owner:sha256" while an upload of that file is begun.
        self.locks = KeyedLocks()

    @property
    def partials(self) -> PartialStorage:
        """Where the bytes of uploads in progress are."""
        return self._partials

    async def sweep_scratch(self) -> int:
        """Remove what finishes interrupted by a crash left on this machine; at start-up only."""
        return await self._partials.sweep_scratch()

    def check_declared_size(self, size: int) -> None:
        """Refuse an upload by its declared size, before any byte is sent.

        Raises:
            UnsupportedMedia: the file is empty.
            TooLarge: the file is over the limit.
        """
        if size == 0:
            raise protocol_error(media.UnsupportedMedia.empty())
        if size > self.max_bytes:
            raise protocol_error(media.TooLarge.file_size(size, self.max_bytes))

    async def begin(
        self, owner_id: int, sha256: str, size: int, metadata: ItemMetadata
    ) -> UploadPosition:
        """Start an upload, or resume the owner's unfinished upload of the same file.

        The caller has validated ``metadata`` and the declared size.

        Raises:
            Conflict: the owner's unfinished uploads would exceed the quota in number
                (``details["quota"] == "uploads"``) or in declared bytes (``"bytes"``); or
                another server began the same file at the same moment (beginning again
                resumes that upload).
        """
        with store_available():
            return await self._begin(owner_id, sha256, size, metadata)

    async def _begin(
        self, owner_id: int, sha256: str, size: int, metadata: ItemMetadata
    ) -> UploadPosition:
        async with self.locks.hold(f"begin:{owner_id}:{sha256}"):
            existing = await self.find(owner_id, sha256)
            if existing is not None:
                async with self.locks.hold(existing.id):
                    offset = await self._received(existing.id)
                    if existing.size == size and offset is not None:
                        # The latest metadata wins: the seller may have changed their mind.
                        await self._uploads.set_metadata(existing.id, metadata)
                        return UploadPosition(existing.id, offset)
                    await self._discard_locked(existing.id)
            upload_id = await self._partials.begin()
            upload = UploadRow(upload_id, owner_id, sha256, size, metadata)
            quota = UploadQuota(
                uploads=self.max_open_uploads,
                bytes=self.max_open_bytes,
                total_bytes=self.max_total_bytes,
            )
            try:
                await self._uploads.add(upload, self._clock(), quota)
            except BaseException as exc:
                await self._partials.discard(upload_id)
                if isinstance(exc, UploadQuotaExceeded):
                    raise _over_quota(exc.usage, quota, size) from None
                if isinstance(exc, UploadStoreFull):
                    raise Unavailable(
                        "The shop holds as many unfinished uploads as it can; try again later",
                        retry_after=STORE_FULL_RETRY,
                    ) from None
                if isinstance(exc, UploadExists):
                    raise Conflict(
                        "This file is being uploaded already; begin again to resume it"
                    ) from None
                raise
            return UploadPosition(upload_id, 0)

    async def find(self, owner_id: int, sha256: str) -> UploadRow | None:
        """The owner's unfinished upload of the file with this hash, if any."""
        return await self._uploads.find(owner_id, sha256)

    async def get(self, owner_id: int, upload_id: str) -> UploadRow:
        """The owner's upload with this id.

        Raises:
            NotFound: no such upload, or another user's.
        """
        upload = await self._uploads.get(upload_id)
        if upload is None or upload.owner_id != owner_id:
            raise protocol_error(media.UnknownUpload())
        return upload

    async def append(self, owner_id: int, upload_id: str, offset: int, data: bytes) -> int:
        """Append a chunk at ``offset``; return the bytes now received.

        Raises:
            NotFound: no such upload (finished, cancelled, expired or another user's).
            BadRequest: the chunk is empty.
            TooLarge: the chunk is over the chunk limit (the upload is kept), or it goes past
                the declared size (the upload is discarded).
            Conflict: ``offset`` is not the bytes received; ``details["offset"]`` is.
        """
        if not data:
            raise BadRequest("An upload chunk cannot be empty")
        if len(data) > self.chunk_bytes:
            raise TooLarge(
                f"A chunk has at most {self.chunk_bytes:,} bytes; this one has {len(data):,}"
            )
        upload = await self.get(owner_id, upload_id)
        with store_available():
            return await self._append(upload, offset, data)

    async def _append(self, upload: UploadRow, offset: int, data: bytes) -> int:
        upload_id = upload.id
        async with self.locks.hold(upload_id):
            if offset + len(data) > upload.size:
                # More bytes than announced: the declared size was a lie; drop it all.
                await self._discard_locked(upload_id)
                raise TooLarge(
                    f"The file is larger than the {upload.size:,} bytes announced; "
                    "the upload was discarded"
                )
            try:
                return await self._partials.append(upload_id, offset, data)
            except media.TooLarge as exc:
                await self._discard_locked(upload_id)
                raise protocol_error(exc) from None
            except media.MediaError as exc:
                # UnknownUpload lands here too: the bytes were finished or expired meanwhile;
                # what is left (a finished file awaiting a retried finish) stays for its owner.
                raise protocol_error(exc) from None

    async def complete(self, upload: UploadRow) -> FinishedUpload:
        """Close a fully received upload and verify its hash; hold its lock around the call.

        Raises:
            Incomplete: bytes are missing (the upload is kept, to be resumed).
            BadRequest: the file does not hash to the announced SHA-256 (it is discarded).
            NotFound: the bytes are gone (expired meanwhile).
        """
        with store_available():
            return await self._complete(upload)

    async def _complete(self, upload: UploadRow) -> FinishedUpload:
        received = await self._received(upload.id)
        if received is not None and received != upload.size:
            raise Incomplete(
                f"The upload is incomplete: {received:,} of {upload.size:,} bytes received",
                details={"offset": received},
            )
        try:
            return await self._partials.finish(upload.id, upload.sha256)
        except media.MediaError as exc:
            await self._discard_locked(upload.id)
            raise protocol_error(exc) from None

    async def cancel(self, owner_id: int, upload_id: str) -> None:
        """Discard the owner's upload.

        Raises:
            NotFound: no such upload, or another user's.
        """
        await self.get(owner_id, upload_id)
        with store_available():
            async with self.locks.hold(upload_id):
                await self._discard_locked(upload_id)

    async def discard(self, upload_id: str) -> None:
        """Remove an upload's row and bytes; hold its lock around the call."""
        await self._discard_locked(upload_id)

    async def discard_bytes(self, upload_id: str) -> None:
        """Remove what is left of an upload's bytes, whose row went with its item's transaction
        (:meth:`CatalogueRepository.add_item`); hold its lock around the call."""
        await self._partials.discard(upload_id)

    async def _discard_locked(self, upload_id: str) -> None:
        await self._uploads.delete([upload_id])
        await self._partials.discard(upload_id)

    async def _received(self, upload_id: str) -> int | None:
        """Bytes received so far, or ``None`` if the upload area has no such upload."""
        try:
            return await self._partials.size(upload_id)
        except media.UnknownUpload:
            return None

    async def expire(self, older_than: float) -> int:
        """Discard uploads untouched for ``older_than`` seconds; return how many."""
        # Listed in full before discarding: deleting while the store pages through its
        # listing could make it skip keys.
        stale = [upload_id async for upload_id in self._partials.abandoned(older_than)]
        for upload_id in stale:
            async with self.locks.hold(upload_id):
                await self._discard_locked(upload_id)
        # Rows whose bytes never arrived (the file may be gone after a crash) age by creation.
        cutoff = self._clock() - older_than
        dropped = 0
        for upload_id in await self._uploads.begun_before(cutoff):
            async with self.locks.hold(upload_id):
                if await self._received(upload_id) is None:
                    await self._discard_locked(upload_id)
                    dropped += 1
        if stale or dropped:
            log.info("discarded %d abandoned uploads", len(stale) + dropped)
        return len(stale) + dropped

    async def sweep(self) -> int:
        """Reconcile rows and files at start-up: each without the other is removed.

        Returns:
            How many rows and files were removed.
        """
        # abandoned(-inf) puts the cutoff in the future: every upload in the area is listed.
        on_disk = {upload_id async for upload_id in self._partials.abandoned(float("-inf"))}
        rows = await self._uploads.ids()
        for upload_id in on_disk - rows:
            await self._partials.discard(upload_id)
        missing = rows - on_disk
        if missing:
            await self._uploads.delete(missing)
        return len(on_disk - rows) + len(missing)


def _over_quota(usage: UploadUsage, quota: UploadQuota, size: int) -> Conflict:
    """The refusal of a new upload of ``size`` bytes beside ``usage``, over ``quota``."""
    details: dict[str, object] = {"open_uploads": usage.uploads, "open_bytes": usage.bytes}
    if usage.uploads >= quota.uploads:
        return Conflict(
            f"You have {usage.uploads} unfinished uploads, the most allowed; "
            "finish or cancel some first",
            details={"quota": "uploads", **details},
        )
    mib = 1024 * 1024
    return Conflict(
        f"Your unfinished uploads would come to {(usage.bytes + size) / mib:,.0f} MiB, over "
        f"the {quota.bytes / mib:,.0f} MiB allowed; finish or cancel some first",
        details={"quota": "bytes", **details},
    )
