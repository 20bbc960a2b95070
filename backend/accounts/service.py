"""Provides the account service: create, log in, resume, log out, change password, admins."""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass

from backend.accounts.passwords import DUMMY_HASH, hash_password, verify_password
from backend.accounts.throttle import LoginThrottle
from backend.config import SessionPolicy
from backend.storage.database import Database
from protocol.errors import BadRequest, Conflict, NotFound, Unauthenticated
from protocol.messages.accounts import UserInfo

USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,31}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
#: ``last_seen_at`` is written at most this often per session (it feeds the idle expiry).
TOUCH_INTERVAL = 60.0
_GENERIC_LOGIN_FAILURE = "Wrong username or password"


@dataclass(frozen=True)
class Principal:
    """An authenticated user bound to one session."""

    user_id: int
    username: str
    is_admin: bool
    token_hash: bytes

    def info(self) -> UserInfo:
        """The public view of this user."""
        return UserInfo(id=self.user_id, username=self.username, is_admin=self.is_admin)


@dataclass
class _LiveSession:
    principal: Principal
    created_at: float
    last_seen_at: float
    expires_at: float


def hash_token(token: str) -> bytes:
    """The stored form of a session token."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def validate_username(username: str) -> str:
    """Return the username if it is acceptable, else raise :class:`BadRequest`."""
    if not USERNAME_RE.fullmatch(username):
        raise BadRequest(
            "A username has 3 to 32 characters: letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return username


def validate_password(password: str, username: str = "") -> str:
    """Return the password if the policy accepts it, else raise :class:`BadRequest`."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise BadRequest(f"A password has {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    if username and password.casefold() == username.casefold():
        raise BadRequest("The password must not be the username")
    return password


class AccountService:
    """Accounts and sessions; the only place that touches password hashes and tokens."""

    def __init__(
        self,
        db: Database,
        policy: SessionPolicy,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self._policy = policy
        self._clock = clock
        self.throttle = LoginThrottle(
            max_per_account=policy.max_failures_per_account,
            max_per_address=policy.max_failures_per_address,
            window=policy.failure_window,
            lockout=policy.lockout,
        )
        self._live: dict[bytes, _LiveSession] = {}

    async def create_account(self, username: str, password: str) -> UserInfo:
        """Create a user; raise :class:`Conflict` if the name is taken (case-insensitively)."""
        validate_username(username)
        validate_password(password, username)
        encoded = await asyncio.to_thread(hash_password, password)
        now = self._clock()
        try:
            async with self._db.transaction() as conn:
                cursor = await conn.execute(
                    "INSERT INTO users (username, username_key, password_hash, created_at,"
                    " password_changed_at) VALUES (?, ?, ?, ?, ?)",
                    (username, username.casefold(), encoded, now, now),
                )
                user_id = cursor.lastrowid
        except sqlite3.IntegrityError:
            raise Conflict(f"The username {username!r} is taken") from None
        assert user_id is not None
        return UserInfo(id=user_id, username=username, is_admin=False, created_at=now)

    async def login(
        self, username: str, password: str, address: str
    ) -> tuple[str, Principal, float]:
        """Check the password and open a session; return (token, principal, expires_at).

        An unknown user and a wrong password give the same error after the same amount of work.
        """
        key = username.casefold()
        self.throttle.check(key, address)
        row = await self._db.fetchone(
            "SELECT id, username, password_hash, is_admin FROM users WHERE username_key = ?", (key,)
        )
        encoded = str(row["password_hash"]) if row else DUMMY_HASH
        ok = await asyncio.to_thread(verify_password, password, encoded)
        if row is None or not ok:
            self.throttle.failed(key, address)
            raise Unauthenticated(_GENERIC_LOGIN_FAILURE)
        self.throttle.succeeded(key)
        return await self._open_session(int(row["id"]), str(row["username"]), bool(row["is_admin"]))

    async def _open_session(
        self, user_id: int, username: str, is_admin: bool
    ) -> tuple[str, Principal, float]:
        token = secrets.token_urlsafe(32)
        token_hash = hash_token(token)
        now = self._clock()
        expires_at = now + self._policy.absolute_expiry
        await self._db.execute(
            "INSERT INTO sessions (token_hash, user_id, created_at, last_seen_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (token_hash, user_id, now, now, expires_at),
        )
        principal = Principal(user_id, username, is_admin, token_hash)
        self._live[token_hash] = _LiveSession(principal, now, now, expires_at)
        return token, principal, expires_at

    async def resume(self, token: str) -> tuple[Principal, float]:
        """Validate a token; return the principal and the absolute expiry."""
        principal, session = await self._validate(hash_token(token))
        return principal, session.expires_at

    async def authenticate(self, principal: Principal) -> Principal:
        """Re-check a connection's session before a request: it may have been revoked or expired."""
        validated, _ = await self._validate(principal.token_hash)
        return validated

    async def _validate(self, token_hash: bytes) -> tuple[Principal, _LiveSession]:
        now = self._clock()
        live = self._live.get(token_hash)
        if live is None:
            row = await self._db.fetchone(
                "SELECT s.user_id, s.created_at, s.last_seen_at, s.expires_at, u.username,"
                " u.is_admin FROM sessions s JOIN users u ON u.id = s.user_id"
                " WHERE s.token_hash = ?",
                (token_hash,),
            )
            if row is None:
                raise Unauthenticated("Your session has ended; please log in again")
            principal = Principal(
                int(row["user_id"]), str(row["username"]), bool(row["is_admin"]), token_hash
            )
            live = _LiveSession(
                principal,
                float(row["created_at"]),
                float(row["last_seen_at"]),
                float(row["expires_at"]),
            )
            self._live[token_hash] = live
        if now >= live.expires_at or now - live.last_seen_at >= self._policy.idle_expiry:
            await self._revoke(token_hash)
            raise Unauthenticated("Your session has expired; please log in again")
        if now - live.last_seen_at >= min(TOUCH_INTERVAL, self._policy.idle_expiry / 4):
            live.last_seen_at = now
            await self._db.execute(
                "UPDATE sessions SET last_seen_at = ? WHERE token_hash = ?", (now, token_hash)
            )
        return live.principal, live

    async def _revoke(self, token_hash: bytes) -> None:
        self._live.pop(token_hash, None)
        await self._db.execute("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))

    async def logout(self, principal: Principal) -> None:
        """Revoke the principal's session."""
        await self._revoke(principal.token_hash)

    async def change_password(
        self, principal: Principal, old_password: str, new_password: str, address: str
    ) -> tuple[str, Principal, float]:
        """Change the password, revoke every session of the user and open a fresh one."""
        key = principal.username.casefold()
        self.throttle.check(key, address)
        validate_password(new_password, principal.username)
        row = await self._db.fetchone(
            "SELECT password_hash FROM users WHERE id = ?", (principal.user_id,)
        )
        if row is None:
            raise Unauthenticated("Your account no longer exists")
        if not await asyncio.to_thread(verify_password, old_password, str(row["password_hash"])):
            self.throttle.failed(key, address)
            raise Unauthenticated("The current password is wrong")
        encoded = await asyncio.to_thread(hash_password, new_password)
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE users SET password_hash = ?, password_changed_at = ? WHERE id = ?",
                (encoded, self._clock(), principal.user_id),
            )
            await conn.execute("DELETE FROM sessions WHERE user_id = ?", (principal.user_id,))
        for token_hash in [
            h for h, s in self._live.items() if s.principal.user_id == principal.user_id
        ]:
            del self._live[token_hash]
        return await self._open_session(principal.user_id, principal.username, principal.is_admin)

    async def issue_session(self, username: str) -> tuple[str, Principal]:
        """Open a session for ``username`` without a password (server-side tools only).

        Raises:
            NotFound: there is no such user.
        """
        row = await self._db.fetchone(
            "SELECT id, username, is_admin FROM users WHERE username_key = ?",
            (username.casefold(),),
        )
        if row is None:
            raise NotFound(f"No user named {username!r}")
        token, principal, _ = await self._open_session(
            int(row["id"]), str(row["username"]), bool(row["is_admin"])
        )
        return token, principal

    async def set_admin(self, username: str, is_admin: bool = True) -> UserInfo:
        """Grant (or take away) the admin role; used by ``pixmart-server admin add``."""
        changed = await self._db.execute(
            "UPDATE users SET is_admin = ? WHERE username_key = ?",
            (int(is_admin), username.casefold()),
        )
        if not changed:
            raise NotFound(f"No user named {username!r}")
        # Sessions cached in memory carry the role; drop them so the next request re-reads it.
        self._live.clear()
        row = await self._db.fetchone(
            "SELECT id, username, created_at FROM users WHERE username_key = ?",
            (username.casefold(),),
        )
        assert row is not None
        return UserInfo(
            id=int(row["id"]),
            username=str(row["username"]),
            is_admin=is_admin,
            created_at=float(row["created_at"]),
        )
