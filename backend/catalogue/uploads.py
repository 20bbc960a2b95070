"""Provides the bookkeeping of chunked, resumable uploads: begin, append, complete, expire.

An upload belongs to one user and is keyed by the SHA-256 the client announced: beginning the
same file again (after a reconnect, or in a restarted CLI run) resumes it at the number of bytes
the server holds. The bytes accumulate in the media pipeline's :class:`PartialUploads` area;
the ``uploads`` row records owner, hash, declared size and the listing metadata. Both go away
together when the upload is finished, cancelled, refused or abandoned.

File names are always server-made ids; nothing a client sends ever becomes a path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import aiosqlite
import msgspec

from backend.catalogue.errors import protocol_error
from backend.catalogue.locks import KeyedLocks
from backend.media import errors as media
from backend.media.uploads import FinishedUpload, PartialUploads
from backend.storage.database import Database
from protocol.errors import BadRequest, Conflict, TooLarge
from protocol.messages.catalogue import ItemMetadata

log = logging.getLogger(__name__)

#: Defaults of the per-user quota on unfinished uploads (the server passes
#: ``Limits.max_open_uploads`` and ``Limits.max_open_upload_bytes``).
MAX_OPEN_UPLOADS: Final = 16
MAX_OPEN_UPLOAD_BYTES: Final = 256 * 1024 * 1024

_metadata_decoder = msgspec.msgpack.Decoder(ItemMetadata)


class Incomplete(BadRequest):
    """Finishing was asked before every byte arrived; the upload is kept, to be resumed.

    ``details["offset"]`` is where to resume.
    """


@dataclass(frozen=True, slots=True)
class UploadRow:
    """An upload in progress."""

    id: str
    owner_id: int
    sha256: str
    size: int
    metadata: ItemMetadata


@dataclass(frozen=True, slots=True)
class UploadPosition:
    """Where an upload stands: its id and the bytes received."""

    upload_id: str
    offset: int


class UploadManager:
    """Uploads in progress: rows in ``uploads``, bytes in a :class:`PartialUploads` area."""

    def __init__(
        self,
        db: Database,
        partials: PartialUploads,
        *,
        max_bytes: int,
        chunk_bytes: int,
        max_open_uploads: int = MAX_OPEN_UPLOADS,
        max_open_bytes: int = MAX_OPEN_UPLOAD_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self._partials = partials
        self.max_bytes = max_bytes
        self.chunk_bytes = chunk_bytes
        #: Per user: unfinished uploads at once, and the bytes they declare in all. Each may
        #: hold its declared size on disk until finished, cancelled or expired.
        self.max_open_uploads = max_open_uploads
        self.max_open_bytes = max_open_bytes
        self._clock = clock
        #: Held per upload id while its bytes change or it is finished or discarded, per
        #: "owner:sha256" while an upload of that file is begun, and per "quota:owner" while a
        #: new upload is checked against the owner's quota and recorded.
        self.locks = KeyedLocks()

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
                (``details["quota"] == "uploads"``) or in declared bytes (``"bytes"``).
        """
        encoded = msgspec.msgpack.encode(metadata)
        async with self.locks.hold(f"begin:{owner_id}:{sha256}"):
            existing = await self.find(owner_id, sha256)
            if existing is not None:
                async with self.locks.hold(existing.id):
                    offset = await self._received(existing.id)
                    if existing.size == size and offset is not None:
                        # The latest metadata wins: the seller may have changed their mind.
                        await self._db.execute(
                            "UPDATE uploads SET metadata = ? WHERE id = ?", (encoded, existing.id)
                        )
                        return UploadPosition(existing.id, offset)
                    await self._discard_locked(existing.id)
            # One owner's begins of different files run concurrently; the quota lock makes
            # "count, then insert" one step, so uploads begun at once cannot all fit.
            async with self.locks.hold(f"quota:{owner_id}"):
                await self._check_quota(owner_id, size)
                upload_id = await asyncio.to_thread(self._partials.begin)
                try:
                    await self._db.execute(
                        "INSERT INTO uploads (id, owner_id, sha256, size, metadata, created_at)"
                        " VALUES (?, ?, ?, ?, ?, ?)",
                        (upload_id, owner_id, sha256, size, encoded, self._clock()),
                    )
                except BaseException:
                    await asyncio.to_thread(self._partials.discard, upload_id)
                    raise
            return UploadPosition(upload_id, 0)

    async def _check_quota(self, owner_id: int, size: int) -> None:
        """Refuse a new upload of ``size`` bytes that would take the owner over the quota."""
        row = await self._db.fetchone(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM uploads WHERE owner_id = ?", (owner_id,)
        )
        count, declared = (int(row[0]), int(row[1])) if row is not None else (0, 0)
        details: dict[str, object] = {"open_uploads": count, "open_bytes": declared}
        if count >= self.max_open_uploads:
            raise Conflict(
                f"You have {count} unfinished uploads, the most allowed; "
                "finish or cancel some first",
                details={"quota": "uploads", **details},
            )
        if declared + size > self.max_open_bytes:
            mib = 1024 * 1024
            raise Conflict(
                f"Your unfinished uploads would come to {(declared + size) / mib:,.0f} MiB, over "
                f"the {self.max_open_bytes / mib:,.0f} MiB allowed; finish or cancel some first",
                details={"quota": "bytes", **details},
            )

    async def find(self, owner_id: int, sha256: str) -> UploadRow | None:
        """The owner's unfinished upload of the file with this hash, if any."""
        row = await self._db.fetchone(
            "SELECT id, owner_id, sha256, size, metadata FROM uploads"
            " WHERE owner_id = ? AND sha256 = ?",
            (owner_id, sha256),
        )
        return _upload_row(row) if row is not None else None

    async def get(self, owner_id: int, upload_id: str) -> UploadRow:
        """The owner's upload with this id.

        Raises:
            NotFound: no such upload, or another user's.
        """
        row = await self._db.fetchone(
            "SELECT id, owner_id, sha256, size, metadata FROM uploads WHERE id = ?", (upload_id,)
        )
        if row is None or int(row["owner_id"]) != owner_id:
            raise protocol_error(media.UnknownUpload())
        return _upload_row(row)

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
        async with self.locks.hold(upload_id):
            if offset + len(data) > upload.size:
                # More bytes than announced: the declared size was a lie; drop it all.
                await self._discard_locked(upload_id)
                raise TooLarge(
                    f"The file is larger than the {upload.size:,} bytes announced; "
                    "the upload was discarded"
                )
            try:
                return await asyncio.to_thread(self._partials.append, upload_id, offset, data)
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
        received = await self._received(upload.id)
        if received is not None and received != upload.size:
            raise Incomplete(
                f"The upload is incomplete: {received:,} of {upload.size:,} bytes received",
                details={"offset": received},
            )
        try:
            return await asyncio.to_thread(self._partials.finish, upload.id, upload.sha256)
        except media.MediaError as exc:
            await self._discard_locked(upload.id)
            raise protocol_error(exc) from None

    async def cancel(self, owner_id: int, upload_id: str) -> None:
        """Discard the owner's upload.

        Raises:
            NotFound: no such upload, or another user's.
        """
        await self.get(owner_id, upload_id)
        async with self.locks.hold(upload_id):
            await self._discard_locked(upload_id)

    async def discard(self, upload_id: str) -> None:
        """Remove an upload's row and bytes; hold its lock around the call."""
        await self._discard_locked(upload_id)

    async def _discard_locked(self, upload_id: str) -> None:
        await self._db.execute("DELETE FROM uploads WHERE id = ?", (upload_id,))
        await asyncio.to_thread(self._partials.discard, upload_id)

    async def _received(self, upload_id: str) -> int | None:
        """Bytes received so far, or ``None`` if the upload area has no such upload."""
        try:
            return await asyncio.to_thread(self._partials.size, upload_id)
        except media.UnknownUpload:
            return None

    async def expire(self, older_than: float) -> int:
        """Discard uploads untouched for ``older_than`` seconds; return how many."""
        stale = await asyncio.to_thread(self._partials.abandoned, older_than)
        for upload_id in stale:
            async with self.locks.hold(upload_id):
                await self._discard_locked(upload_id)
        # Rows whose bytes never arrived (the file may be gone after a crash) age by creation.
        cutoff = self._clock() - older_than
        rows = await self._db.fetchall("SELECT id FROM uploads WHERE created_at <= ?", (cutoff,))
        dropped = 0
        for row in rows:
            upload_id = str(row[0])
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
        on_disk = set(await asyncio.to_thread(self._partials.abandoned, float("-inf")))
        rows = {str(row[0]) for row in await self._db.fetchall("SELECT id FROM uploads")}
        for upload_id in on_disk - rows:
            await asyncio.to_thread(self._partials.discard, upload_id)
        missing = rows - on_disk
        if missing:
            await self._db.executemany("DELETE FROM uploads WHERE id = ?", [(i,) for i in missing])
        return len(on_disk - rows) + len(missing)


def _upload_row(row: aiosqlite.Row) -> UploadRow:
    return UploadRow(
        id=str(row["id"]),
        owner_id=int(row["owner_id"]),
        sha256=str(row["sha256"]),
        size=int(row["size"]),
        metadata=_metadata_decoder.decode(bytes(row["metadata"])),
    )
