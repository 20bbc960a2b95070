"""Provides the catalogue's PostgreSQL advisory locks, which serialise writers across servers.

Several server processes may write to one database at once, so what one SQLite writer (and the
process's :class:`~backend.catalogue.locks.KeyedLocks`) guarantee there is guarded here by
transaction-scoped advisory locks: taken inside a transaction, released at its commit or
rollback. They use the two-key form; the first key names the kind of lock (four ASCII letters),
the second the object. Hash collisions only make two objects share a lock.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import asyncpg

#: Per picture (by ``hashtext(sha256)``): adding an item for a picture, and deleting a picture
#: no item shows, never overlap.
_PICTURE: Final = 0x63706963  # "cpic"
#: One lock: items are added one at a time, so ``created_at`` only grows in commit order.
_ITEM_CLOCK: Final = 0x63636C6B  # "cclk"
#: Per user (by ``hashint8(owner_id)``): "count the uploads, then add one" is one step.
_UPLOAD_QUOTA: Final = 0x6375706C  # "cupl"


async def lock_pictures(conn: asyncpg.Connection[Any], shas: Iterable[str]) -> None:
    """Hold the locks of these pictures until the transaction ends.

    They are taken in the order of their keys, so two transactions locking overlapping sets
    cannot deadlock.
    """
    keys = await conn.fetch(
        "SELECT DISTINCT hashtext(sha) AS key FROM unnest($1::text[]) AS sha ORDER BY key",
        sorted(set(shas)),
    )
    for row in keys:
        await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", _PICTURE, row["key"])


async def lock_item_clock(conn: asyncpg.Connection[Any]) -> None:
    """Hold the lock of item creation until the transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock($1, 0)", _ITEM_CLOCK)


#: The owner id whose upload-quota lock stands for the whole shop's (user ids start at 1).
SHOP_WIDE = 0


async def lock_upload_quota(conn: asyncpg.Connection[Any], owner_id: int) -> None:
    """Hold the lock of ``owner_id``'s upload quota until the transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock($1, hashint8($2))", _UPLOAD_QUOTA, owner_id)
