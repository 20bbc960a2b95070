"""The session's request core, driven frame by frame with no sockets: ids, the pending table,
re-send after a drop, hello and resume, in the orders a real network may deliver them."""

from __future__ import annotations

import pytest

from protocol import codec
from protocol.errors import ErrorCode, Unauthenticated
from protocol.messages.accounts import (
    Login,
    Me,
    Resume,
    Resumed,
    SessionEnded,
    SessionEndReason,
    UserInfo,
    WhoAmI,
)
from protocol.messages.base import (
    PROTOCOL_VERSION,
    Capabilities,
    ErrorReply,
    Hello,
    Message,
    Request,
)
from protocol.messages.base import Welcome as WelcomeReply
from protocol.session_core import (
    CoreEvent,
    EventReceived,
    HandshakeDone,
    HandshakeFailed,
    ReplyReceived,
    RequestFailed,
    SessionCore,
    TokenChanged,
)

ADA = UserInfo(id=7, username="ada")
#: A request larger than the server reads before a login.
LARGE = Login(username="ada", password="p" * codec.MAX_PRELOGIN_MESSAGE_BYTES)
CAPABILITIES = Capabilities(
    server_name="test",
    embedder="none",
    embedder_version="",
    max_message_bytes=1 << 20,
    max_upload_bytes=1 << 20,
    max_pixels=1 << 24,
    upload_chunk_bytes=1 << 16,
    batch_default=48,
    batch_max=200,
    currency="EUR",
)


def sent(core: SessionCore) -> list[Message]:
    """The frames the core wants written, decoded."""
    return [codec.decode(frame) for frame in core.data_to_send()]


def answer(core: SessionCore, message: Message) -> list[CoreEvent]:
    """Feed one server frame to the core; what it reports."""
    core.receive_frame(codec.encode(message))
    return core.events_received()


def me(request_id: int, user: UserInfo = ADA) -> Me:
    return Me(id=request_id, user=user)


def welcome(request_id: int) -> WelcomeReply:
    return WelcomeReply(id=request_id, version=PROTOCOL_VERSION, capabilities=CAPABILITIES)


def greeted(token: str | None = None) -> SessionCore:
    """A core whose connection has said hello (and resumed ``token``)."""
    core = SessionCore(client_id="c" * 32, client_name="test", token=token)
    connect(core)
    return core


def connect(core: SessionCore) -> list[CoreEvent]:
    """Open a connection and answer its handshake as a server that knows ADA's token."""
    core.connection_made()
    [hello] = sent(core)
    assert isinstance(hello, Hello) and hello.version == PROTOCOL_VERSION
    events = answer(core, welcome(hello.id))
    if core.token is not None:
        [resume] = sent(core)
        assert isinstance(resume, Resume) and resume.token == core.token
        events += answer(core, Resumed(id=resume.id, user=ADA, expires_at=0.0))
    assert core.ready and HandshakeDone() in events
    return events


def hello_sent(core: SessionCore) -> Hello:
    """The one frame a new connection starts with."""
    [hello] = sent(core)
    assert isinstance(hello, Hello)
    return hello


def request_ids(messages: list[Message]) -> list[int]:
    return [m.id for m in messages if isinstance(m, Request)]


def test_requests_wait_for_the_handshake_then_go_out_with_fresh_ids() -> None:
    core = SessionCore(client_id="c" * 32, client_name="test")
    first = core.send_request(WhoAmI())
    core.connection_made()
    [hello] = sent(core)  # only the hello before the server greets back
    assert isinstance(hello, Hello)
    assert answer(core, welcome(hello.id)) == [HandshakeDone()]
    assert core.capabilities == CAPABILITIES and core.user is None
    second = core.send_request(WhoAmI())
    assert request_ids(sent(core)) == [first, second]
    assert len({hello.id, first, second}) == 3


def test_replies_in_any_order_reach_their_own_requests() -> None:
    core = greeted()
    ids = [core.send_request(WhoAmI()) for _ in range(3)]
    sent(core)
    users = {i: UserInfo(id=i, username=f"u{i}") for i in ids}
    events = [e for i in reversed(ids) for e in answer(core, me(i, users[i]))]
    assert events == [ReplyReceived(i, me(i, users[i])) for i in reversed(ids)]
    assert core.pending == frozenset()


def test_a_duplicate_or_unknown_reply_is_dropped() -> None:
    core = greeted()
    request_id = core.send_request(WhoAmI())
    assert answer(core, me(request_id)) == [ReplyReceived(request_id, me(request_id))]
    assert answer(core, me(request_id)) == []  # the same reply again
    assert answer(core, me(request_id + 100)) == []  # a reply to nothing sent
    forgotten = core.send_request(WhoAmI())
    core.forget(forgotten)  # the caller gave up (timeout, cancel)
    assert answer(core, me(forgotten)) == []


def test_a_drop_with_requests_in_flight_sends_them_again_after_the_new_handshake() -> None:
    core = greeted(token="t" * 43)
    in_flight = [core.send_request(WhoAmI()) for _ in range(2)]
    assert request_ids(sent(core)) == in_flight
    # One reply made it before the drop; the other did not.
    assert answer(core, me(in_flight[0])) == [ReplyReceived(in_flight[0], me(in_flight[0]))]
    core.connection_lost()
    assert not core.ready
    while_down = core.send_request(WhoAmI())
    assert sent(core) == []  # nowhere to send it
    events = connect(core)  # hello and resume first, then the re-sends
    assert events == [HandshakeDone()] and core.user == ADA
    assert request_ids(sent(core)) == [in_flight[1], while_down]
    # The server answers the re-sent request from its replay cache: one reply each.
    assert answer(core, me(while_down)) == [ReplyReceived(while_down, me(while_down))]
    assert answer(core, me(in_flight[1])) == [ReplyReceived(in_flight[1], me(in_flight[1]))]
    assert core.pending == frozenset()


def test_frames_not_written_before_a_drop_are_not_written_twice() -> None:
    core = greeted()
    request_id = core.send_request(WhoAmI())
    core.connection_lost()  # the frame was queued but never written
    connect(core)
    assert request_ids(sent(core)) == [request_id]


def test_a_refused_resume_carries_on_logged_out() -> None:
    core = SessionCore(client_id="c" * 32, client_name="test", token="dead")
    small = core.send_request(WhoAmI())
    core.connection_made()
    hello = hello_sent(core)
    assert answer(core, welcome(hello.id)) == []
    [resume] = sent(core)
    assert isinstance(resume, Resume)
    refused = ErrorReply(id=resume.id, code=ErrorCode.UNAUTHENTICATED, message="expired")
    assert answer(core, refused) == [TokenChanged(None), HandshakeDone()]
    assert core.token is None and core.user is None and core.ready
    assert request_ids(sent(core)) == [small]


def test_a_large_request_waiting_on_a_refused_resume_fails_instead_of_looping() -> None:
    core = greeted(token="t" * 43)  # logged in: large frames are allowed
    large = core.send_request(LARGE)
    core.connection_lost()
    core.connection_made()
    hello = hello_sent(core)
    answer(core, welcome(hello.id))
    [resume] = sent(core)
    assert isinstance(resume, Resume)
    refused = ErrorReply(id=resume.id, code=ErrorCode.UNAUTHENTICATED, message="revoked")
    events = answer(core, refused)
    assert events[:2] == [TokenChanged(None), HandshakeDone()]
    [failed] = events[2:]
    assert isinstance(failed, RequestFailed) and failed.request_id == large
    assert isinstance(failed.error, Unauthenticated)
    assert sent(core) == [] and core.pending == frozenset()


def test_a_large_request_before_login_is_refused_at_once() -> None:
    core = greeted()
    with pytest.raises(Unauthenticated):
        core.send_request(LARGE)
    assert core.pending == frozenset()


def test_a_refused_hello_fails_the_handshake() -> None:
    core = SessionCore(client_id="c" * 32, client_name="test")
    core.connection_made()
    hello = hello_sent(core)
    refused = ErrorReply(id=hello.id, code=ErrorCode.BAD_REQUEST, message="Update the client")
    [failed] = answer(core, refused)
    assert isinstance(failed, HandshakeFailed) and "Update" in failed.error.message
    assert not core.ready
    core.receive_frame(b"\x00not a message")  # garbage during a handshake fails it too
    assert core.events_received() == []  # ... but this one is over: nothing to fail


def test_garbage_during_the_handshake_fails_it() -> None:
    core = SessionCore(client_id="c" * 32, client_name="test")
    core.connection_made()
    sent(core)
    core.receive_frame(b"\x00not a message")
    [failed] = core.events_received()
    assert isinstance(failed, HandshakeFailed)


def test_the_server_ending_the_session_kills_the_token_before_the_event_is_told() -> None:
    core = greeted(token="t" * 43)
    ended = SessionEnded(reason=SessionEndReason.EXPIRED)
    assert answer(core, ended) == [TokenChanged(None), EventReceived(ended)]
    assert core.token is None and core.user is None
    assert core.end_reason is SessionEndReason.EXPIRED
    core.connection_lost()
    core.connection_made()
    hello = hello_sent(core)
    assert answer(core, welcome(hello.id)) == [HandshakeDone()]  # no resume with a dead token
    core.logged_in(ADA, "new")
    assert core.events_received() == [TokenChanged("new")] and core.end_reason is None


def test_closing_fails_every_pending_request() -> None:
    core = greeted()
    ids = [core.send_request(WhoAmI()) for _ in range(2)]
    error = Unauthenticated("closed")
    core.fail_pending(error)
    assert core.events_received() == [RequestFailed(i, error) for i in ids]
    assert answer(core, me(ids[0])) == []  # too late
