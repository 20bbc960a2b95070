"""End-to-end account flows against a real TLS server on port 0."""

from __future__ import annotations

import pytest

from protocol.errors import Conflict, Unauthenticated
from tests.conftest import SessionFactory, logged_in


async def test_create_login_whoami_logout(make_session: SessionFactory) -> None:
    session = await logged_in(make_session, "alice")
    assert session.token is not None
    me = await session.whoami()
    assert me.username == "alice"
    await session.logout()
    assert session.token is None
    with pytest.raises(Unauthenticated):
        await session.whoami()


async def test_usernames_are_case_insensitively_unique(make_session: SessionFactory) -> None:
    session = await make_session()
    await session.create_account("Bob", "password123")
    with pytest.raises(Conflict):
        await session.create_account("bob", "password456")
