"""Provides the sealed form of a file that grows by appends: an upload in progress on disk.

Chunks arrive one at a time and must be acknowledged as they come, so the file cannot be sealed
in fixed segments. It is a key header (:meth:`~backend.atrest.envelope.Sealer.new_header` for
zero bytes: it only carries the upload's data key, wrapped by the master key) followed by one
record per chunk::

    record  length of the ciphertext u32 | nonce (12, random) | ciphertext + GCM tag

Each record is authenticated with the file's context and the plaintext offset it starts at, so
records cannot be reordered, dropped from the middle or moved to another upload. Nonces are
random rather than counters: after a crash the last record may be torn and the client resends
that chunk, and the same key must never seal two plaintexts under one nonce. A torn tail (a
record shorter than its length says) is not part of the upload: :func:`scan` stops before it,
and the next append overwrites it.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from backend.atrest.envelope import HEADER_BYTES, TAG_BYTES, SealBroken, Sealer

_LENGTH: Final = struct.Struct(">I")
_NONCE_BYTES: Final = 12
#: Bytes a record adds to its chunk.
RECORD_OVERHEAD: Final = _LENGTH.size + _NONCE_BYTES + TAG_BYTES


@dataclass(frozen=True, slots=True)
class Extent:
    """How much of a record file holds complete records.

    Attributes:
        plaintext: The chunks' bytes in all (where the upload resumes).
        end: Where the last complete record ends in the file (a torn tail lies beyond).
    """

    plaintext: int
    end: int


def upload_context(upload_id: str) -> bytes:
    """The context an upload's file is sealed with: its id, so records cannot move uploads."""
    return b"pixmart upload " + upload_id.encode("ascii")


def new_file_header(sealer: Sealer, context: bytes) -> bytes:
    """The key header a new record file starts with."""
    header, _ = sealer.new_header(0, context)
    return header


def open_cipher(sealer: Sealer, head: bytes, context: bytes) -> AESGCM:
    """The data key of a record file whose first :data:`HEADER_BYTES` are ``head``.

    Raises:
        NotSealed, WrongKey, SealBroken: as :meth:`~backend.atrest.envelope.Sealer.open_header`.
    """
    return sealer.open_header(head, context).cipher


def _aad(context: bytes, offset: int) -> bytes:
    return hashlib.sha256(context).digest() + offset.to_bytes(8, "big")


def seal_record(cipher: AESGCM, context: bytes, offset: int, chunk: bytes) -> bytes:
    """The record of ``chunk``, which starts at plaintext ``offset``."""
    nonce = secrets.token_bytes(_NONCE_BYTES)
    sealed = cipher.encrypt(nonce, chunk, _aad(context, offset))
    return _LENGTH.pack(len(sealed)) + nonce + sealed


def scan(stream: BinaryIO) -> Extent:
    """Walk the records' lengths (not their contents) to the end of the last whole one."""
    size = os.fstat(stream.fileno()).st_size
    position = HEADER_BYTES
    plaintext = 0
    while position + RECORD_OVERHEAD <= size:
        stream.seek(position)
        (length,) = _LENGTH.unpack(stream.read(_LENGTH.size))
        end = position + _LENGTH.size + _NONCE_BYTES + length
        if length < TAG_BYTES or end > size:
            break  # a torn tail
        plaintext += length - TAG_BYTES
        position = end
    return Extent(plaintext, min(position, size) if size >= HEADER_BYTES else size)


def open_records(stream: BinaryIO, cipher: AESGCM, context: bytes, end: int) -> Iterator[bytes]:
    """The chunks of the records up to ``end``, checked one by one.

    Raises:
        SealBroken: a record fails authentication (altered, reordered, from another upload).
    """
    position = HEADER_BYTES
    offset = 0
    stream.seek(position)
    while position < end:
        (length,) = _LENGTH.unpack(stream.read(_LENGTH.size))
        nonce = stream.read(_NONCE_BYTES)
        sealed = stream.read(length)
        try:
            chunk = cipher.decrypt(nonce, sealed, _aad(context, offset))
        except InvalidTag:
            raise SealBroken(f"the upload's record at byte {offset} fails authentication") from None
        yield chunk
        offset += len(chunk)
        position += _LENGTH.size + _NONCE_BYTES + length
