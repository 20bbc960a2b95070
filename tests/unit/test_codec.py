"""Property tests of the codec: round trips for every message, and strict, total decoding.

Proves that every message type on the wire (every entry of ``codec.MESSAGE_TYPES``, generated
from its declared field types and constraints) survives ``decode(encode(m)) == m``; that
decoding arbitrary bytes, text, arbitrary msgpack values, messages with the wrong field values and
damaged valid frames only ever raises :class:`BadRequest` (never another exception); and that
``request_id_of`` never raises and only returns 0 or a valid request id.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import msgspec
import msgspec.inspect as mi
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import codec
from protocol.errors import BadRequest, ErrorCode
from protocol.messages import accounts, base
from protocol.messages.base import Message

#: Per message type (there are dozens of types, so few examples each keep the module fast).
PER_TYPE = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: Across all message types at once.
MIXED = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

INT64 = (-(2**63), 2**63 - 1)


def struct_info(cls: type[Message]) -> mi.StructType:
    """What ``msgspec.inspect`` knows about a message type."""
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    return info


TAGS = sorted(str(struct_info(cls).tag) for cls in codec.MESSAGE_TYPES)


# -- strategies derived from the message declarations --------------------------------------------

#: Free-form values as msgpack carries them (no tuples: they come back as lists).
ANY_VALUE: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(*INT64)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def _bounded(
    low: int | float | None, high: int | float | None, gt: Any, lt: Any
) -> tuple[Any, Any]:
    return (gt + 1 if gt is not None else low), (lt - 1 if lt is not None else high)


def strategy_for(info: mi.Type) -> st.SearchStrategy[Any]:
    """Valid values for a type as ``msgspec.inspect`` describes it, constraints included."""
    if isinstance(info, mi.AnyType) or (isinstance(info, mi.CustomType) and info.cls is object):
        return ANY_VALUE
    if isinstance(info, mi.NoneType):
        return st.none()
    if isinstance(info, mi.BoolType):
        return st.booleans()
    if isinstance(info, mi.IntType):
        low, high = _bounded(info.ge, info.le, info.gt, info.lt)
        low = INT64[0] if low is None else max(low, INT64[0])
        high = INT64[1] if high is None else min(high, INT64[1])
        values = st.integers(low, high)
        if info.multiple_of:
            step = info.multiple_of
            values = st.integers(math.ceil(low / step), high // step).map(lambda n: n * step)
        return values
    if isinstance(info, mi.FloatType):
        return st.floats(
            min_value=info.ge if info.ge is not None else info.gt,
            max_value=info.le if info.le is not None else info.lt,
            exclude_min=info.gt is not None,
            exclude_max=info.lt is not None,
            allow_nan=False,
        )
    if isinstance(info, mi.StrType):
        low, high = info.min_length or 0, info.max_length
        if info.pattern is not None:
            return st.from_regex(info.pattern, fullmatch=True).filter(
                lambda s: low <= len(s) and (high is None or len(s) <= high)
            )
        return st.text(min_size=low, max_size=min(high, low + 40) if high is not None else low + 40)
    if isinstance(info, mi.BytesType):
        low = info.min_length or 0
        high = info.max_length if info.max_length is not None else low + 64
        return st.binary(min_size=low, max_size=min(high, low + 64))
    if isinstance(info, mi.EnumType):
        return st.sampled_from(list(info.cls))
    if isinstance(info, mi.LiteralType):
        return st.sampled_from(list(info.values))
    if isinstance(info, mi.ListType):
        low = info.min_length or 0
        high = min(info.max_length, low + 4) if info.max_length is not None else low + 4
        return st.lists(strategy_for(info.item_type), min_size=low, max_size=high)
    if isinstance(info, mi.DictType):
        low = info.min_length or 0
        return st.dictionaries(
            strategy_for(info.key_type),
            strategy_for(info.value_type),
            min_size=low,
            max_size=low + 4,
        )
    if isinstance(info, mi.UnionType):
        return st.one_of([strategy_for(member) for member in info.types])
    if isinstance(info, mi.StructType):
        return struct_strategy(info)
    raise NotImplementedError(f"no strategy for {info!r}: teach tests/unit/test_codec.py")


def struct_strategy(info: mi.StructType) -> st.SearchStrategy[Any]:
    """Instances of a Struct with every field set to a valid value."""
    fields = {field.encode_name: strategy_for(field.type) for field in info.fields}
    names = {field.encode_name: field.name for field in info.fields}
    return st.fixed_dictionaries(fields).map(
        lambda values: info.cls(**{names[key]: value for key, value in values.items()})
    )


MESSAGES: st.SearchStrategy[Message] = st.one_of(
    [struct_strategy(struct_info(cls)) for cls in codec.MESSAGE_TYPES]
)


# -- round trips ---------------------------------------------------------------------------------


def test_every_account_and_base_message_is_in_the_union() -> None:
    for cls in base.MESSAGES + accounts.MESSAGES:
        assert cls in codec.MESSAGE_TYPES
    assert len(set(TAGS)) == len(TAGS), "two message types share a wire tag"


@pytest.mark.parametrize("cls", codec.MESSAGE_TYPES, ids=lambda cls: cls.__name__)
@PER_TYPE
@given(data=st.data())
def test_round_trip(cls: type[Message], data: st.DataObject) -> None:
    message = data.draw(struct_strategy(struct_info(cls)))
    frame = codec.encode(message)
    decoded = codec.decode(frame, max_bytes=len(frame))
    assert type(decoded) is cls
    assert decoded == message
    assert codec.decode_as(frame, cls, max_bytes=len(frame)) == message
    if isinstance(message, base.Request | base.Reply):
        assert codec.request_id_of(frame) == (message.id if 0 < message.id <= 2**53 else 0)


@MIXED
@given(message=MESSAGES)
def test_the_frame_limit_is_exact(message: Message) -> None:
    frame = codec.encode(message)
    assert codec.decode(frame, max_bytes=len(frame)) == message
    with pytest.raises(BadRequest, match="limit"):
        codec.decode(frame, max_bytes=len(frame) - 1)


@MIXED
@given(message=MESSAGES)
def test_decode_as_refuses_other_types(message: Message) -> None:
    other = base.Ok if not isinstance(message, base.Ok) else base.Welcome
    with pytest.raises(BadRequest, match=f"Expected {other.__name__}"):
        codec.decode_as(codec.encode(message), other)


# -- decoding is total: BadRequest or a message, nothing else ------------------------------------


def _decodes_or_bad_request(frame: bytes | str) -> None:
    try:
        message = codec.decode(frame)
    except BadRequest as exc:
        assert exc.message
        return
    assert isinstance(message, Message)


def _request_id_is_sane(frame: bytes | str) -> None:
    request_id = codec.request_id_of(frame)
    assert type(request_id) is int
    assert request_id == 0 or 1 <= request_id <= 2**53


@settings(max_examples=300, deadline=None)
@given(frame=st.binary(max_size=512) | st.text(max_size=64))
def test_arbitrary_frames_only_raise_bad_request(frame: bytes | str) -> None:
    _decodes_or_bad_request(frame)
    _request_id_is_sane(frame)


#: Also what msgpack can carry but no message uses: extension types and timestamps.
WIRE_VALUE: st.SearchStrategy[Any] = (
    ANY_VALUE
    | st.builds(msgspec.msgpack.Ext, st.integers(-128, 127), st.binary(max_size=16))
    | st.datetimes(timezones=st.just(dt.UTC))
)

#: Maps that look like messages: a real or bogus tag, real field names, any values.
FIELD_NAMES = sorted(
    {field.encode_name for cls in codec.MESSAGE_TYPES for field in struct_info(cls).fields}
)
MESSAGE_LIKE = st.dictionaries(
    st.sampled_from(FIELD_NAMES) | st.text(max_size=6),
    WIRE_VALUE,
    max_size=6,
).flatmap(
    lambda fields: st.fixed_dictionaries(
        {"type": st.sampled_from(TAGS) | WIRE_VALUE},
        optional={"id": WIRE_VALUE},
    ).map(lambda head: {**fields, **head})
)


@settings(max_examples=300, deadline=None)
@given(value=MESSAGE_LIKE | WIRE_VALUE)
def test_arbitrary_msgpack_values_only_raise_bad_request(value: Any) -> None:
    frame = msgspec.msgpack.encode(value)
    _decodes_or_bad_request(frame)
    _request_id_is_sane(frame)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message=MESSAGES, data=st.data())
def test_damaged_frames_only_raise_bad_request(message: Message, data: st.DataObject) -> None:
    frame = bytearray(codec.encode(message))
    damage = data.draw(st.sampled_from(["truncate", "flip", "insert"]))
    position = data.draw(st.integers(0, len(frame) - 1))
    if damage == "truncate":
        frame = frame[:position]
    elif damage == "flip":
        frame[position] ^= data.draw(st.integers(1, 255))
    else:
        frame[position:position] = data.draw(st.binary(min_size=1, max_size=8))
    _decodes_or_bad_request(bytes(frame))
    _request_id_is_sane(bytes(frame))


def test_deep_nesting_is_a_bad_request_not_a_crash() -> None:
    head = msgspec.msgpack.encode({"type": "ErrorReply", "id": 3, "code": "internal"})
    deep = b"\x91" * 200_000 + b"\x90"
    frame = b"\x85" + head[1:] + msgspec.msgpack.encode("message") + b"\xa1x"
    frame += msgspec.msgpack.encode("details") + b"\x81\xa1a" + deep
    with pytest.raises(BadRequest, match="nested too deeply"):
        codec.decode(frame, max_bytes=len(frame))
    assert codec.request_id_of(frame) == 0  # unreadable: too deep for the loose decoder too
    with pytest.raises(BadRequest):
        codec.decode(deep)


@pytest.mark.parametrize(
    "frame",
    [
        b"\xa1\x80",  # a lone string that is not UTF-8
        b"\x81\xa2\xff\xfe\x01",  # a map key that is not UTF-8
        codec.encode(accounts.Login(id=3, username="abcd", password="pw-12345")).replace(
            b"abcd", b"\xff\xfe\xfd\xfc"
        ),
        codec.encode(accounts.WhoAmI(id=4)).replace(b"WhoAmI", b"Wh\xffAmI"),
    ],
)
def test_invalid_utf8_is_a_bad_request_not_a_crash(frame: bytes) -> None:
    with pytest.raises(BadRequest):
        codec.decode(frame)
    _request_id_is_sane(frame)


def test_text_and_oversized_frames_are_refused_before_parsing() -> None:
    with pytest.raises(BadRequest, match="Text frames"):
        codec.decode('{"type": "WhoAmI"}')
    frame = codec.encode(accounts.WhoAmI(id=7))
    with pytest.raises(BadRequest, match=f"{len(frame):,} bytes"):
        codec.decode(frame, max_bytes=len(frame) - 1)
    assert codec.request_id_of("text") == 0
    assert codec.request_id_of(b"\xc1") == 0
    assert codec.request_id_of(b"\x00" * (codec.DEFAULT_MAX_MESSAGE_BYTES + 1)) == 0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"id": 5}, 5),
        ({"id": 2**53}, 2**53),
        ({"id": 2**53 + 1}, 0),
        ({"id": 0}, 0),
        ({"id": -1}, 0),
        ({"id": True}, 0),
        ({"id": 1.0}, 0),
        ({"id": "5"}, 0),
        ({"ID": 5}, 0),
        ({"type": "WhoAmI"}, 1),  # a request's default id is left out of the frame
        ({"type": "WhoAmI", "extra": 1}, 1),
        ({"type": "Ok"}, 0),  # replies have no default id
        ({"type": "NoSuchThing"}, 0),
        ({"type": []}, 0),  # an unhashable tag
        ({"type": {"a": 1}}, 0),
        ([5], 0),
        (5, 0),
    ],
)
def test_request_id_of_reads_only_plausible_ids(value: Any, expected: int) -> None:
    assert codec.request_id_of(msgspec.msgpack.encode(value)) == expected


def test_enum_fields_use_their_wire_values() -> None:
    reply = base.ErrorReply(id=1, code=ErrorCode.RATE_LIMITED, message="slow", retry_after=2.5)
    raw = msgspec.msgpack.decode(codec.encode(reply))
    assert raw == {
        "type": "ErrorReply",
        "id": 1,
        "code": "rate_limited",
        "message": "slow",
        "retry_after": 2.5,
    }
    assert codec.decode(codec.encode(reply)) == reply
