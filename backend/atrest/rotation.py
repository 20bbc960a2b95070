"""Provides the two jobs that walk a whole store: re-wrapping data keys, and sealing old pictures.

:func:`rotate_master_key` re-wraps every data key under a new master key (``pixmart-server keys
rotate``): each sealed object's header is rewritten in place, the segments are left alone, so no
picture is decrypted or re-encrypted. The keyring lists both keys and names the old one
``retiring`` while it runs, so servers started meanwhile hold both; every step is idempotent (a
header already under the new key is skipped), so a rotation killed at any point is finished by
running it again. Only when every object and row is done is the old key dropped from the
keyring: then it may be retired.

:func:`seal_plaintext` seals a store written before encryption, in place, a picture at a time:
the sealed copy is written under its keyed name before the old file is removed, so a reader
finds one or the other (:class:`~backend.atrest.sealed_blobs.SealedBlobs` falls back to the old
name while ``plaintext_left``). Interrupted, it resumes where the old files remain.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Final

from backend.atrest.derivatives import DerivativeCodec, Kind
from backend.atrest.envelope import HEADER_BYTES, Sealer, is_sealed
from backend.atrest.keyring import KEYRING, KeyringMismatch, load_keyring
from backend.atrest.keys import KeySet, MasterKey
from backend.atrest.sealed_blobs import SealedBlobs, blob_context
from backend.catalogue.repository import PictureRepository, StoredDerivatives
from backend.media.blobs import ObjectStore
from backend.media.partials import PartialStorage

log = logging.getLogger(__name__)

#: Pictures' rows read per round trip by the walks over the database.
ROW_PAGE: Final = 200
#: Seconds between progress lines in the log.
PROGRESS_EVERY: Final = 5.0

#: Told of each object (``"file"``) or picture row (``"row"``) changed, with the count so far.
Progress = Callable[[str, int], None]


@dataclass(frozen=True, slots=True)
class WalkReport:
    """What a walk over the store and the database changed and found done already."""

    objects_changed: int = 0
    objects_done: int = 0
    rows_changed: int = 0
    rows_done: int = 0

    def describe(self) -> str:
        """One line for people."""
        return (
            f"{self.objects_changed} stored files and {self.rows_changed} pictures' thumbnails "
            f"changed ({self.objects_done} and {self.rows_done} were done already)"
        )


class _Ticker:
    """Logs a walk's progress every few seconds and reports it to a callback."""

    def __init__(self, what: str, progress: Progress | None) -> None:
        self._what = what
        self._progress = progress
        self._last = time.monotonic()
        self.count = 0

    def tick(self) -> None:
        self.count += 1
        if self._progress is not None:
            self._progress(self._what, self.count)
        now = time.monotonic()
        if now - self._last >= PROGRESS_EVERY:
            self._last = now
            log.info("%s %ss done so far", self.count, self._what)


async def rotate_master_key(
    raw: ObjectStore,
    pictures: PictureRepository,
    uploads: Callable[[Sealer], PartialStorage],
    old: MasterKey,
    new: MasterKey,
    *,
    progress: Progress | None = None,
) -> WalkReport:
    """Re-wrap every data key of the store, the database and the uploads in progress from
    ``old`` to ``new``.

    Args:
        uploads: Opens the uploads in progress with the given sealer.

    Raises:
        KeyringMismatch: the store is not encrypted, or ``old`` is not a key of its keyring
            (and the rotation to ``new`` is not simply finished already).
        StoreUnavailable: the store cannot be reached (run it again later; nothing is lost).
    """
    if old.key_id == new.key_id:
        raise KeyringMismatch(f"the old and the new key are the same key ({old.key_id})")
    keyring = await load_keyring(raw)
    if keyring is None:
        raise KeyringMismatch("this picture store is not encrypted: there is nothing to rotate")
    if old.key_id not in keyring.names:
        if new.key_id in keyring.names and keyring.retiring is None:
            return WalkReport()  # done before: a repeated command
        raise KeyringMismatch(
            f"the store is encrypted with master key {keyring.describe()}, not {old.key_id}"
        )
    name_key = keyring.name_key(KeySet(old))
    keyring = replace(keyring.with_key(new, name_key), retiring=old.key_id)
    await raw.write_meta(KEYRING, keyring.dump())
    log.info("rotating master key %s to %s", old.key_id, new.key_id)

    sealer = Sealer(KeySet(new, [old]))
    changed = done = 0
    ticker = _Ticker("file", progress)
    async for name in raw.names():
        _, head = await raw.read_range(name, 0, HEADER_BYTES)
        if not is_sealed(head):
            continue  # a picture from before encryption, for seal_plaintext
        new_head = sealer.rewrap_header(head, blob_context(name))
        if new_head is None:
            done += 1
            continue
        await raw.rewrite_head(name, new_head)
        changed += 1
        ticker.tick()
    rows = await _rewrite_rows(pictures, DerivativeCodec(sealer).rewrap, progress)
    changed += await uploads(sealer).rewrap()
    await raw.write_meta(KEYRING, keyring.without_key(old.key_id).dump())
    log.info("master key rotation to %s done; %s may be retired", new.key_id, old.key_id)
    return WalkReport(changed, done, *rows)


async def seal_plaintext(
    blobs: SealedBlobs,
    pictures: PictureRepository,
    derivatives: DerivativeCodec,
    *,
    progress: Progress | None = None,
) -> WalkReport:
    """Seal every picture file and thumbnail stored before encryption; mark the store done.

    Raises:
        StoreUnavailable: the store cannot be reached (the job runs again later).
    """
    raw = blobs.raw
    changed = 0
    ticker = _Ticker("file", progress)
    async for name in raw.names():
        _, head = await raw.read_range(name, 0, HEADER_BYTES)
        if is_sealed(head):
            continue
        data = await raw.read(name)
        if hashlib.sha256(data).hexdigest() != name:
            # Not a picture this store wrote (or rotted): leave it for the operator.
            log.error("stored file %s does not hash to its name; left unencrypted", name)
            continue
        sealed_name = blobs.storage_name(name)
        sealed = await asyncio.to_thread(blobs.sealer.seal, data, blob_context(sealed_name))
        # The sealed copy first: a reader finds one or the other at every moment.
        await raw.put_named(sealed_name, sealed)
        await raw.delete(name)
        changed += 1
        ticker.tick()

    def seal(data: bytes, kind: Kind) -> bytes | None:
        return None if is_sealed(data) else derivatives.seal(data, kind)

    rows = await _rewrite_rows(pictures, seal, progress)
    keyring = await load_keyring(raw)
    if keyring is not None and keyring.plaintext_left:
        await raw.write_meta(KEYRING, replace(keyring, plaintext_left=False).dump())
    blobs.plaintext_left = False
    derivatives.plaintext_left = False
    log.info("every stored picture is encrypted now (%d files sealed in place)", changed)
    return WalkReport(changed, 0, *rows)


async def _rewrite_rows(
    pictures: PictureRepository,
    rewrite: Callable[[bytes, Kind], bytes | None],
    progress: Progress | None,
) -> tuple[int, int]:
    """Apply ``rewrite`` to every picture's thumbnail and preview; return (changed, unchanged)."""
    changed = unchanged = 0
    ticker = _Ticker("row", progress)
    after = ""
    while page := await pictures.derivatives_after(after, ROW_PAGE):
        for row in page:
            thumbnail = rewrite(row.thumbnail, "thumbnail")
            preview = rewrite(row.preview, "preview")
            if thumbnail is None and preview is None:
                unchanged += 1
                continue
            new = StoredDerivatives(row.sha256, thumbnail or row.thumbnail, preview or row.preview)
            if await pictures.replace_derivatives(row, new):
                changed += 1
                ticker.tick()
        after = page[-1].sha256
    return changed, unchanged
