"""Provides :class:`CatalogueSweeper`: the catalogue's periodic, cluster-safe clean-ups.

Two rounds repeat while the server serves:

* the **picture sweep** (once soon after start, then hourly): picture rows no item shows and
  stored files no row names are removed, streaming the store's names. A file is stored before
  the row naming it commits, so files younger than the grace period are spared.
* the **upload expiry** (a quarter of the expiry apart): uploads untouched for the expiry are
  discarded, rows and bytes.

Each round that touches what several instances share runs under
``StorageEngine.exclusive_job``: of the instances on one database, one at a time runs it and the
others skip that round. The upload expiry is shared only when the partial bytes are (in the
object store); with partials on each instance's disk, every instance expires its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Final

from backend.catalogue.pictures import SHARED_SWEEP_GRACE_SECONDS, PictureStore
from backend.catalogue.uploads import UploadManager

log = logging.getLogger(__name__)

#: Enters a background job if no other instance runs it (``StorageEngine.exclusive_job``).
ExclusiveJob = Callable[[str], AbstractAsyncContextManager[bool]]

#: The job names, one lock each.
PICTURE_SWEEP_JOB: Final = "catalogue-sweep"
UPLOAD_EXPIRY_JOB: Final = "catalogue-upload-expiry"
#: Seconds between picture sweeps, and before the first (the server is up and serving by then).
PICTURE_SWEEP_INTERVAL: Final = 3600.0
FIRST_PICTURE_SWEEP_DELAY: Final = 60.0


def expiry_interval(upload_expiry: float) -> float:
    """Seconds between upload expiries: a quarter of the expiry, between 0.1 s and 10 minutes.

    An abandoned upload is thus gone at most 25 % after its expiry, without waking the server
    more often than a short expiry (in tests) needs.
    """
    return min(600.0, max(0.1, upload_expiry / 4))


class CatalogueSweeper:
    """Runs the catalogue's sweeps, each by one instance of a cluster at a time.

    Args:
        pictures: The stored pictures.
        uploads: The uploads in progress.
        upload_expiry: Seconds an upload may stay untouched.
        exclusive_job: The storage engine's ``exclusive_job``.
        grace_seconds: Files younger than this are spared by the picture sweep.
    """

    def __init__(
        self,
        pictures: PictureStore,
        uploads: UploadManager,
        *,
        upload_expiry: float,
        exclusive_job: ExclusiveJob,
        grace_seconds: float = SHARED_SWEEP_GRACE_SECONDS,
    ) -> None:
        self._pictures = pictures
        self._uploads = uploads
        self._upload_expiry = upload_expiry
        self._exclusive_job = exclusive_job
        self.grace_seconds = grace_seconds
        self._tasks: list[asyncio.Task[None]] = []

    async def sweep_pictures(self) -> bool:
        """Run one picture sweep unless another instance is running one; return whether it ran."""
        async with self._exclusive_job(PICTURE_SWEEP_JOB) as mine:
            if not mine:
                return False
            removed = await self._pictures.sweep(grace_seconds=self.grace_seconds)
            log.debug("picture sweep removed %d files", removed)
            return True

    async def expire_uploads(self) -> bool:
        """Run one upload expiry unless another instance is expiring the same uploads."""
        if not self._uploads.partials.shared:
            # This instance's own files: nobody else can expire them.
            await self._uploads.expire(self._upload_expiry)
            return True
        async with self._exclusive_job(UPLOAD_EXPIRY_JOB) as mine:
            if mine:
                await self._uploads.expire(self._upload_expiry)
            return mine

    def start(self) -> None:
        """Start both rounds in the background."""
        self._tasks = [
            asyncio.create_task(
                _repeat(
                    self.sweep_pictures,
                    first=FIRST_PICTURE_SWEEP_DELAY,
                    every=PICTURE_SWEEP_INTERVAL,
                    what="sweeping unreferenced pictures",
                ),
                name="catalogue-picture-sweep",
            ),
            asyncio.create_task(
                _repeat(
                    self.expire_uploads,
                    first=expiry_interval(self._upload_expiry),
                    every=expiry_interval(self._upload_expiry),
                    what="expiring abandoned uploads",
                ),
                name="catalogue-upload-expiry",
            ),
        ]

    async def stop(self) -> None:
        """Stop both rounds (a round in progress is cancelled; the next start redoes it)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []


async def _repeat(
    round_: Callable[[], Awaitable[bool]], *, first: float, every: float, what: str
) -> None:
    """Run ``round_`` after ``first`` seconds, then every ``every`` seconds, until cancelled."""
    await asyncio.sleep(first)
    while True:
        try:
            await round_()
        except Exception:
            # A failed round (store or database trouble) is retried next time; it must not
            # stop the rounds.
            log.exception("%s failed", what)
        await asyncio.sleep(every)
