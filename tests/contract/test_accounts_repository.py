"""The account and session repositories give the same answers on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass

import pytest

from backend.accounts.repositories import account_repository, session_repository
from backend.accounts.repository import (
    AccountRepository,
    NewSession,
    SessionRecord,
    SessionRepository,
    UsernameTaken,
    UserRecord,
)
from backend.storage.engine import StorageEngine

#: A fixed point in time; every test dates its rows relative to it.
T0 = 1_700_000_000.25
DAY = 86_400.0
HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"


@dataclass(frozen=True)
class Repos:
    users: AccountRepository
    sessions: SessionRepository


@pytest.fixture
def repos(engine: StorageEngine) -> Repos:
    return Repos(account_repository(engine), session_repository(engine))


def token(name: str) -> bytes:
    """A token hash, as the service stores them."""
    return hashlib.sha256(name.encode()).digest()


def new_session(name: str, user: UserRecord, *, at: float = T0, lasts: float = DAY) -> NewSession:
    return NewSession(token(name), user.id, at, at + lasts)


async def make_user(repos: Repos, name: str, *, at: float = T0) -> UserRecord:
    return await repos.users.create(name, name.casefold(), HASH, at)


# Users


async def test_a_created_user_is_found_by_key_and_by_id(repos: Repos) -> None:
    created = await repos.users.create("Alice", "alice", HASH, T0)
    assert created == UserRecord(created.id, "Alice", False, T0, HASH)
    assert await repos.users.by_key("alice") == created
    assert await repos.users.by_id(created.id) == created


async def test_unknown_users_are_none(repos: Repos) -> None:
    await make_user(repos, "alice")
    assert await repos.users.by_key("bob") is None
    assert await repos.users.by_key("Alice") is None  # keys are compared exactly
    assert await repos.users.by_id(10_000) is None


async def test_users_get_distinct_increasing_ids(repos: Repos) -> None:
    ids = [(await make_user(repos, f"user{n}")).id for n in range(3)]
    assert ids == sorted(set(ids))
    assert await repos.users.count() == 3


async def test_a_taken_key_is_refused_and_nothing_is_stored(repos: Repos) -> None:
    first = await repos.users.create("Alice", "alice", HASH, T0)
    with pytest.raises(UsernameTaken) as caught:
        await repos.users.create("ALICE", "alice", "other-hash", T0 + 1)
    assert caught.value.username_key == "alice"
    assert await repos.users.count() == 1
    assert await repos.users.by_key("alice") == first


async def test_of_creations_racing_for_one_key_exactly_one_wins(repos: Repos) -> None:
    outcomes = await asyncio.gather(
        *(repos.users.create(f"Racer{n}", "racer", HASH, T0) for n in range(8)),
        return_exceptions=True,
    )
    winners = [o for o in outcomes if isinstance(o, UserRecord)]
    assert len(winners) == 1
    assert all(isinstance(o, UsernameTaken) for o in outcomes if o not in winners)
    assert await repos.users.by_key("racer") == winners[0]
    assert await repos.users.count() == 1


async def test_the_admin_role_is_granted_and_taken_away(repos: Repos) -> None:
    alice = await make_user(repos, "alice")
    bob = await make_user(repos, "bob")
    await repos.users.set_admin(alice.id, True)
    assert (await repos.users.by_id(alice.id)) == UserRecord(alice.id, "alice", True, T0, HASH)
    assert (await repos.users.by_key("bob")) == bob
    await repos.users.set_admin(alice.id, False)
    assert await repos.users.by_key("alice") == alice


async def test_a_password_change_swaps_every_session_of_the_user_for_one(repos: Repos) -> None:
    alice = await make_user(repos, "alice")
    bob = await make_user(repos, "bob")
    for name in ("phone", "laptop"):
        await repos.sessions.create(new_session(name, alice))
    await repos.sessions.create(new_session("bob's", bob))

    fresh = new_session("fresh", alice, at=T0 + 60)
    await repos.users.change_password(alice.id, "new-hash", fresh)

    changed = await repos.users.by_id(alice.id)
    assert changed is not None and changed.password_hash == "new-hash"
    assert await repos.sessions.stored([token("phone"), token("laptop"), token("fresh")]) == {
        token("fresh")
    }
    assert await repos.sessions.count_of_user(alice.id) == 1
    assert await repos.sessions.count_of_user(bob.id) == 1
    stored = await repos.sessions.find(token("fresh"))
    assert stored == SessionRecord(
        token("fresh"), alice.id, "alice", False, T0 + 60, T0 + 60, T0 + 60 + DAY
    )


async def test_password_changes_racing_leave_one_session(repos: Repos) -> None:
    alice = await make_user(repos, "alice")
    await asyncio.gather(
        *(
            repos.users.change_password(alice.id, f"hash{n}", new_session(f"s{n}", alice))
            for n in range(4)
        )
    )
    assert await repos.sessions.count_of_user(alice.id) == 1
    user = await repos.users.by_id(alice.id)
    assert user is not None
    (winner,) = await repos.sessions.stored([token(f"s{n}") for n in range(4)])
    assert winner == token(f"s{user.password_hash.removeprefix('hash')}")


async def test_the_password_hash_is_not_in_the_repr(repos: Repos) -> None:
    alice = await make_user(repos, "alice")
    assert HASH not in repr(alice)


# Sessions


async def test_a_session_is_found_with_its_user(repos: Repos) -> None:
    alice = await make_user(repos, "Alice")
    await repos.users.set_admin(alice.id, True)
    await repos.sessions.create(new_session("t", alice))
    assert await repos.sessions.find(token("t")) == SessionRecord(
        token("t"), alice.id, "Alice", True, T0, T0, T0 + DAY
    )
    assert await repos.sessions.find(token("unknown")) is None


async def test_an_expired_session_is_still_found_until_swept(repos: Repos) -> None:
    alice = await make_user(repos, "alice")
    await repos.sessions.create(new_session("old", alice, at=T0 - 2 * DAY))
    found = await repos.sessions.find(token("old"))
    assert found is not None and found.expires_at == T0 - DAY


async def test_touch_moves_last_seen_forward_only(repos: Repos) -> None:
    alice = await make_user(repos, "alice")
    await repos.sessions.create(new_session("t", alice))
    await repos.sessions.touch(token("t"), T0 + 100)
    await repos.sessions.touch(token("t"), T0 + 50)  # a slower process, telling of older use
    found = await repos.sessions.find(token("t"))
    assert found is not None
    assert (found.created_at, found.last_seen_at, found.expires_at) == (T0, T0 + 100, T0 + DAY)
    await repos.sessions.touch(token("unknown"), T0)  # no error, nothing stored
    assert await repos.sessions.find(token("unknown")) is None


async def test_sessions_are_deleted_by_token_hash(repos: Repos) -> None:
    alice = await make_user(repos, "alice")
    for name in ("a", "b", "c"):
        await repos.sessions.create(new_session(name, alice))
    await repos.sessions.delete([token("a"), token("c"), token("never stored")])
    await repos.sessions.delete([])
    assert await repos.sessions.stored([token(n) for n in "abc"]) == {token("b")}
    assert await repos.sessions.count_of_user(alice.id) == 1


async def test_all_sessions_of_one_user_are_deleted(repos: Repos) -> None:
    alice = await make_user(repos, "alice")
    bob = await make_user(repos, "bob")
    for name in ("a1", "a2"):
        await repos.sessions.create(new_session(name, alice))
    await repos.sessions.create(new_session("b1", bob))
    await repos.sessions.delete_of_user(alice.id)
    assert await repos.sessions.count_of_user(alice.id) == 0
    assert await repos.sessions.stored([token("a1"), token("a2"), token("b1")]) == {token("b1")}


async def test_stored_answers_for_many_sessions_at_once(repos: Repos) -> None:
    alice = await make_user(repos, "alice")
    kept = [f"kept{n}" for n in range(1200)]  # more than one SQLite statement may ask about
    for name in kept:
        await repos.sessions.create(new_session(name, alice))
    asked = [token(name) for name in kept] + [token(f"gone{n}") for n in range(300)]
    assert await repos.sessions.stored(asked) == {token(name) for name in kept}
    assert await repos.sessions.stored([]) == set()
    assert await repos.sessions.count_of_user(alice.id) == len(kept)


async def test_the_sweep_deletes_sessions_past_either_expiry(repos: Repos) -> None:
    alice = await make_user(repos, "alice")
    idle = 3600.0
    now = T0 + 10 * DAY
    cases = {
        "absolute-passed": new_session("absolute-passed", alice, at=now - DAY, lasts=DAY - 1),
        "absolute-now": new_session("absolute-now", alice, at=now - DAY, lasts=DAY),
        "fresh": new_session("fresh", alice, at=now - 10, lasts=DAY),
        "idle-now": new_session("idle-now", alice, at=now - idle, lasts=DAY),
        "idle-nearly": new_session("idle-nearly", alice, at=now - idle + 1, lasts=DAY),
        "used-lately": new_session("used-lately", alice, at=now - 2 * idle, lasts=DAY),
    }
    for session in cases.values():
        await repos.sessions.create(session)
    await repos.sessions.touch(token("used-lately"), now - 1)

    assert await repos.sessions.delete_expired(now, idle) == 3
    remaining = await repos.sessions.stored([token(name) for name in cases])
    assert remaining == {token("fresh"), token("idle-nearly"), token("used-lately")}
    assert await repos.sessions.delete_expired(now, idle) == 0


async def test_sessions_of_several_users_are_counted_apart(repos: Repos) -> None:
    alice = await make_user(repos, "alice")
    bob = await make_user(repos, "bob")
    for n in range(3):
        await repos.sessions.create(new_session(f"a{n}", alice))
    assert await repos.sessions.count_of_user(alice.id) == 3
    assert await repos.sessions.count_of_user(bob.id) == 0
    assert await repos.sessions.count_of_user(10_000) == 0
