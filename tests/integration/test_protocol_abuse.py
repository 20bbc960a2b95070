"""Hostile and broken peers: garbage frames, limits, handshake checks and rate limits.

Proves that every kind of malformed frame (random bytes, text frames, an empty frame, deep
nesting, unknown message types, wrong or missing or extra fields, out-of-range ids, a reply or an
event sent as a request, a message over ``max_message_bytes``) gets a ``bad_request`` error reply
that carries the request id when it can be read, and that the connection stays usable afterwards
while a second, well-behaved client is served normally throughout. Also proves that a frame over
``max_frame_bytes`` is cut with close code 1009, that a peer that keeps sending garbage is cut
with 1008, that requests before Hello and a Hello with the wrong protocol version are refused
with clear ``bad_request`` errors, that a browser Origin not on the allow-list is refused with
HTTP 403 while no Origin (and an allowed one) is fine, that the connection limit refuses the extra
connection with HTTP 503, and that the per-connection request rate limit answers
``rate_limited`` with a ``retry_after``.
"""

from __future__ import annotations

import os
from dataclasses import replace

import msgspec
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

import protocol.session_core
from backend.config import ServerConfig
from backend.server import PixmartServer
from protocol import codec
from protocol.client import ConnectionState, Session
from protocol.errors import BadRequest, ErrorCode, Unavailable
from protocol.messages.accounts import AccountCreated, CreateAccount, LoggedIn, Login, Me, WhoAmI
from protocol.messages.base import (
    PROTOCOL_VERSION,
    ErrorReply,
    Hello,
    Notice,
    Ok,
    Request,
    Welcome,
)
from protocol.trust import TrustPolicy
from tests.conftest import SessionFactory, logged_in, with_limits
from tests.support import RawClient, eventually, pinned_session, raw_client, running_server

PASSWORD = "password123"


def _packed(value: object) -> bytes:
    return msgspec.msgpack.encode(value)


#: Far past the interpreter's recursion limit, yet under the frame size allowed before login.
NESTING_DEPTH = 60_000


def _deeply_nested_field(depth: int = NESTING_DEPTH) -> bytes:
    """``{"type": "Login", "id": 9, "username": [[[...]]]}``: too deep to even read the id."""
    head = _packed({"type": "Login", "id": 9})
    return b"\x83" + head[1:] + _packed("username") + b"\x91" * depth + b"\x90"


def _deeply_nested_details(depth: int = NESTING_DEPTH) -> bytes:
    """An ErrorReply whose free-form ``details`` nest deeper than the interpreter allows."""
    head = _packed({"type": "ErrorReply", "id": 8, "code": "internal", "message": "x"})
    return b"\x85" + head[1:] + _packed("details") + b"\x81\xa1a" + b"\x91" * depth + b"\x90"


#: (label, frame, the request id the error reply must carry)
GARBAGE: list[tuple[str, bytes | str, int]] = [
    ("random bytes", b"\xc1" + os.urandom(200), 0),
    ("empty frame", b"", 0),
    ("text frame", '{"type": "WhoAmI", "id": 3}', 0),
    ("not a map", _packed([1, 2, 3]), 0),
    ("truncated", codec.encode(Login(id=4, username="someone", password=PASSWORD))[:-3], 0),
    ("unknown type", _packed({"type": "Teleport", "id": 11}), 11),
    ("no type", _packed({"id": 12, "username": "x"}), 12),
    ("wrong field type", _packed({"type": "Login", "id": 13, "username": 42, "password": "x"}), 13),
    ("missing field", _packed({"type": "Login", "id": 14, "username": "somebody"}), 14),
    ("unknown field", _packed({"type": "WhoAmI", "id": 15, "admin": True}), 15),
    ("out of range", _packed({"type": "Login", "id": 16, "username": "", "password": "x"}), 16),
    ("default id", _packed({"type": "Login", "username": 42, "password": "x"}), 1),
    ("zero id", _packed({"type": "WhoAmI", "id": 0}), 0),
    ("negative id", _packed({"type": "WhoAmI", "id": -5}), 0),
    ("huge id", _packed({"type": "WhoAmI", "id": 2**60}), 0),
    ("boolean id", _packed({"type": "WhoAmI", "id": True}), 0),
    ("reply as request", codec.encode(Ok(id=17)), 17),
    (
        "error reply as request",
        codec.encode(ErrorReply(id=18, code=ErrorCode.INTERNAL, message="x")),
        18,
    ),
    ("welcome as request", _packed({"type": "Welcome", "id": 19}), 19),
    ("event as request", codec.encode(Notice(kind="x", message="y")), 0),
    ("string not UTF-8", b"\xa1\x80", 0),
    ("key not UTF-8", b"\x81\xa4type\xa5W\xffAmI", 0),
    ("value not UTF-8", codec.encode(WhoAmI(id=20)).replace(b"WhoAmI", b"Wh\xffAmI"), 0),
    ("deep nesting in a field", _deeply_nested_field(), 0),
    ("deep nesting in free-form details", _deeply_nested_details(), 0),
]


async def _expect_bad_request(raw: RawClient, frame: bytes | str, request_id: int) -> ErrorReply:
    await raw.send_frame(frame)
    reply = await raw.recv_reply()
    assert isinstance(reply, ErrorReply), reply
    assert reply.code is ErrorCode.BAD_REQUEST, reply
    assert reply.id == request_id, reply
    assert reply.message
    assert "Traceback" not in reply.message
    return reply


async def _still_usable(raw: RawClient, request_id: int) -> None:
    reply = await raw.call(WhoAmI(id=request_id))
    assert isinstance(reply, ErrorReply) and reply.code is ErrorCode.UNAUTHENTICATED, reply


@pytest.fixture
def tolerant_config(server_config: ServerConfig) -> ServerConfig:
    """Room for every kind of garbage on one connection before it is cut."""
    return with_limits(server_config, max_garbage=len(GARBAGE) * 2)


async def test_every_kind_of_garbage_gets_bad_request_and_the_link_survives(
    tolerant_config: ServerConfig,
) -> None:
    async with running_server(tolerant_config) as server, pinned_session(server) as good:
        await good.create_account("goodie", PASSWORD)
        await good.login("goodie", PASSWORD)
        async with raw_client(server) as raw:
            await raw.hello()
            for index, (label, frame, request_id) in enumerate(GARBAGE):
                reply = await _expect_bad_request(raw, frame, request_id)
                assert reply.id == request_id, label
                await _still_usable(raw, 1000 + index)
                # The well-behaved client is served all along.
                assert (await good.whoami()).username == "goodie"
            # After all that, a real request still works on the abused connection.
            created = await raw.call(CreateAccount(id=5000, username="survivor", password=PASSWORD))
            assert isinstance(created, AccountCreated)
        assert good.connected


async def test_error_messages_say_what_was_wrong(server: PixmartServer) -> None:
    async with raw_client(server) as raw:
        await raw.hello()
        text = await _expect_bad_request(raw, "hello", 0)
        assert "Text frames" in text.message
        unknown = await _expect_bad_request(raw, _packed({"type": "Teleport", "id": 2}), 2)
        assert "Teleport" in unknown.message
        missing = await _expect_bad_request(raw, _packed({"type": "Login", "id": 3}), 3)
        assert "username" in missing.message
        reply = await _expect_bad_request(raw, codec.encode(Ok(id=4)), 4)
        assert reply.message == "Ok is not a request"


async def test_requests_before_hello_are_refused(server: PixmartServer) -> None:
    async with raw_client(server) as raw:
        refused = await _expect_bad_request(raw, codec.encode(WhoAmI(id=3)), 3)
        assert "Hello first" in refused.message
        refused = await _expect_bad_request(
            raw, codec.encode(CreateAccount(id=4, username="early", password=PASSWORD)), 4
        )
        await raw.hello(request_id=5)
        created = await raw.call(CreateAccount(id=6, username="early", password=PASSWORD))
        assert isinstance(created, AccountCreated)  # the refused attempt created nothing


async def test_protocol_version_mismatch_is_explained(server: PixmartServer) -> None:
    async with raw_client(server) as raw:
        hello = Hello(id=1, version=PROTOCOL_VERSION + 1, client_id=raw.client_id)
        reply = await raw.call(hello)
        assert isinstance(reply, ErrorReply)
        assert reply.code is ErrorCode.BAD_REQUEST
        assert f"version {PROTOCOL_VERSION + 1} is not supported" in reply.message
        assert f"version {PROTOCOL_VERSION}" in reply.message
        assert reply.details == {"server_version": PROTOCOL_VERSION}
        # Still not greeted, so other requests are refused; a proper hello then works.
        await _expect_bad_request(raw, codec.encode(WhoAmI(id=2)), 2)
        welcome = await raw.hello(request_id=3)
        assert welcome.version == PROTOCOL_VERSION


async def test_a_session_of_another_protocol_version_is_told_why(
    server: PixmartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(protocol.session_core, "PROTOCOL_VERSION", PROTOCOL_VERSION + 1)
    session = Session(f"wss://127.0.0.1:{server.port}", TrustPolicy(fingerprint=server.fingerprint))
    with pytest.raises(BadRequest, match="Update the client") as caught:
        await session.connect()
    assert caught.value.details == {"server_version": PROTOCOL_VERSION}
    assert session.status.state is ConnectionState.OFFLINE
    assert session.status.reason is not None and "not supported" in session.status.reason
    await session.close()


class _FutureHello(Hello, tag="Hello"):
    """A later client's hello, with a field this server does not know."""

    avatar: str = ""

    def __post_init__(self) -> None:
        self.avatar = "from the future"  # not the default, so it is sent


async def test_an_unreadable_hello_is_answered_not_left_hanging(
    server: PixmartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first request has the default id, which the frame leaves out; the error must carry it."""
    monkeypatch.setattr(protocol.session_core, "Hello", _FutureHello)
    session = Session(
        f"wss://127.0.0.1:{server.port}",
        TrustPolicy(fingerprint=server.fingerprint),
        open_timeout=3.0,
    )
    with pytest.raises(BadRequest, match="avatar"):
        await session.connect()  # a TimeoutError after open_timeout if the id were lost
    await session.close()


async def test_hello_with_a_malformed_client_id_is_refused(server: PixmartServer) -> None:
    async with raw_client(server) as raw:
        frame = _packed(
            {"type": "Hello", "id": 1, "version": PROTOCOL_VERSION, "client_id": "not-hex"}
        )
        reply = await _expect_bad_request(raw, frame, 1)
        assert "client_id" in reply.message


async def test_messages_over_the_message_limit_get_bad_request(
    server_config: ServerConfig,
) -> None:
    config = with_limits(server_config, max_message_bytes=2048, max_frame_bytes=16384)
    async with running_server(config) as server, raw_client(server) as raw:
        await raw.hello()
        oversized = _packed({"type": "Login", "id": 21, "username": "x" * 3000, "password": "y"})
        reply = await _expect_bad_request(raw, oversized, 21)
        assert f"{len(oversized):,} bytes" in reply.message
        assert "limit is 2,048 bytes" in reply.message
        await _still_usable(raw, 22)
        # Just under the limit is decoded (and then judged on its merits).
        fits = codec.encode(CreateAccount(id=23, username="fits", password="p" * 1000))
        assert len(fits) < 2048
        assert isinstance(
            await raw.call(CreateAccount(id=23, username="fits", password="p" * 1000)),
            AccountCreated,
        )


async def test_frames_over_the_frame_limit_are_cut_with_1009(server_config: ServerConfig) -> None:
    config = with_limits(server_config, max_message_bytes=2048, max_frame_bytes=16384)
    async with running_server(config) as server, pinned_session(server) as good:
        async with raw_client(server) as raw:
            await raw.hello()
            await raw.send_frame(b"\x00" * 20_000)
            with pytest.raises(ConnectionClosed) as closed:
                await raw.recv()
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1009
        await good.create_account("bystander", PASSWORD)
        assert good.connected


async def test_a_peer_that_keeps_sending_garbage_is_cut_with_1008(
    server_config: ServerConfig,
) -> None:
    config = with_limits(server_config, max_garbage=3)
    async with running_server(config) as server, pinned_session(server) as good:
        async with raw_client(server) as raw:
            await raw.hello()
            replies: list[ErrorReply] = []
            with pytest.raises(ConnectionClosed) as closed:
                for attempt in range(10):
                    await raw.send_frame(b"\xc1garbage")
                    reply = await raw.recv_reply()
                    assert isinstance(reply, ErrorReply)
                    replies.append(reply)
                    assert attempt < 4, "still connected after the garbage limit"
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1008
            assert "malformed" in closed.value.rcvd.reason
        # Every frame was answered before the cut: three tolerated, the fourth one too much.
        assert [r.code for r in replies] == [ErrorCode.BAD_REQUEST] * 4
        await good.create_account("unbothered", PASSWORD)
        assert good.connected


# -- handshake checks ----------------------------------------------------------------------------


async def test_foreign_browser_origins_are_refused(server_config: ServerConfig) -> None:
    config = replace(server_config, allowed_origins=("https://shop.example",))
    async with running_server(config) as server:
        with pytest.raises(InvalidStatus) as refused:
            async with raw_client(server, origin="https://evil.example"):
                pass
        assert refused.value.response.status_code == 403
        async with raw_client(server, origin="https://shop.example") as allowed:
            await allowed.hello()
        async with raw_client(server) as no_origin:  # every non-browser client
            await no_origin.hello()


async def test_no_origin_is_fine_and_any_origin_is_refused_by_default(
    server: PixmartServer,
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with raw_client(server, origin="https://shop.example"):
            pass
    assert refused.value.response.status_code == 403
    async with raw_client(server) as raw:
        await raw.hello()


async def test_the_connection_limit_refuses_the_extra_connection(
    server_config: ServerConfig,
) -> None:
    config = with_limits(server_config, max_connections=2)
    async with running_server(config) as server:
        async with raw_client(server) as first, raw_client(server) as second:
            await first.hello()
            await second.hello()
            assert server.connection_count == 2
            with pytest.raises(InvalidStatus) as refused:
                async with raw_client(server):
                    pass
            assert refused.value.response.status_code == 503
            # The Session turns it into a typed, temporary error with words for the person.
            session = Session(
                f"wss://127.0.0.1:{server.port}", TrustPolicy(fingerprint=server.fingerprint)
            )
            with pytest.raises(Unavailable, match="full or shutting down") as typed:
                await session.connect()
            assert typed.value.retry_after is not None
            await session.close()
        # Once one leaves, there is room again.
        await eventually(lambda: _connections_at_most(server, 0))
        async with raw_client(server) as third:
            await third.hello()


async def _connections_at_most(server: PixmartServer, count: int) -> bool:
    return server.connection_count <= count


async def test_the_request_rate_is_limited_per_connection(server_config: ServerConfig) -> None:
    config = with_limits(server_config, request_rate=0.5, request_burst=3)
    async with running_server(config) as server, pinned_session(server) as other:
        async with raw_client(server) as raw:
            await raw.hello()  # spends one of the three
            for request_id in range(2, 7):
                await raw.send(WhoAmI(id=request_id))
            replies = {}
            for _ in range(5):
                reply = await raw.recv_reply()
                assert isinstance(reply, ErrorReply)
                replies[reply.id] = reply
        assert [replies[i].code for i in range(2, 7)] == [
            ErrorCode.UNAUTHENTICATED,
            ErrorCode.UNAUTHENTICATED,
            ErrorCode.RATE_LIMITED,
            ErrorCode.RATE_LIMITED,
            ErrorCode.RATE_LIMITED,
        ]
        for request_id in (4, 5, 6):
            retry_after = replies[request_id].retry_after
            assert retry_after is not None and 0 < retry_after <= 2.0
        # Another connection has its own budget.
        await other.create_account("patient", PASSWORD)


async def test_logged_in_clients_are_unaffected_by_a_garbage_peer(
    make_session: SessionFactory, server: PixmartServer
) -> None:
    good = await logged_in(make_session, "steady")
    async with raw_client(server) as raw:
        await raw.hello()
        for _ in range(5):
            await _expect_bad_request(raw, os.urandom(64) + b"\xc1", 0)
            assert (await good.whoami()).username == "steady"
    welcome = await good.request(Hello(version=PROTOCOL_VERSION, client_id=good.client_id), Welcome)
    assert welcome.capabilities.max_message_bytes == server.config.limits.max_message_bytes


#: A value no field of the protocol takes: a map whose only key is no field name.
_WRONG_VALUE = {"\x00": [None, -1]}


def _malformed_requests() -> list[tuple[str, bytes, int]]:
    """Every request type with each of its fields given :data:`_WRONG_VALUE` in turn:
    (label, frame, request id)."""
    frames: list[tuple[str, bytes, int]] = []
    request_id = 100
    for message_type in codec.MESSAGE_TYPES:
        if not issubclass(message_type, Request):
            continue
        tag = message_type.__struct_config__.tag
        for field in msgspec.structs.fields(message_type):
            if field.encode_name == "id":
                continue
            request_id += 1
            frame = _packed({"type": tag, "id": request_id, field.encode_name: _WRONG_VALUE})
            frames.append((f"{tag}.{field.encode_name}", frame, request_id))
    return frames


async def test_a_malformed_field_of_every_request_type_gets_bad_request_after_login(
    server_config: ServerConfig,
) -> None:
    """Each request type, logged in, with a field of the wrong type: a typed bad_request with
    the request's id (never an internal error), the connection kept, a neighbour served."""
    malformed = _malformed_requests()
    assert len(malformed) > 50  # every type was found
    config = with_limits(server_config, max_garbage=len(malformed) + 10)
    async with running_server(config) as server, pinned_session(server) as good:
        await good.create_account("neighbour", PASSWORD)
        await good.login("neighbour", PASSWORD)
        async with raw_client(server) as raw:
            await raw.hello()
            await raw.call(CreateAccount(id=2, username="malformer", password=PASSWORD))
            assert isinstance(
                await raw.call(Login(id=3, username="malformer", password=PASSWORD)), LoggedIn
            )
            for label, frame, request_id in malformed:
                reply = await _expect_bad_request(raw, frame, request_id)
                assert reply.id == request_id, label
            me = await raw.call(WhoAmI(id=99))
            assert isinstance(me, Me) and me.user.username == "malformer"
        assert (await good.whoami()).username == "neighbour"
