"""Provides the account service: create, log in, resume, log out, change password, admins.

Sessions end by logout, a password change, expiry (idle or absolute) or an administrator; every
ending is announced to the ``on_session_end`` listeners at the moment the session is forgotten,
so the server can stop the live events of the connections still logged in with it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import re
import secrets
import sqlite3
import time
import unicodedata
from collections.abc import Callable, Collection
from dataclasses import dataclass

from backend.accounts.hashing import PasswordWork
from backend.accounts.passwords import DUMMY_HASH
from backend.accounts.throttle import LoginThrottle, SignupLimiter, address_key
from backend.config import SessionPolicy
from backend.safetext import refuse_hidden
from backend.storage.database import Database
from protocol.errors import BadRequest, Conflict, NotFound, RateLimited, Unauthenticated
from protocol.messages.accounts import SessionEndReason, UserInfo

log = logging.getLogger(__name__)

USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,31}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
#: ``last_seen_at`` is written at most this often per session (it feeds the idle expiry).
TOUCH_INTERVAL = 60.0
_GENERIC_LOGIN_FAILURE = "Wrong username or password"
#: Token hashes per query when a sweep checks which sessions still have their row.
_SWEEP_CHUNK = 500
_INSERT_SESSION = (
    "INSERT INTO sessions (token_hash, user_id, created_at, last_seen_at, expires_at)"
    " VALUES (?, ?, ?, ?, ?)"
)

#: What a request that needs a login hears on a connection whose session ended this way.
END_MESSAGES: dict[SessionEndReason, str] = {
    SessionEndReason.LOGGED_OUT: "The session was logged out elsewhere; please log in again",
    SessionEndReason.PASSWORD_CHANGED: "Your password was changed; please log in again",
    SessionEndReason.EXPIRED: "Your session has expired; please log in again",
    SessionEndReason.REVOKED: "Your session was ended by an administrator; please log in again",
}

#: Told the token hashes of sessions that just ended, and why.
SessionEndListener = Callable[[Collection[bytes], SessionEndReason], None]


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

    def expired(self, now: float, idle_expiry: float) -> bool:
        return now >= self.expires_at or now - self.last_seen_at >= idle_expiry


def hash_token(token: str) -> bytes:
    """The stored form of a session token."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def username_key(username: str) -> str:
    """The form usernames are compared by: NFKC, case folded (and NFKC again, as folding may
    leave a non-normalised string).

    Every lookup by name goes through here (create, login, admin tools), so U+212A KELVIN SIGN
    or a fullwidth "ｋ" is the same letter as "k" everywhere. Stored keys made before NFKC was
    applied are unchanged by it: every stored name is ASCII (see :func:`validate_username`).
    """
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", username).casefold())


def is_valid_username(username: str) -> bool:
    """Whether :func:`validate_username` accepts ``username``."""
    return USERNAME_RE.fullmatch(unicodedata.normalize("NFKC", username)) is not None


def validate_username(username: str) -> str:
    """Return the username in NFKC form (as stored and shown), or raise :class:`BadRequest`.

    Names are ASCII after NFKC, so no two look alike but differ: an invisible or bidi
    character gets its own message, anything else outside the rule the generic one.
    """
    refuse_hidden(username, "username")
    normalised = unicodedata.normalize("NFKC", username)
    if not USERNAME_RE.fullmatch(normalised):
        raise BadRequest(
            "A username has 3 to 32 characters: letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return normalised


def validate_password(password: str, username: str = "") -> str:
    """Return the password if the policy accepts it, else raise :class:`BadRequest`."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise BadRequest(f"A password has {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    if username and username_key(password) == username_key(username):
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
        self.signups = SignupLimiter(
            max_per_address=policy.max_accounts_per_address,
            max_total=policy.max_accounts_total,
            window=policy.account_window,
        )
        #: Every Argon2id hash and check runs through here, a bounded number at once.
        self.password_work = PasswordWork(
            workers=policy.password_hash_workers,
            max_waiting=policy.password_hash_queue,
            per_address=policy.password_hashes_per_address,
        )
        #: Every session bound to a connection is held here until it ends.
        self._live: dict[bytes, _LiveSession] = {}
        self._end_listeners: list[SessionEndListener] = []
        #: Rows of sessions found expired outside a sweep; the next sweep deletes them.
        self._expired_rows: set[bytes] = set()
        # Held while sessions are deleted and forgotten, and while a sweep compares the table
        # with memory: a sweep must not take a row this process is deleting for one deleted by
        # another process (and end it with the wrong reason).
        self._ending = asyncio.Lock()

    async def create_account(
        self, username: str, password: str, address: str | None = None
    ) -> UserInfo:
        """Create a user named by the NFKC form of ``username``.

        Args:
            username: The name as typed; stored in NFKC form.
            password: The password, checked against the policy.
            address: The client's address, for the sign-up limits; ``None`` for server-side
                tools, which are not limited.

        Raises:
            BadRequest: the name or password breaks the policy.
            Conflict: the name is taken (after NFKC and case folding).
            RateLimited: too many sign-ups from the address or on the server lately, or the
                server is too busy hashing passwords; ``retry_after`` says when to come back.
        """
        username = validate_username(username)
        validate_password(password, username)
        key = username_key(username)
        # Usernames are public (every item card names its seller), so saying "taken" before the
        # hash reveals nothing new, and spares a hash and a sign-up slot on a name clash.
        taken = await self._db.fetchone("SELECT 1 FROM users WHERE username_key = ?", (key,))
        if taken is not None:
            raise Conflict(f"The username {username!r} is taken")
        where = address_key(address) if address is not None else "server"
        # Counted before the hash, so sign-ups sent at once cannot all pass the limit.
        slot = self.signups.reserve(where) if address is not None else None
        try:
            encoded = await self.password_work.hash(password, where)
        except RateLimited:
            if slot is not None:
                slot.release()  # nothing was hashed: the attempt costs the client nothing
            raise
        now = self._clock()
        try:
            async with self._db.transaction() as conn:
                cursor = await conn.execute(
                    "INSERT INTO users (username, username_key, password_hash, created_at,"
                    " password_changed_at) VALUES (?, ?, ?, ?, ?)",
                    (username, key, encoded, now, now),
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
        The attempt is reserved before the check and counts as a failure unless it succeeds, so
        attempts sent at once cannot outrun the failed-login limits.
        """
        key = username_key(username)
        where = address_key(address)
        attempt = self.throttle.reserve(key, where)
        try:
            row = None
            # A name that create refuses belongs to no account, even if its key matches one
            # ("gloß" folds to "gloss"): login accepts exactly the spellings create does.
            if is_valid_username(username):
                row = await self._db.fetchone(
                    "SELECT id, username, password_hash, is_admin FROM users"
                    " WHERE username_key = ?",
                    (key,),
                )
            encoded = str(row["password_hash"]) if row else DUMMY_HASH
            try:
                ok = await self.password_work.verify(password, encoded, where)
            except RateLimited:
                attempt.release()  # refused before any work: not a guess
                raise
            if row is None or not ok:
                attempt.failed()
                raise Unauthenticated(_GENERIC_LOGIN_FAILURE)
            attempt.succeeded()
        finally:
            attempt.failed()  # cut short (the client dropped, an error): it counts; else no-op
        return await self._open_session(int(row["id"]), str(row["username"]), bool(row["is_admin"]))

    async def _open_session(
        self, user_id: int, username: str, is_admin: bool
    ) -> tuple[str, Principal, float]:
        token = secrets.token_urlsafe(32)
        token_hash = hash_token(token)
        now = self._clock()
        expires_at = now + self._policy.absolute_expiry
        await self._db.execute(_INSERT_SESSION, (token_hash, user_id, now, now, expires_at))
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
        if live.expired(now, self._policy.idle_expiry):
            await self._revoke(token_hash, SessionEndReason.EXPIRED)
            raise Unauthenticated(END_MESSAGES[SessionEndReason.EXPIRED])
        if now - live.last_seen_at >= min(TOUCH_INTERVAL, self._policy.idle_expiry / 4):
            live.last_seen_at = now
            await self._db.execute(
                "UPDATE sessions SET last_seen_at = ? WHERE token_hash = ?", (now, token_hash)
            )
        return live.principal, live

    def current(self, principal: Principal) -> Principal | None:
        """The session's principal as it stands now, or ``None`` once the session has ended.

        Cheap and synchronous, for the event delivery path: it looks only at the sessions held
        in memory, where every session bound to a connection is. A session found expired is
        ended here (listeners told); its row goes at the next sweep.
        """
        live = self._live.get(principal.token_hash)
        if live is None:
            return None
        if live.expired(self._clock(), self._policy.idle_expiry):
            self._expire([principal.token_hash])
            return None
        return live.principal

    def on_session_end(self, listener: SessionEndListener) -> None:
        """Call ``listener`` with the token hashes and the reason whenever sessions end.

        It is called synchronously as the sessions are forgotten, before anything else runs on
        the event loop, so nothing can reach their connections in between.
        """
        self._end_listeners.append(listener)

    def _end(self, token_hashes: Collection[bytes], reason: SessionEndReason) -> None:
        """Forget sessions in memory and tell the listeners; the caller deletes their rows."""
        if not token_hashes:
            return
        for token_hash in token_hashes:
            self._live.pop(token_hash, None)
        for listener in list(self._end_listeners):
            try:
                listener(token_hashes, reason)
            except Exception:  # a broken listener must not undo a logout or a password change
                log.exception("session end listener failed")

    def _expire(self, token_hashes: Collection[bytes]) -> None:
        self._expired_rows.update(token_hashes)
        self._end(token_hashes, SessionEndReason.EXPIRED)

    async def _revoke(self, token_hash: bytes, reason: SessionEndReason) -> None:
        async with self._ending:
            self._end([token_hash], reason)
            await self._db.execute("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))

    async def sweep(self) -> None:
        """End the sessions that expired unused, and those another process deleted.

        A connection whose session expires while it sends nothing is told within one sweep
        interval. A session whose row is gone without this process deleting it (an
        administrator's command run beside the server) ends with ``revoked``.
        """
        async with self._ending:
            now = self._clock()
            idle = self._policy.idle_expiry
            self._expire([h for h, live in self._live.items() if live.expired(now, idle)])
            if self._expired_rows:
                rows, self._expired_rows = self._expired_rows, set()
                await self._db.executemany(
                    "DELETE FROM sessions WHERE token_hash = ?", [(h,) for h in rows]
                )
            cached = list(self._live)
            stored: set[bytes] = set()
            for start in range(0, len(cached), _SWEEP_CHUNK):
                chunk = cached[start : start + _SWEEP_CHUNK]
                marks = ", ".join("?" * len(chunk))
                rows_found = await self._db.fetchall(
                    f"SELECT token_hash FROM sessions WHERE token_hash IN ({marks})", chunk
                )
                stored.update(bytes(row["token_hash"]) for row in rows_found)
            gone = [h for h in cached if h not in stored and h in self._live]
            self._end(gone, SessionEndReason.REVOKED)

    async def sweep_forever(self) -> None:
        """Run :meth:`sweep` every ``SessionPolicy.sweep_interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self._policy.sweep_interval)
            try:
                await self.sweep()
            except Exception:  # e.g. a locked database: the next sweep tries again
                log.exception("session sweep failed")

    async def logout(self, principal: Principal) -> None:
        """Revoke the principal's session."""
        await self._revoke(principal.token_hash, SessionEndReason.LOGGED_OUT)

    async def revoke_user_sessions(self, user_id: int) -> None:
        """End every session of a user (an administrator's action): reason ``revoked``."""
        async with self._ending:
            self._end(
                [h for h, s in self._live.items() if s.principal.user_id == user_id],
                SessionEndReason.REVOKED,
            )
            await self._db.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))

    async def change_password(
        self,
        principal: Principal,
        old_password: str,
        new_password: str,
        address: str,
        *,
        rebind: Callable[[Principal], None] | None = None,
    ) -> tuple[str, Principal, float]:
        """Change the password, revoke every session of the user and open a fresh one.

        Args:
            rebind: Called with the new session's principal just before the old sessions are
                announced as ended, so the connection that changed the password carries on
                under the new session (subscriptions and all) instead of being ended too.
        """
        key = username_key(principal.username)
        where = address_key(address)
        self.throttle.check(key, where)
        validate_password(new_password, principal.username)
        attempt = self.throttle.reserve(key, where)
        try:
            row = await self._db.fetchone(
                "SELECT password_hash FROM users WHERE id = ?", (principal.user_id,)
            )
            if row is None:
                attempt.release()
                raise Unauthenticated("Your account no longer exists")
            try:
                ok = await self.password_work.verify(old_password, str(row["password_hash"]), where)
            except RateLimited:
                attempt.release()
                raise
            if not ok:
                attempt.failed()
                raise Unauthenticated("The current password is wrong")
            attempt.succeeded()
        finally:
            attempt.failed()  # cut short: it counts; else no-op
        encoded = await self.password_work.hash(new_password, where)
        token = secrets.token_urlsafe(32)
        token_hash = hash_token(token)
        now = self._clock()
        expires_at = now + self._policy.absolute_expiry
        async with self._ending:
            # One transaction: the password never changes without the fresh session.
            async with self._db.transaction() as conn:
                await conn.execute(
                    "UPDATE users SET password_hash = ?, password_changed_at = ? WHERE id = ?",
                    (encoded, now, principal.user_id),
                )
                await conn.execute("DELETE FROM sessions WHERE user_id = ?", (principal.user_id,))
                await conn.execute(
                    _INSERT_SESSION, (token_hash, principal.user_id, now, now, expires_at)
                )
            ended = [h for h, s in self._live.items() if s.principal.user_id == principal.user_id]
            fresh = Principal(principal.user_id, principal.username, principal.is_admin, token_hash)
            self._live[token_hash] = _LiveSession(fresh, now, now, expires_at)
            if rebind is not None:
                rebind(fresh)
            self._end(ended, SessionEndReason.PASSWORD_CHANGED)
        return token, fresh, expires_at

    async def issue_session(self, username: str) -> tuple[str, Principal]:
        """Open a session for ``username`` without a password (server-side tools only).

        Raises:
            NotFound: there is no such user.
        """
        row = await self._db.fetchone(
            "SELECT id, username, is_admin FROM users WHERE username_key = ?",
            (username_key(username),),
        )
        if row is None:
            raise NotFound(f"No user named {username!r}")
        token, principal, _ = await self._open_session(
            int(row["id"]), str(row["username"]), bool(row["is_admin"])
        )
        return token, principal

    async def set_admin(self, username: str, is_admin: bool = True) -> UserInfo:
        """Grant (or take away) the admin role; used by ``pixmart-server admin add``.

        Taking the role away ends the user's sessions (reason ``revoked``): no connection goes
        on acting, or hearing of private items, as an admin. A server running beside the
        command notices at its next sweep.
        """
        row = await self._db.fetchone(
            "SELECT id, username, created_at, is_admin FROM users WHERE username_key = ?",
            (username_key(username),),
        )
        if row is None:
            raise NotFound(f"No user named {username!r}")
        user_id = int(row["id"])
        await self._db.execute(
            "UPDATE users SET is_admin = ? WHERE id = ?", (int(is_admin), user_id)
        )
        if is_admin:
            # Sessions held in memory carry the role: the next request or event sees the grant.
            for live in self._live.values():
                if live.principal.user_id == user_id:
                    live.principal = dataclasses.replace(live.principal, is_admin=True)
        elif row["is_admin"]:
            await self.revoke_user_sessions(user_id)
        return UserInfo(
            id=int(row["id"]),
            username=str(row["username"]),
            is_admin=is_admin,
            created_at=float(row["created_at"]),
        )
