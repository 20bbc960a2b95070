"""Provides :class:`PostgresEventCounter`: sliding-window event counts shared by every instance.

One row per counted event in ``throttle_events``. A :meth:`~PostgresEventCounter.take` runs in
one transaction holding a transaction-level advisory lock per key (taken in key order, so two
takes never deadlock): count the events in the window, refuse if a key is full (rolled back, so
nothing is counted), else insert one event per key. Instances racing on a key thus serialise,
and N guesses spread over N instances count N times against the same limit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import asyncpg

from backend.accounts.shared_throttle import LimitReached
from backend.storage.postgres import PostgresDatabase

#: Every so many takes, up to GC_BATCH events that left their window are deleted (of keys no
#: one uses any more; keys in use are tidied by their own takes).
GC_EVERY: Final = 100
GC_BATCH: Final = 1000


class PostgresEventCounter:
    """Implements :class:`~backend.accounts.shared_throttle.EventCounter` on PostgreSQL."""

    def __init__(self, db: PostgresDatabase, *, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock
        self._takes = 0

    async def check(self, scope: str, limits: Mapping[str, int], window: float) -> None:
        """See :meth:`EventCounter.check`."""
        now = self._clock()
        async with self._db.connection() as conn:
            await _refuse_full(conn, scope, limits, window, now)

    async def take(self, scope: str, limits: Mapping[str, int], window: float) -> list[int]:
        """See :meth:`EventCounter.take`."""
        now = self._clock()
        since = now - window
        keys = sorted(limits)
        async with self._db.transaction() as conn:
            for key in keys:
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"{scope}/{key}"
                )
            await conn.execute(
                "DELETE FROM throttle_events WHERE scope = $1 AND key = ANY($2::text[])"
                " AND at <= $3",
                scope,
                keys,
                since,
            )
            # Raised inside the transaction: rolled back, nothing counted.
            await _refuse_full(conn, scope, limits, window, now)
            ids = await conn.fetch(
                "INSERT INTO throttle_events (scope, key, at)"
                " SELECT $1, k, $3 FROM unnest($2::text[]) AS k RETURNING id",
                scope,
                keys,
                now,
            )
        self._takes += 1
        if self._takes % GC_EVERY == 0:
            await self._db.execute(
                "DELETE FROM throttle_events WHERE ctid = ANY(ARRAY("
                "SELECT ctid FROM throttle_events WHERE scope = $1 AND at <= $2 LIMIT $3))",
                scope,
                since,
                GC_BATCH,
            )
        return [int(row["id"]) for row in ids]

    async def give_back(self, ids: Sequence[int]) -> None:
        """See :meth:`EventCounter.give_back`."""
        if ids:
            await self._db.execute(
                "DELETE FROM throttle_events WHERE id = ANY($1::bigint[])", list(ids)
            )

    async def clear(self, scope: str, key: str) -> None:
        """See :meth:`EventCounter.clear`."""
        await self._db.execute(
            "DELETE FROM throttle_events WHERE scope = $1 AND key = $2", scope, key
        )


async def _refuse_full(
    conn: asyncpg.Connection[Any],
    scope: str,
    limits: Mapping[str, int],
    window: float,
    now: float,
) -> None:
    """Raise :class:`LimitReached` for the first key of ``limits`` full in the window."""
    rows = await conn.fetch(
        "SELECT key, count(*) AS n, min(at) AS oldest FROM throttle_events"
        " WHERE scope = $1 AND key = ANY($2::text[]) AND at > $3 GROUP BY key",
        scope,
        sorted(limits),
        now - window,
    )
    counts = {row["key"]: (int(row["n"]), float(row["oldest"])) for row in rows}
    for key in sorted(limits):
        count, oldest = counts.get(key, (0, now))
        if count >= limits[key]:
            raise LimitReached(key, oldest + window - now)
