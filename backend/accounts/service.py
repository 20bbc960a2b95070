"""Provides the account service: create, log in, resume, log out, change password, admins.

Sessions end by logout, a password change, expiry (idle or absolute) or an administrator; every
ending is announced to the ``on_session_end`` listeners at the moment the session is forgotten,
so the server can stop the live events of the connections still logged in with it.

Endings by logout, password change or administrator are also shared with the other server
instances (:meth:`AccountService.share_ends_with`), which end the same sessions at once
(:meth:`AccountService.forget_sessions`, :meth:`AccountService.forget_user_sessions`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import re
import secrets
import time
import unicodedata
from collections.abc import Callable, Collection
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from backend.accounts.hashing import PasswordWork
from backend.accounts.live import SessionsEndedFact, UserSessionsEndedFact
from backend.accounts.passwords import DUMMY_HASH
from backend.accounts.repository import (
    AccountRepository,
    NewSession,
    SessionRepository,
    UsernameTaken,
    UserRecord,
)
from backend.accounts.shared_throttle import EventCounter, SharedLimits
from backend.accounts.throttle import LoginThrottle, SignupLimiter
from backend.addresses import address_key
from backend.auth import END_MESSAGES

# Principal lives with the authenticator interface, on which the request path depends instead
# of this package; re-exported here for the domains that import it from the account service.
from backend.auth import Principal as Principal
from backend.config import SessionPolicy
from backend.eventbus import Fact
from backend.safetext import refuse_hidden
from protocol.errors import BadRequest, Conflict, NotFound, RateLimited, Unauthenticated
from protocol.messages.accounts import SessionEndReason, UserInfo

log = logging.getLogger(__name__)

USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,31}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
#: ``last_seen_at`` is written at most this often per session (it feeds the idle expiry).
TOUCH_INTERVAL = 60.0
_GENERIC_LOGIN_FAILURE = "Wrong username or password"

#: Told the token hashes of sessions that just ended, and why.
SessionEndListener = Callable[[Collection[bytes], SessionEndReason], None]


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
        users: AccountRepository,
        sessions: SessionRepository,
        policy: SessionPolicy,
        *,
        clock: Callable[[], float] = time.time,
        counter: EventCounter | None = None,
        exclusive_job: Callable[[str], AbstractAsyncContextManager[bool]] | None = None,
    ) -> None:
        """Build the service over its storage (see :mod:`backend.accounts.repositories`).

        Args:
            users: The stored users.
            sessions: The stored sessions, of the same database as ``users``.
            policy: Lifetimes of sessions and the limits on logins, sign-ups and hashing.
            clock: Epoch seconds now; tests pass a fake one.
            counter: Where the login and sign-up limits are also counted for every instance
                of the shop (PostgreSQL); ``None`` for a single server.
            exclusive_job: Enters a background job if no other instance is running it
                (``StorageEngine.exclusive_job``); ``None``: always this process.
        """
        self._users = users
        self._sessions = sessions
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
        #: The same limits counted across instances (does nothing without a ``counter``).
        self.shared_limits = SharedLimits(
            counter,
            max_failures_per_account=policy.max_failures_per_account,
            max_failures_per_address=policy.max_failures_per_address,
            failure_window=policy.failure_window,
            max_accounts_per_address=policy.max_accounts_per_address,
            max_accounts_total=policy.max_accounts_total,
            account_window=policy.account_window,
        )
        self._exclusive_job = exclusive_job
        #: Every Argon2id hash and check runs through here, a bounded number at once.
        self.password_work = PasswordWork(
            workers=policy.password_hash_workers,
            max_waiting=policy.password_hash_queue,
            per_address=policy.password_hashes_per_address,
        )
        #: Every session bound to a connection is held here until it ends.
        self._live: dict[bytes, _LiveSession] = {}
        self._end_listeners: list[SessionEndListener] = []
        self._share: Callable[[Fact], None] | None = None
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
        if await self._users.by_key(key) is not None:
            raise Conflict(f"The username {username!r} is taken")
        where = address_key(address) if address is not None else "server"
        # Counted before the hash, so sign-ups sent at once cannot all pass the limit.
        slot = self.signups.reserve(where) if address is not None else None
        try:
            shared = await self.shared_limits.signup(where) if address is not None else None
        except RateLimited:
            if slot is not None:
                slot.release()
            raise
        try:
            encoded = await self.password_work.hash(password, where)
        except RateLimited:
            if slot is not None:
                slot.release()  # nothing was hashed: the attempt costs the client nothing
            if shared is not None:
                await shared.release()
            raise
        try:
            user = await self._users.create(username, key, encoded, self._clock())
        except UsernameTaken:  # created meanwhile, by a request sent at the same time
            raise Conflict(f"The username {username!r} is taken") from None
        return _user_info(user)

    async def login(
        self, username: str, password: str, address: str
    ) -> tuple[str, Principal, float]:
        """Check the password and open a session; return (token, principal, expires_at).

        An unknown user and a wrong password give the same error after the same amount of work.
        The attempt is reserved in this process before the check and counts as a failure unless
        it succeeds, so attempts sent at once cannot outrun the failed-login limits; the limits
        shared with other instances are checked first and count the failures.
        """
        key = username_key(username)
        where = address_key(address)
        attempt = self.throttle.reserve(key, where)
        try:
            shared = await self.shared_limits.login_attempt(key, where, known=attempt.known)
        except BaseException:
            attempt.release()  # refused by the shop-wide limit before any work
            raise
        try:
            user = None
            # A name that create refuses belongs to no account, even if its key matches one
            # ("gloß" folds to "gloss"): login accepts exactly the spellings create does.
            if is_valid_username(username):
                user = await self._users.by_key(key)
            encoded = user.password_hash if user is not None else DUMMY_HASH
            try:
                ok = await self.password_work.verify(password, encoded, where)
            except RateLimited:
                attempt.release()  # refused before any work: not a guess
                raise
            if user is None or not ok:
                attempt.failed()
                await shared.failed()
                raise Unauthenticated(_GENERIC_LOGIN_FAILURE)
            attempt.succeeded()
            await shared.succeeded()
        finally:
            attempt.failed()  # cut short (the client dropped, an error): it counts; else no-op
        return await self._open_session(user)

    def _new_session(self, user_id: int) -> tuple[str, NewSession]:
        """A fresh token and the session to store for it, starting now."""
        token = secrets.token_urlsafe(32)
        now = self._clock()
        return token, NewSession(
            hash_token(token), user_id, now, now + self._policy.absolute_expiry
        )

    def _hold(self, session: NewSession, principal: Principal) -> None:
        """Keep a session just stored in memory, as bound to a connection."""
        self._live[session.token_hash] = _LiveSession(
            principal, session.created_at, session.created_at, session.expires_at
        )

    async def _open_session(self, user: UserRecord) -> tuple[str, Principal, float]:
        token, session = self._new_session(user.id)
        await self._sessions.create(session)
        principal = Principal(user.id, user.username, user.is_admin, session.token_hash)
        self._hold(session, principal)
        # Past the cap, the sessions used longest ago end (their connections are told).
        surplus = await self._sessions.surplus_of_user(user.id, self._policy.max_sessions_per_user)
        for token_hash in surplus:
            if token_hash != session.token_hash:
                await self._revoke(token_hash, SessionEndReason.REVOKED)
        return token, principal, session.expires_at

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
            stored = await self._sessions.find(token_hash)
            if stored is None:
                raise Unauthenticated("Your session has ended; please log in again")
            principal = Principal(stored.user_id, stored.username, stored.is_admin, token_hash)
            live = _LiveSession(
                principal, stored.created_at, stored.last_seen_at, stored.expires_at
            )
            self._live[token_hash] = live
        if live.expired(now, self._policy.idle_expiry):
            await self._revoke(token_hash, SessionEndReason.EXPIRED)
            raise Unauthenticated(END_MESSAGES[SessionEndReason.EXPIRED])
        if now - live.last_seen_at >= min(TOUCH_INTERVAL, self._policy.idle_expiry / 4):
            live.last_seen_at = now
            await self._sessions.touch(token_hash, now)
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

    def share_ends_with(self, share: Callable[[Fact], None]) -> None:
        """Tell ``share`` (the event bus) of sessions ended here by logout, password change or
        administrator, once their rows are gone. Expiry is not shared: every instance sees it.
        """
        self._share = share

    def _shared(self, fact: Fact) -> None:
        if self._share is not None:
            self._share(fact)

    def forget_sessions(self, token_hashes: Collection[bytes], reason: SessionEndReason) -> None:
        """End sessions another instance ended: forget those held here and tell the listeners."""
        self._end([h for h in token_hashes if h in self._live], reason)

    def forget_user_sessions(
        self, user_id: int, reason: SessionEndReason, *, keep: bytes | None = None
    ) -> None:
        """End the user's sessions held here but ``keep``, as another instance ended them."""
        self._end(
            [
                h
                for h, live in self._live.items()
                if live.principal.user_id == user_id and h != keep
            ],
            reason,
        )

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
            await self._sessions.delete([token_hash])
        if reason is not SessionEndReason.EXPIRED:
            self._shared(SessionsEndedFact(token_hashes=[token_hash], reason=reason))

    async def sweep(self) -> None:
        """End the sessions that expired unused, and those another process deleted.

        A connection whose session expires while it sends nothing is told within one sweep
        interval. A session whose row is gone without this process deleting it (an
        administrator's command run beside the server) ends with ``revoked``. Last, the rows
        of every expired session go, those no process held too.
        """
        async with self._ending:
            now = self._clock()
            idle = self._policy.idle_expiry
            self._expire([h for h, live in self._live.items() if live.expired(now, idle)])
            if self._expired_rows:
                rows, self._expired_rows = self._expired_rows, set()
                await self._sessions.delete(rows)
            cached = list(self._live)
            stored = await self._sessions.stored(cached)
            gone = [h for h in cached if h not in stored and h in self._live]
            self._end(gone, SessionEndReason.REVOKED)
            # After the check, not before: a row deleted here is of a session that every
            # process holding it finds expired by its next sweep (no process saw it used
            # later than the row says), so none mistakes the missing row for a revocation.
            await self._delete_expired(now, idle)

    async def _delete_expired(self, now: float, idle: float) -> None:
        """Delete the rows of expired sessions: one instance of the shop at a time (the rest
        of a sweep looks at this process's memory, so every instance runs it)."""
        if self._exclusive_job is None:
            await self._sessions.delete_expired(now, idle)
            return
        async with self._exclusive_job("accounts.delete-expired-sessions") as mine:
            if mine:
                await self._sessions.delete_expired(now, idle)

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
            await self._sessions.delete_of_user(user_id)
        self._shared(UserSessionsEndedFact(user_id=user_id, reason=SessionEndReason.REVOKED))

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
            shared = await self.shared_limits.login_attempt(key, where, known=attempt.known)
        except BaseException:
            attempt.release()
            raise
        try:
            user = await self._users.by_id(principal.user_id)
            if user is None:
                attempt.release()
                raise Unauthenticated("Your account no longer exists")
            try:
                ok = await self.password_work.verify(old_password, user.password_hash, where)
            except RateLimited:
                attempt.release()
                raise
            if not ok:
                attempt.failed()
                await shared.failed()
                raise Unauthenticated("The current password is wrong")
            attempt.succeeded()
            await shared.succeeded()
        finally:
            attempt.failed()  # cut short: it counts; else no-op
        encoded = await self.password_work.hash(new_password, where)
        token, session = self._new_session(principal.user_id)
        async with self._ending:
            await self._users.change_password(principal.user_id, encoded, session)
            ended = [h for h, s in self._live.items() if s.principal.user_id == principal.user_id]
            fresh = dataclasses.replace(principal, token_hash=session.token_hash)
            self._hold(session, fresh)
            if rebind is not None:
                rebind(fresh)
            self._end(ended, SessionEndReason.PASSWORD_CHANGED)
        self._shared(
            UserSessionsEndedFact(
                user_id=principal.user_id,
                reason=SessionEndReason.PASSWORD_CHANGED,
                keep=session.token_hash,
            )
        )
        return token, fresh, session.expires_at

    async def issue_session(self, username: str) -> tuple[str, Principal]:
        """Open a session for ``username`` without a password (server-side tools only).

        Raises:
            NotFound: there is no such user.
        """
        user = await self._find(username)
        token, principal, _ = await self._open_session(user)
        return token, principal

    async def set_admin(self, username: str, is_admin: bool = True) -> UserInfo:
        """Grant (or take away) the admin role; used by ``pixmart-server admin add``.

        Taking the role away ends the user's sessions (reason ``revoked``): no connection goes
        on acting, or hearing of private items, as an admin. A server running beside the
        command notices at its next sweep, or at once if the command shares the ending
        (:meth:`share_ends_with`, as ``pixmart-server admin`` does on PostgreSQL).
        """
        user = await self._find(username)
        await self._users.set_admin(user.id, is_admin)
        if is_admin:
            # Sessions held in memory carry the role: the next request or event sees the grant.
            for live in self._live.values():
                if live.principal.user_id == user.id:
                    live.principal = dataclasses.replace(live.principal, is_admin=True)
        elif user.is_admin:
            await self.revoke_user_sessions(user.id)
        return _user_info(dataclasses.replace(user, is_admin=is_admin))

    async def _find(self, username: str) -> UserRecord:
        """The user named ``username`` (compared by :func:`username_key`).

        Raises:
            NotFound: there is no such user.
        """
        user = await self._users.by_key(username_key(username))
        if user is None:
            raise NotFound(f"No user named {username!r}")
        return user


def _user_info(user: UserRecord) -> UserInfo:
    """The public view of a stored user."""
    return UserInfo(
        id=user.id, username=user.username, is_admin=user.is_admin, created_at=user.created_at
    )
