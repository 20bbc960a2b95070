"""Provides checks of the replay cache: once per request, per user, failures not kept, bounded."""

from __future__ import annotations

import pytest

from backend.replay import ReplayCache
from protocol.errors import Conflict, RateLimited
from protocol.messages.base import Ok, Reply


def _counting() -> tuple[list[int], object]:
    runs: list[int] = []

    async def compute() -> Reply:
        runs.append(1)
        return Ok(id=1)

    return runs, compute


async def test_a_retry_is_answered_once_and_only_for_the_same_user() -> None:
    cache = ReplayCache()
    runs, compute = _counting()
    await cache.run("c" * 32, 7, 1, b"frame", compute)  # type: ignore[arg-type]
    await cache.run("c" * 32, 7, 1, b"frame", compute)  # type: ignore[arg-type]
    assert len(runs) == 1
    await cache.run("c" * 32, 8, 1, b"frame", compute)  # type: ignore[arg-type]
    assert len(runs) == 2  # another user presenting the same client id runs their own request
    with pytest.raises(Conflict):
        await cache.run("c" * 32, 7, 1, b"other", compute)  # type: ignore[arg-type]


async def test_failed_requests_are_not_kept() -> None:
    cache = ReplayCache()
    attempts: list[int] = []

    async def refused() -> Reply:
        attempts.append(1)
        raise RateLimited("busy", retry_after=1)

    for _ in range(3):
        with pytest.raises(RateLimited):
            await cache.run("d" * 32, None, 5, b"frame", refused)
    assert len(attempts) == 3  # each retry ran again: nothing happened the first time
    assert len(cache) == 0


async def test_the_cache_is_bounded_whatever_the_number_of_client_ids() -> None:
    cache = ReplayCache(max_entries=100)
    _, compute = _counting()
    for client in range(1_000):
        await cache.run(f"{client:032x}", None, 1, b"frame", compute)  # type: ignore[arg-type]
    assert len(cache) <= 100
    # The most recent clients are the ones kept.
    runs, again = _counting()
    await cache.run(f"{999:032x}", None, 1, b"frame", again)  # type: ignore[arg-type]
    assert runs == []
