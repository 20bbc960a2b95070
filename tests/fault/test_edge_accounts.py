"""Edge attacks on accounts and the text they carry (issue #13, items 1, 3 and 9).

Each test replays an attack the review ran against a live server on loopback:

* 64 wrong-password logins for one account sent at once over 4 connections (twice): the
  failed-login limit holds, because each attempt is reserved before its Argon2id check runs;
* a flood of logins from several addresses: Argon2id work runs a bounded number at a time
  server-wide, and what does not fit is answered ``rate_limited`` with a retry-after; a client
  that drops mid-check does not free its worker before the hash is done;
* an account-creation flood from one address (``127.0.0.2``): it is cut at the per-address
  limit while a normal client on ``127.0.0.1`` signs up and logs in quickly; a global limit
  holds across addresses;
* titles, descriptions, tags and usernames with bidirectional overrides or zero-width
  characters are refused; usernames compare after NFKC and case folding on create and login;
* per-user quotas on unfinished uploads, in number and in declared bytes, hold under
  concurrency.

The attackers are raw WebSocket peers bound to another loopback address, so per-address limits
can be told apart from the normal client's. Password hashing keeps its production cost.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from backend.accounts import passwords
from backend.accounts.hashing import PasswordWork
from backend.config import Limits, ServerConfig, SessionPolicy
from backend.server import PixmartServer
from protocol import codec
from protocol.catalogue_client import browse
from protocol.errors import (
    BadRequest,
    Conflict,
    ErrorCode,
    RateLimited,
    Unauthenticated,
    Unavailable,
)
from protocol.messages.accounts import AccountCreated, CreateAccount, LoggedIn, Login
from protocol.messages.base import (
    PROTOCOL_VERSION,
    ErrorReply,
    Hello,
    Ok,
    Reply,
    Request,
    Welcome,
)
from protocol.messages.catalogue import (
    BeginUpload,
    CancelUpload,
    EditItem,
    ItemUpdated,
    UploadState,
)
from tests.conftest import SessionFactory, logged_in
from tests.fault.conftest import raw_peer
from tests.support import pinned_session, running_server, user_count
from tests.support.catalogue import jpeg, meta, upload

PASSWORD = "password123"
NORMAL = "127.0.0.1"
ATTACKER = "127.0.0.2"


@pytest.fixture
def server_config(server_config: ServerConfig) -> ServerConfig:
    """The production account policy and limits, whatever the shared test config relaxes."""
    return replace(server_config, sessions=SessionPolicy(), limits=Limits())


# -- helpers ---------------------------------------------------------------------------------


class Argon2Probe:
    """Counts Argon2id runs and the most that ran at once, by wrapping cryptography's KDF.

    ``passwords`` looks ``Argon2id`` up at every call, so this sees every hash and verification
    however the server schedules them.
    """

    def __init__(self) -> None:
        self.verifications = 0
        self.hashes = 0
        self.running = 0
        self.peak = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def _run(self, *, verify: bool) -> Iterator[None]:
        with self._lock:
            if verify:
                self.verifications += 1
            else:
                self.hashes += 1
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            yield
        finally:
            with self._lock:
                self.running -= 1

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Put the counting wrapper in place of ``Argon2id`` in ``backend.accounts.passwords``."""
        probe = self

        class CountingArgon2id:
            def __init__(self, **kwargs: int | bytes) -> None:
                self._kdf = Argon2id(**kwargs)  # type: ignore[arg-type]

            def derive_phc_encoded(self, key_material: bytes) -> str:
                with probe._run(verify=False):
                    return self._kdf.derive_phc_encoded(key_material)

            @staticmethod
            def verify_phc_encoded(key_material: bytes, encoded: str) -> None:
                with probe._run(verify=True):
                    Argon2id.verify_phc_encoded(key_material, encoded)

        monkeypatch.setattr(passwords, "Argon2id", CountingArgon2id)


def _code(reply: Reply) -> str:
    return reply.code.value if isinstance(reply, ErrorReply) else type(reply).__name__


async def flood(
    server: PixmartServer, batches: Sequence[Sequence[Request]], host: str = ATTACKER
) -> list[Reply]:
    """Send each batch at once on its own raw connection from ``host``; return every reply.

    Request ids must be unique within a batch and not 1 (the hello's).
    """
    open_peer = raw_peer(server)

    async def one(batch: Sequence[Request]) -> list[Reply]:
        async with open_peer(local_addr=(host, 0), open_timeout=10) as ws:
            hello = Hello(id=1, version=PROTOCOL_VERSION, client_id=secrets.token_hex(16))
            await ws.send(codec.encode(hello))
            assert isinstance(codec.decode(await ws.recv()), Welcome)
            for request in batch:
                await ws.send(codec.encode(request))
            replies: list[Reply] = []
            async with asyncio.timeout(60):
                while len(replies) < len(batch):
                    message = codec.decode(await ws.recv())
                    if isinstance(message, Reply):
                        replies.append(message)
            return replies

    results = await asyncio.gather(*(one(batch) for batch in batches))
    return [reply for replies in results for reply in replies]


async def call(server: PixmartServer, request: Request, host: str) -> Reply:
    """One request on a fresh raw connection from ``host``."""
    (reply,) = await flood(server, [[request]], host)
    return reply


def _retry_afters(replies: Sequence[Reply]) -> list[float | None]:
    return [
        r.retry_after
        for r in replies
        if isinstance(r, ErrorReply) and r.code is ErrorCode.RATE_LIMITED
    ]


# -- item 1: failed-login limits under concurrency -------------------------------------------


async def test_concurrent_wrong_logins_cannot_outrun_the_account_limit(
    server: PixmartServer, make_session: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    await (await make_session()).create_account("victim", "victim-password")
    probe = Argon2Probe()
    probe.install(monkeypatch)
    batches = [
        [Login(id=2 + i, username="victim", password=f"guess-{c}-{i}") for i in range(16)]
        for c in range(4)
    ]

    # The attack twice over: what was refused as "in progress" the first time finds the
    # account's limit reached the second time.
    replies = await flood(server, batches)
    replies += await flood(server, batches)

    codes = collections.Counter(_code(reply) for reply in replies)
    limit = server.config.sessions.max_failures_per_account
    # Every attempt past the account's limit is refused before its hash, in flight or not.
    assert probe.verifications <= limit, (probe.verifications, codes)
    assert codes[ErrorCode.UNAUTHENTICATED.value] == probe.verifications
    assert codes[ErrorCode.RATE_LIMITED.value] == 128 - probe.verifications
    assert all(wait is not None and wait > 0 for wait in _retry_afters(replies))
    # The limit was used up, so even the right password waits out the lockout now.
    reply = await call(server, Login(id=2, username="victim", password="victim-password"), NORMAL)
    assert _code(reply) == ErrorCode.RATE_LIMITED.value


async def test_a_stranger_locking_the_account_out_does_not_lock_out_its_owner(
    server: PixmartServer, make_session: SessionFactory
) -> None:
    """Five wrong guesses from anywhere locked the account for a minute for everyone, and a
    stranger repeating them every minute kept its owner out for good. The owner's address,
    where it logged in before, now has its own count for the account."""
    owner = await make_session()
    await owner.create_account("owner", "owner-password")
    await owner.login("owner", "owner-password")  # from 127.0.0.1
    limit = server.config.sessions.max_failures_per_account
    for i in range(limit):  # one after another, each a password check
        guess = Login(id=2, username="owner", password=f"guess-{i}")
        assert _code(await call(server, guess, ATTACKER)) == ErrorCode.UNAUTHENTICATED.value
    # Locked for strangers, the right password included ...
    right = Login(id=2, username="owner", password="owner-password")
    assert _code(await call(server, right, ATTACKER)) == ErrorCode.RATE_LIMITED.value
    assert _code(await call(server, right, "127.0.0.3")) == ErrorCode.RATE_LIMITED.value
    # ... not for the owner where it logged in before.
    assert isinstance(await call(server, right, NORMAL), LoggedIn)
    # A guesser on the owner's address meets the account's limit there as before.
    for i in range(limit):
        guess = Login(id=2, username="owner", password=f"again-{i}")
        assert _code(await call(server, guess, NORMAL)) == ErrorCode.UNAUTHENTICATED.value
    assert _code(await call(server, right, NORMAL)) == ErrorCode.RATE_LIMITED.value


async def test_logging_in_again_and_again_keeps_a_bounded_number_of_sessions(
    server_config: ServerConfig,
) -> None:
    """Every login stored a session, kept in memory while used: a script logging in again and
    again grew both without end. Past the cap, the session used longest ago ends."""
    policy = replace(server_config.sessions, max_sessions_per_user=3)
    async with running_server(replace(server_config, sessions=policy)) as server:
        async with pinned_session(server) as owner:
            await owner.create_account("sessions-owner", PASSWORD)
            await owner.login("sessions-owner", PASSWORD)  # from 127.0.0.1
            tokens = []
            login = Login(id=2, username="sessions-owner", password=PASSWORD)
            for _ in range(5):  # one after another from the attacker's address
                reply = await call(server, login, ATTACKER)
                assert isinstance(reply, LoggedIn), reply
                tokens.append(reply.token)
                user_id = reply.user.id
            sessions = server.accounts._sessions
            assert await sessions.count_of_user(user_id) == 3
            # The oldest ended, the owner's first one with them; the newest still work.
            with pytest.raises(Unauthenticated):
                await server.accounts.resume(tokens[1])
            await server.accounts.resume(tokens[2])
            with pytest.raises(Unauthenticated):
                await owner.whoami()
            await owner.login("sessions-owner", PASSWORD)  # the owner simply logs in again
            await owner.whoami()
            assert await sessions.count_of_user(user_id) == 3


async def test_password_checks_run_a_bounded_number_at_a_time(
    server: PixmartServer, make_session: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = await make_session()
    await good.create_account("steady", PASSWORD)
    probe = Argon2Probe()
    probe.install(monkeypatch)
    # Four addresses, each with 16 logins for names that do not exist (so no account limit).
    hosts = [f"127.0.0.{n}" for n in range(2, 6)]
    batches = [
        [Login(id=2 + i, username=f"nobody-{n}-{i}", password=PASSWORD) for i in range(16)]
        for n in range(len(hosts))
    ]

    async def normal_login() -> float:
        await asyncio.sleep(0.05)  # while the flood is being answered
        started = time.perf_counter()
        await good.login("steady", PASSWORD)
        return time.perf_counter() - started

    results, normal_seconds = await asyncio.gather(
        asyncio.gather(
            *(flood(server, [batch], host) for batch, host in zip(batches, hosts, strict=True))
        ),
        normal_login(),
    )

    replies = [reply for batch in results for reply in batch]
    codes = collections.Counter(_code(reply) for reply in replies)
    policy = server.config.sessions
    assert probe.peak <= policy.password_hash_workers, (probe.peak, codes)
    # What did not fit in the queue was told to come back, not left waiting.
    assert codes[ErrorCode.UNAUTHENTICATED.value] + codes[ErrorCode.RATE_LIMITED.value] == 64
    assert codes[ErrorCode.RATE_LIMITED.value] > 0
    assert all(wait is not None and 0 < wait <= 2.0 for wait in _retry_afters(replies))
    assert normal_seconds < 2.0, normal_seconds


async def test_a_dropped_check_keeps_its_worker_until_argon2id_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = threading.Event()
    started = threading.Event()

    def slow_verify(password: str, encoded: str) -> bool:
        started.set()
        release.wait(5)
        return False

    monkeypatch.setattr(passwords, "verify_password", slow_verify)
    work = PasswordWork(workers=1, max_waiting=1, per_address=10)
    first = asyncio.create_task(work.verify("guess", "x", "192.0.2.1"))
    assert await asyncio.to_thread(started.wait, 5)
    first.cancel()  # the client dropped while its password was being checked
    with contextlib.suppress(asyncio.CancelledError):
        await first
    # The thread is still busy: the next check waits for it instead of running beside it...
    second = asyncio.create_task(work.verify("guess", "x", "192.0.2.2"))
    await asyncio.sleep(0.05)
    assert not second.done()
    # ... and with the queue full, a third is told when to come back instead of queueing.
    with pytest.raises(RateLimited) as busy:
        await work.verify("guess", "x", "192.0.2.3")
    assert busy.value.retry_after is not None and 0 < busy.value.retry_after <= 2.0
    release.set()
    assert await second is False
    assert work.runs == 2


async def test_new_passwords_leave_logins_half_of_the_queue(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A sign-up flood from many addresses cannot take the places logins need."""
    release = threading.Event()
    monkeypatch.setattr(passwords, "hash_password", lambda password: release.wait(5) and "h")
    monkeypatch.setattr(passwords, "verify_password", lambda password, encoded: False)
    work = PasswordWork(workers=1, max_waiting=4, per_address=10)
    signups = [asyncio.create_task(work.hash("pw", f"192.0.2.{n}")) for n in range(2)]
    await asyncio.sleep(0.05)
    with pytest.raises(RateLimited):
        await work.hash("pw", "192.0.2.99")  # half of the 4 places hold new passwords already
    login = asyncio.create_task(work.verify("pw", "x", "198.51.100.1"))
    await asyncio.sleep(0.05)
    assert not login.done()  # queued, not refused
    release.set()
    assert await asyncio.gather(*signups) == ["h", "h"]
    assert await login is False


# -- item 3: account creation ----------------------------------------------------------------


async def test_an_account_creation_flood_from_one_address_leaves_others_served(
    server: PixmartServer, make_session: SessionFactory
) -> None:
    batches = [
        [CreateAccount(id=2 + i, username=f"flood-{c}-{i}", password=PASSWORD) for i in range(16)]
        for c in range(8)
    ]

    async def normal_client() -> float:
        session = await make_session()
        await asyncio.sleep(0.05)  # while the flood is being answered
        started = time.perf_counter()
        await session.create_account("regular", PASSWORD)
        await session.login("regular", PASSWORD)
        return time.perf_counter() - started

    replies, normal_seconds = await asyncio.gather(flood(server, batches), normal_client())

    codes = collections.Counter(_code(reply) for reply in replies)
    created = codes[AccountCreated.__name__]
    assert created <= server.config.sessions.max_accounts_per_address, codes
    assert codes[ErrorCode.RATE_LIMITED.value] == 128 - created
    assert all(wait is not None and wait > 0 for wait in _retry_afters(replies))
    stored = await server.db.fetchone("SELECT COUNT(*) FROM users WHERE username LIKE 'flood-%'")
    assert stored is not None and int(stored[0]) == created
    assert await user_count(server, "regular") == 1
    assert normal_seconds < 2.0, normal_seconds


async def test_account_creation_has_a_global_limit_across_addresses(
    server_config: ServerConfig,
) -> None:
    config = replace(
        server_config,
        sessions=replace(server_config.sessions, max_accounts_per_address=2, max_accounts_total=3),
    )
    async with running_server(config) as server:
        outcomes: list[str] = []
        for n, host in enumerate(["127.0.0.2", "127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.4"]):
            reply = await call(
                server, CreateAccount(id=2, username=f"spread-{n}", password=PASSWORD), host
            )
            outcomes.append(_code(reply))
            if isinstance(reply, ErrorReply):
                assert reply.retry_after is not None and reply.retry_after > 0
    created, limited = AccountCreated.__name__, ErrorCode.RATE_LIMITED.value
    # Two from .2 (its own limit), one from .3 (the server's limit of three), none from .4.
    assert outcomes == [created, created, limited, created, limited]


# -- item 9: text a terminal shows -----------------------------------------------------------

HIDDEN = [
    "\u202e",  # RIGHT-TO-LEFT OVERRIDE
    "\u2066",  # LEFT-TO-RIGHT ISOLATE
    "\u200f",  # RIGHT-TO-LEFT MARK
    "\u200b",  # ZERO WIDTH SPACE
    "\u200d",  # ZERO WIDTH JOINER
    "\u2060",  # WORD JOINER
    "\ufeff",  # ZERO WIDTH NO-BREAK SPACE
]


@pytest.mark.parametrize("char", HIDDEN, ids=lambda c: f"U+{ord(c):04X}")
async def test_hidden_and_bidi_characters_are_refused_in_every_field(
    server: PixmartServer, make_session: SessionFactory, char: str
) -> None:
    session = await logged_in(make_session, "writer")

    async def begin(**fields: object) -> None:
        metadata = meta(**fields)  # type: ignore[arg-type]
        request = BeginUpload(sha256=secrets.token_hex(32), size=1000, metadata=metadata)
        await session.request(request, UploadState)

    with pytest.raises(BadRequest, match="title .*invisible or text-direction"):
        await begin(title=f"Sunset{char}gpj.exe")
    with pytest.raises(BadRequest, match="description .*invisible or text-direction"):
        await begin(title="Sunset", description=f"Lovely{char} light")
    with pytest.raises(BadRequest, match="tag .*invisible or text-direction"):
        await begin(title="Sunset", tags=[f"sky{char}"])
    with pytest.raises(BadRequest, match="username .*invisible or text-direction"):
        await session.create_account(f"ad{char}min", PASSWORD)
    assert await server.db.fetchone("SELECT 1 FROM uploads") is None


async def test_hidden_characters_are_refused_when_editing_an_item(
    make_session: SessionFactory, tmp_path: Path
) -> None:
    session = await logged_in(make_session, "editor")
    created = await upload(session, tmp_path, jpeg(3), "Harbour")
    item_id = created.item.id
    for fields in ({"title": "Harbour\u202egnp"}, {"description": "at\u200bdawn"}):
        with pytest.raises(BadRequest, match="invisible or text-direction"):
            await session.request(EditItem(item_id=item_id, **fields), ItemUpdated)  # type: ignore[arg-type]
    edited = await session.request(EditItem(item_id=item_id, title="Harbour at dawn"), ItemUpdated)
    assert edited.item.title == "Harbour at dawn"


async def test_usernames_compare_after_nfkc_and_case_folding(
    server: PixmartServer, make_session: SessionFactory
) -> None:
    session = await make_session()
    kate = await session.create_account("kate", PASSWORD)
    # U+212A KELVIN SIGN and fullwidth letters are the same name as "kate" after NFKC and
    # case folding: on login they reach that account, on create they are taken.
    for spelling in ("\u212aate", "\uff4b\uff41\uff54\uff45", "KATE"):
        assert (await session.login(spelling, PASSWORD)).id == kate.id
        with pytest.raises(Conflict):
            await session.create_account(spelling, "another-password")
    assert await user_count(server, "kate") == 1
    # A name whose NFKC form is a valid username is stored in that form.
    kelvin = await session.create_account("\u212aelvin", PASSWORD)
    assert kelvin.username == "Kelvin"
    assert (await session.login("kelvin", PASSWORD)).id == kelvin.id
    # Case folding alone is not enough: "ß" folds to "ss" but no username may hold it, so it
    # logs in nowhere (the same answer as an unknown user) instead of to "gloss".
    await session.create_account("gloss", PASSWORD)
    with pytest.raises(Unauthenticated, match="Wrong username or password"):
        await session.login("glo\u00df", PASSWORD)
    # Server-side tools look names up the same way.
    info = await server.accounts.set_admin("\u212aELVIN")
    assert info.id == kelvin.id and info.is_admin


# -- item 3: per-user quotas on unfinished uploads -------------------------------------------


async def test_unfinished_uploads_are_capped_per_user_even_when_begun_at_once(
    server: PixmartServer, make_session: SessionFactory
) -> None:
    session = await logged_in(make_session, "hoarder")
    cap = server.config.limits.max_open_uploads

    async def begin(n: int) -> str:
        request = BeginUpload(sha256=secrets.token_hex(32), size=1000, metadata=meta(f"Part {n}"))
        try:
            await session.request(request, UploadState)
        except Conflict as exc:
            assert exc.details is not None and exc.details["quota"] == "uploads"
            return "refused"
        return "begun"

    outcomes = collections.Counter(await asyncio.gather(*(begin(n) for n in range(cap + 8))))
    assert outcomes == {"begun": cap, "refused": 8}
    row = await server.db.fetchone("SELECT COUNT(*) FROM uploads")
    assert row is not None and int(row[0]) == cap


async def test_unfinished_upload_bytes_are_capped_per_user(
    server: PixmartServer, make_session: SessionFactory
) -> None:
    session = await logged_in(make_session, "big-spender")
    other = await logged_in(make_session, "bystander")
    limits = server.config.limits
    size = limits.max_upload_bytes
    fits = limits.max_open_upload_bytes // size
    states: list[UploadState] = []
    for n in range(fits):
        request = BeginUpload(sha256=secrets.token_hex(32), size=size, metadata=meta(f"Big {n}"))
        states.append(await session.request(request, UploadState))
    too_many = BeginUpload(sha256=secrets.token_hex(32), size=size, metadata=meta("One more"))
    with pytest.raises(Conflict) as refused:
        await session.request(too_many, UploadState)
    assert refused.value.details is not None and refused.value.details["quota"] == "bytes"
    # The quota is the user's own: someone else begins a large upload at the same time.
    await other.request(
        BeginUpload(sha256=secrets.token_hex(32), size=size, metadata=meta("Theirs")), UploadState
    )
    # Cancelling one frees its share.
    await session.request(CancelUpload(upload_id=states[0].upload_id), Ok)
    assert (await session.request(too_many, UploadState)).upload_id


async def test_unfinished_uploads_are_capped_shop_wide(server_config: ServerConfig) -> None:
    """Each user's unfinished uploads were bounded (256 MiB declared, held up to a day), but
    accounts come five an hour per address: nothing bounded them all together."""
    size = server_config.limits.max_upload_bytes
    config = replace(
        server_config,
        limits=replace(server_config.limits, max_open_upload_bytes_total=3 * size),
    )
    async with running_server(config) as server, pinned_session(server) as good:
        for name in ("hoarder-1", "hoarder-2"):
            await server.accounts.create_account(name, PASSWORD)
        await good.create_account("uploader", PASSWORD)
        await good.login("uploader", PASSWORD)
        open_peer = raw_peer(server)
        async with (
            open_peer(local_addr=(ATTACKER, 0)) as first,
            open_peer(local_addr=(ATTACKER, 0)) as second,
        ):
            begun: list[str] = []
            for ws, name in ((first, "hoarder-1"), (second, "hoarder-2")):
                await ws.send(
                    codec.encode(
                        Hello(id=1, version=PROTOCOL_VERSION, client_id=secrets.token_hex(16))
                    )
                )
                assert isinstance(codec.decode(await ws.recv()), Welcome)
                await ws.send(codec.encode(Login(id=2, username=name, password=PASSWORD)))
                assert isinstance(codec.decode(await ws.recv()), LoggedIn)
            for n, ws in enumerate((first, first, second, second)):
                await ws.send(
                    codec.encode(
                        BeginUpload(
                            id=10 + n,
                            sha256=secrets.token_hex(32),
                            size=size,
                            metadata=meta(f"Hoard {n}"),
                        )
                    )
                )
                reply = codec.decode(await ws.recv())
                if n < 3:
                    assert isinstance(reply, UploadState), reply
                    begun.append(reply.upload_id)
                else:  # the shop's bound, not the user's quota (which has room)
                    assert isinstance(reply, ErrorReply) and reply.code is ErrorCode.UNAVAILABLE
                    assert reply.retry_after is not None and reply.retry_after > 0
            # The normal client browses meanwhile, and its upload waits for room like any.
            await browse(good)
            theirs = BeginUpload(sha256=secrets.token_hex(32), size=size, metadata=meta("Mine"))
            with pytest.raises(Unavailable):
                await good.request(theirs, UploadState)
            await first.send(codec.encode(CancelUpload(id=20, upload_id=begun[0])))
            assert isinstance(codec.decode(await first.recv()), Ok)
            assert (await good.request(theirs, UploadState)).upload_id
