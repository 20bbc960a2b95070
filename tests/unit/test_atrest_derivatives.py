"""Sealed thumbnails and previews open to their own bytes or to a typed error, never others."""

from __future__ import annotations

import os

import pytest

from backend.atrest.derivatives import DerivativeCodec
from backend.atrest.envelope import HEADER_BYTES, Sealer
from backend.atrest.keys import KeySet, MasterKey
from protocol.errors import Internal


@pytest.fixture
def codec() -> DerivativeCodec:
    return DerivativeCodec(Sealer(KeySet(MasterKey.from_bytes(os.urandom(32)))))


def flipped(data: bytes, position: int) -> bytes:
    damaged = bytearray(data)
    damaged[position] ^= 0x01
    return bytes(damaged)


def test_a_derivative_opens_to_its_bytes_as_its_own_kind_only(codec: DerivativeCodec) -> None:
    thumbnail = os.urandom(5000)
    sealed = codec.seal(thumbnail, "thumbnail")
    assert thumbnail not in sealed
    assert codec.open(sealed, "thumbnail") == thumbnail
    assert codec.open(sealed, "thumbnail") == thumbnail  # again, from memory
    with pytest.raises(Internal):
        codec.open(sealed, "preview")


def test_damage_is_an_internal_error_opened_before_or_not(codec: DerivativeCodec) -> None:
    thumbnail = os.urandom(5000)
    sealed = codec.seal(thumbnail, "thumbnail")
    with pytest.raises(Internal):
        codec.open(flipped(sealed, HEADER_BYTES + 10), "thumbnail")  # never opened: checked
    assert codec.open(sealed, "thumbnail") == thumbnail
    # Its header altered, it is another derivative's header: checked again and refused.
    with pytest.raises(Internal):
        codec.open(flipped(sealed, HEADER_BYTES - 1), "thumbnail")
    # Its segment altered once opened: what the header was sealed with, never other bytes.
    assert codec.open(flipped(sealed, HEADER_BYTES + 10), "thumbnail") == thumbnail


def test_each_sealing_is_its_own_derivative(codec: DerivativeCodec) -> None:
    first, second = os.urandom(3000), os.urandom(3000)
    sealed_first, sealed_second = codec.seal(first, "thumbnail"), codec.seal(second, "thumbnail")
    assert codec.open(sealed_first, "thumbnail") == first
    assert codec.open(sealed_second, "thumbnail") == second
    # The same bytes sealed twice get two data keys, so two headers.
    assert codec.seal(first, "thumbnail")[:HEADER_BYTES] != sealed_first[:HEADER_BYTES]


def test_plain_rows_are_refused_once_the_shop_is_sealed(codec: DerivativeCodec) -> None:
    codec.plaintext_left = False
    with pytest.raises(Internal):
        codec.open(b"RIFF....WEBPVP8 ", "thumbnail")
    codec.plaintext_left = True
    assert codec.open(b"RIFF....WEBPVP8 ", "thumbnail") == b"RIFF....WEBPVP8 "
