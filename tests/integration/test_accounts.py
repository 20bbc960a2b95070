"""Account flows against a real TLS server: validation, login, logout, passwords, throttling.

Proves that usernames and passwords are validated by the server (length, characters,
case-insensitive uniqueness, password policy), that login/whoami/logout/change-password behave,
that a password change ends every other session of the user while the changing session carries
on with a new token, that requests needing a login are refused without one, that an unknown user
and a wrong password are indistinguishable (same message, comparable time), and that repeated
failed logins are throttled per account and per client address with a ``retry_after``.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace

import pytest

from backend.config import ServerConfig
from backend.server import PixmartServer
from protocol.client import Session
from protocol.errors import BadRequest, Conflict, ErrorCode, RateLimited, Unauthenticated
from protocol.messages.accounts import ChangePassword, Logout, Resume, Resumed, WhoAmI
from protocol.messages.base import Ok
from tests.conftest import SessionFactory, logged_in
from tests.support import pinned_session, running_server, session_count, user_count

PASSWORD = "password123"


# -- creating accounts -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "username",
    [
        "ab",  # too short
        "a" * 33,  # too long for the policy
        "bad name",  # space
        "bad/name",
        "_leading",  # must start with a letter or digit
        ".leading",
        "émile",  # letters outside ASCII
        "tab\tname",
    ],
)
async def test_invalid_usernames_are_refused(make_session: SessionFactory, username: str) -> None:
    session = await make_session()
    with pytest.raises(BadRequest, match="username has 3 to 32 characters"):
        await session.create_account(username, PASSWORD)


@pytest.mark.parametrize("username", ["", "x" * 65])
async def test_usernames_outside_the_wire_limits_are_bad_requests(
    make_session: SessionFactory, server: PixmartServer, username: str
) -> None:
    session = await make_session()
    with pytest.raises(BadRequest):
        await session.create_account(username, PASSWORD)
    assert await user_count(server, username) == 0


@pytest.mark.parametrize("username", ["abc", "a" * 32, "9lives", "x_y.z-0"])
async def test_boundary_usernames_are_accepted(
    make_session: SessionFactory, server: PixmartServer, username: str
) -> None:
    session = await make_session()
    user = await session.create_account(username, PASSWORD)
    assert user.username == username
    assert user.id > 0
    assert not user.is_admin
    assert await user_count(server, username) == 1


async def test_usernames_are_unique_regardless_of_case(
    make_session: SessionFactory, server: PixmartServer
) -> None:
    session = await make_session()
    created = await session.create_account("Bob", PASSWORD)
    for other in ("bob", "BOB", "bOb"):
        with pytest.raises(Conflict, match="taken"):
            await session.create_account(other, "another-password")
    assert await user_count(server, "bob") == 1
    # Logging in is case-insensitive too, and reports the name as it was registered.
    user = await session.login("BOB", PASSWORD)
    assert user.id == created.id
    assert user.username == "Bob"


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short", "8 to 1024 characters"),
        ("1234567", "8 to 1024 characters"),
        ("carolina", "must not be the username"),
        ("CAROLINA", "must not be the username"),
    ],
)
async def test_password_policy(
    make_session: SessionFactory, server: PixmartServer, password: str, reason: str
) -> None:
    session = await make_session()
    with pytest.raises(BadRequest, match=reason):
        await session.create_account("carolina", password)
    assert await user_count(server, "carolina") == 0


async def test_password_length_boundaries(make_session: SessionFactory) -> None:
    session = await make_session()
    await session.create_account("eight", "8" * 8)
    await session.create_account("longest", "L" * 1024)
    with pytest.raises(BadRequest):
        await session.create_account("toolong", "L" * 1025)
    assert (await session.login("eight", "8" * 8)).username == "eight"
    assert (await session.login("longest", "L" * 1024)).username == "longest"


# -- sessions ------------------------------------------------------------------------------------


async def test_login_whoami_logout(make_session: SessionFactory, server: PixmartServer) -> None:
    session = await make_session()
    tokens: list[str | None] = []
    session.on_token(tokens.append)
    created = await session.create_account("dave", PASSWORD)
    assert session.user is None  # creating an account does not log in
    user = await session.login("dave", PASSWORD)
    assert user == session.user
    assert user.id == created.id
    assert tokens == [session.token] and session.token
    assert (await session.whoami()).username == "dave"
    assert await session_count(server, "dave") == 1

    await session.logout()
    assert session.user is None
    assert session.token is None
    assert tokens[-1] is None
    assert await session_count(server, "dave") == 0
    with pytest.raises(Unauthenticated):
        await session.whoami()


async def test_requests_that_need_a_login_are_refused_without_one(
    make_session: SessionFactory,
) -> None:
    session = await make_session()
    await session.create_account("erin", PASSWORD)
    with pytest.raises(Unauthenticated, match="Log in first"):
        await session.whoami()
    with pytest.raises(Unauthenticated):
        await session.change_password(PASSWORD, "new-password-1")
    # The password did not change behind our back.
    assert (await session.login("erin", PASSWORD)).username == "erin"


async def test_logout_without_a_login_is_harmless(make_session: SessionFactory) -> None:
    session = await make_session()
    assert isinstance(await session.request(Logout(), Ok), Ok)


async def test_change_password_revokes_every_other_session(
    make_session: SessionFactory, server: PixmartServer
) -> None:
    first = await logged_in(make_session, "frank")
    second = await make_session()
    await second.login("frank", PASSWORD)
    old_first_token, old_second_token = first.token, second.token
    assert old_first_token and old_second_token and old_first_token != old_second_token
    assert await session_count(server, "frank") == 2

    await first.change_password(PASSWORD, "brand-new-secret")

    # The session that changed it carries on, with a new token.
    assert first.token and first.token not in (old_first_token, old_second_token)
    assert (await first.whoami()).username == "frank"
    assert await session_count(server, "frank") == 1
    # The other one is out, on its open connection and when resuming its old token.
    with pytest.raises(Unauthenticated):
        await second.whoami()
    with pytest.raises(Unauthenticated):
        await second.request(Resume(token=old_second_token), Resumed)
    with pytest.raises(Unauthenticated):
        await second.request(Resume(token=old_first_token), Resumed)
    # The new token resumes on another connection.
    third = await make_session(token=first.token)
    assert third.user is not None and third.user.username == "frank"
    # Only the new password logs in.
    with pytest.raises(Unauthenticated):
        await second.login("frank", PASSWORD)
    assert (await second.login("frank", "brand-new-secret")).username == "frank"


async def test_change_password_checks_the_old_password_and_the_policy(
    make_session: SessionFactory,
) -> None:
    session = await logged_in(make_session, "graceful")
    token = session.token
    with pytest.raises(Unauthenticated, match="current password is wrong"):
        await session.request(
            ChangePassword(old_password="not-the-password", new_password="whatever-123"), Ok
        )
    with pytest.raises(BadRequest):
        await session.change_password(PASSWORD, "short")
    with pytest.raises(BadRequest, match="must not be the username"):
        await session.change_password(PASSWORD, "GRACEFUL")
    # Nothing changed: the session and the old password still work.
    assert session.token == token
    assert (await session.whoami()).username == "graceful"
    other = await make_session()
    assert (await other.login("graceful", PASSWORD)).username == "graceful"


# -- failed logins -------------------------------------------------------------------------------


async def _failed_login_message(session: Session, username: str, password: str) -> str:
    with pytest.raises(Unauthenticated) as caught:
        await session.login(username, password)
    assert caught.value.code is ErrorCode.UNAUTHENTICATED
    return caught.value.message


def _throttling(
    config: ServerConfig, *, per_account: int, per_address: int, lockout: float = 30.0
) -> ServerConfig:
    return replace(
        config,
        sessions=replace(
            config.sessions,
            max_failures_per_account=per_account,
            max_failures_per_address=per_address,
            failure_window=60.0,
            lockout=lockout,
        ),
    )


async def test_unknown_user_and_wrong_password_look_the_same(server_config: ServerConfig) -> None:
    config = _throttling(server_config, per_account=1000, per_address=1000)
    async with running_server(config) as server, pinned_session(server) as session:
        await session.create_account("henry", PASSWORD)
        await session.login("henry", PASSWORD)  # warm up both code paths once
        unknown: list[float] = []
        wrong: list[float] = []
        messages: set[str] = set()
        for _ in range(5):
            for username, password, timings in (
                ("nobody-here", PASSWORD, unknown),
                ("henry", "wrong-password", wrong),
            ):
                started = time.perf_counter()
                messages.add(await _failed_login_message(session, username, password))
                timings.append(time.perf_counter() - started)
    assert messages == {"Wrong username or password"}
    slow = max(statistics.median(unknown), statistics.median(wrong))
    fast = min(statistics.median(unknown), statistics.median(wrong))
    # Both verify a full Argon2id hash; skipping it for unknown users would be ~100x faster.
    assert slow < 3 * fast, (unknown, wrong)


async def test_failed_logins_lock_the_account_out(server_config: ServerConfig) -> None:
    config = _throttling(server_config, per_account=3, per_address=1000)
    async with running_server(config) as server, pinned_session(server) as session:
        await session.create_account("ivan", PASSWORD)
        await session.create_account("judy", PASSWORD)
        for _ in range(3):
            await _failed_login_message(session, "IVAN", "wrong-password")
        # Locked: even the right password is refused now, and the server says for how long.
        for password in ("wrong-password", PASSWORD):
            with pytest.raises(RateLimited) as caught:
                await session.login("ivan", password)
            assert caught.value.code is ErrorCode.RATE_LIMITED
            assert caught.value.retry_after is not None
            assert 0 < caught.value.retry_after <= 30.0
        assert session.user is None
        assert await session_count(server, "ivan") == 0
        # Another account from the same address is not affected.
        assert (await session.login("judy", PASSWORD)).username == "judy"


async def test_failed_logins_before_the_limit_do_not_lock(server_config: ServerConfig) -> None:
    config = _throttling(server_config, per_account=3, per_address=1000)
    async with running_server(config) as server, pinned_session(server) as session:
        await session.create_account("kate", PASSWORD)
        for _ in range(2):
            await _failed_login_message(session, "kate", "wrong-password")
        assert (await session.login("kate", PASSWORD)).username == "kate"
        # A success forgets the account's failures: two more failures still do not lock it.
        for _ in range(2):
            await _failed_login_message(session, "kate", "wrong-password")
        assert (await session.login("kate", PASSWORD)).username == "kate"
        assert await session_count(server, "kate") == 2


async def test_failed_logins_lock_the_address_out(server_config: ServerConfig) -> None:
    config = _throttling(server_config, per_account=1000, per_address=4)
    async with running_server(config) as server, pinned_session(server) as session:
        await session.create_account("karl", PASSWORD)
        # Spread over several names, so no single account reaches a limit.
        for name in ("karl", "nobody1", "nobody2", "nobody3"):
            await _failed_login_message(session, name, "wrong-password")
        with pytest.raises(RateLimited) as caught:
            await session.login("karl", PASSWORD)
        assert caught.value.retry_after is not None and caught.value.retry_after > 0
        with pytest.raises(RateLimited):
            await session.login("somebody-else", PASSWORD)
        assert await session_count(server, "karl") == 0
        # Only logins are throttled: the connection still serves other requests.
        with pytest.raises(Unauthenticated, match="Log in first"):
            await session.request(WhoAmI(), Ok)


async def test_wrong_old_passwords_count_as_failed_logins(server_config: ServerConfig) -> None:
    config = _throttling(server_config, per_account=2, per_address=1000)
    async with running_server(config) as server, pinned_session(server) as session:
        await session.create_account("liam", PASSWORD)
        await session.login("liam", PASSWORD)
        for _ in range(2):
            with pytest.raises(Unauthenticated):
                await session.change_password("guessed-wrong", "new-password-1")
        with pytest.raises(RateLimited):
            await session.change_password(PASSWORD, "new-password-1")
        # Still the old password (a fresh login is locked out, but the session lives on).
        assert (await session.whoami()).username == "liam"
        assert await session_count(server, "liam") == 1
