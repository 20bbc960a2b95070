"""Provides master keys: their files, their ids, and the wrapping of data keys under them.

A key file is a short JSON document, written 0600 by ``pixmart-server keys init``::

    {"format": "pixmart-master-key/1", "key": "<32 random bytes, base64>"}

or, for people who prefer a passphrase, the Argon2id parameters to derive the key from one (the
passphrase comes from ``PIXMART_KEY_PASSPHRASE`` or is asked for on the terminal)::

    {"format": "pixmart-master-key/1", "kdf": "argon2id", "salt": "...", "iterations": 3,
     "lanes": 4, "memory_cost": 65536}

A key's id is 16 hex digits derived from the key by HMAC: logs and error messages name it, and
it tells nothing about the key. The master key never encrypts pictures itself: it wraps their
data keys (AES-256-GCM under a subkey derived with HKDF), so rotating it re-wraps 32-byte keys
instead of re-encrypting pictures.
"""

from __future__ import annotations

import base64
import binascii
import getpass
import hashlib
import hmac
import json
import os
import secrets
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from backend.media.fsutil import FILE_MODE, atomic_writer

KEY_FORMAT: Final = "pixmart-master-key/1"
KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
#: A wrapped data key: its nonce, the key, the GCM tag.
WRAPPED_BYTES: Final = NONCE_BYTES + KEY_BYTES + 16
KEY_ID_BYTES: Final = 8
#: Where a passphrase-derived key's passphrase comes from when no terminal is at hand.
PASSPHRASE_ENV: Final = "PIXMART_KEY_PASSPHRASE"
#: Argon2id settings for new passphrase keys (RFC 9106's second recommendation: 64 MiB, t=3).
ARGON2_ITERATIONS: Final = 3
ARGON2_LANES: Final = 4
ARGON2_MEMORY_KIB: Final = 64 * 1024


class MasterKeyError(Exception):
    """A master key cannot be read, made or used; the message says which and why."""


class WrongKey(MasterKeyError):
    """Sealed data was wrapped by a master key this process does not hold.

    Attributes:
        key_id: The id of the key that wrapped it.
    """

    def __init__(self, key_id: str) -> None:
        super().__init__(f"sealed with master key {key_id}, which this server does not hold")
        self.key_id = key_id


def _hkdf(key: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=purpose).derive(key)


@dataclass(frozen=True, slots=True)
class MasterKey:
    """A master key: what it wraps data keys with, and its public id.

    Attributes:
        key_id: 16 hex digits naming the key in logs, keyrings and sealed headers.
    """

    key_id: str
    _wrap: AESGCM
    _names_seed: bytes

    @classmethod
    def from_bytes(cls, key: bytes) -> MasterKey:
        """The master key ``key`` (32 bytes)."""
        if len(key) != KEY_BYTES:
            raise MasterKeyError(f"a master key is {KEY_BYTES} bytes, not {len(key)}")
        key_id = hmac.new(key, b"pixmart master key id", hashlib.sha256).hexdigest()
        return cls(
            key_id=key_id[: KEY_ID_BYTES * 2],
            _wrap=AESGCM(_hkdf(key, b"pixmart data key wrapping v1")),
            _names_seed=_hkdf(key, b"pixmart object names v1"),
        )

    @property
    def raw_id(self) -> bytes:
        """The id as the 8 bytes written into sealed headers."""
        return bytes.fromhex(self.key_id)

    def initial_name_key(self) -> bytes:
        """The key that names objects in a store this master key is the first of.

        Derived, not random, so that instances creating one store's keyring at the same time
        agree on it; a rotation carries it over to the next master key wrapped, unchanged.
        """
        return self._names_seed

    def wrap(self, data_key: bytes, context: bytes) -> bytes:
        """``data_key`` wrapped under this key, bound to ``context`` (:data:`WRAPPED_BYTES`)."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + self._wrap.encrypt(nonce, data_key, context)

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        """The data key inside ``wrapped``.

        Raises:
            InvalidTag: ``wrapped`` or ``context`` was altered, or another key wrapped it.
        """
        return self._wrap.decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], context)


class KeySet:
    """The master keys a process holds: one wraps new data keys, others only unwrap.

    Args:
        current: The key new data keys are wrapped under (``--key-file``).
        others: Keys also accepted for unwrapping, during a rotation (``--old-key-file``).
    """

    def __init__(self, current: MasterKey, others: Iterable[MasterKey] = ()) -> None:
        self.current = current
        self._by_id = {key.key_id: key for key in (*others, current)}

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._by_id

    def __iter__(self) -> Iterator[MasterKey]:
        return iter(self._by_id.values())

    @property
    def ids(self) -> list[str]:
        """The ids of every key held, the current one first."""
        return [self.current.key_id, *(k for k in self._by_id if k != self.current.key_id)]

    def get(self, key_id: str) -> MasterKey:
        """The key ``key_id``.

        Raises:
            WrongKey: this set does not hold it.
        """
        try:
            return self._by_id[key_id]
        except KeyError:
            raise WrongKey(key_id) from None

    def unwrap(self, key_id: str, wrapped: bytes, context: bytes) -> bytes:
        """Unwrap a data key wrapped under the key ``key_id``.

        Raises:
            WrongKey: the key is not held.
            InvalidTag: the wrapped key or its context was altered.
        """
        return self.get(key_id).unwrap(wrapped, context)


def generate_key_file(path: Path, *, passphrase: str | None = None) -> MasterKey:
    """Write a new master key file at ``path`` (0600, never over an existing file).

    Args:
        passphrase: Derive the key from this with Argon2id instead of storing random bytes.

    Raises:
        MasterKeyError: ``path`` exists, or cannot be written.
    """
    if path.exists():
        raise MasterKeyError(f"{path} exists already; a key file is never overwritten")
    document: dict[str, object] = {"format": KEY_FORMAT}
    if passphrase is None:
        key = secrets.token_bytes(KEY_BYTES)
        document["key"] = base64.b64encode(key).decode()
    else:
        if len(passphrase) < 12:
            raise MasterKeyError("a passphrase needs at least 12 characters")
        salt = secrets.token_bytes(16)
        document |= {
            "kdf": "argon2id",
            "salt": base64.b64encode(salt).decode(),
            "iterations": ARGON2_ITERATIONS,
            "lanes": ARGON2_LANES,
            "memory_cost": ARGON2_MEMORY_KIB,
        }
        key = _argon2(passphrase, salt, ARGON2_ITERATIONS, ARGON2_LANES, ARGON2_MEMORY_KIB)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with atomic_writer(path) as stream:
            stream.write(json.dumps(document, indent=1).encode() + b"\n")
        os.chmod(path, FILE_MODE)
    except OSError as exc:
        raise MasterKeyError(f"cannot write the key file {path}: {exc.strerror or exc}") from None
    return MasterKey.from_bytes(key)


def load_key_file(path: Path) -> MasterKey:
    """The master key in the file ``path`` (asking for its passphrase if it has one).

    Raises:
        MasterKeyError: the file is missing, unreadable, readable by others, or not a key file.
    """
    try:
        stat = path.stat()
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MasterKeyError(f"cannot read the key file {path}: {exc.strerror or exc}") from None
    if os.name == "posix" and stat.st_mode & 0o077:
        raise MasterKeyError(
            f"the key file {path} can be read by other users (mode {stat.st_mode & 0o777:o}); "
            f"run: chmod 600 {path}"
        )
    try:
        document = json.loads(text)
        if not isinstance(document, dict) or document.get("format") != KEY_FORMAT:
            raise ValueError("not a pixmart master key")
        if document.get("kdf") == "argon2id":
            return MasterKey.from_bytes(
                _argon2(
                    _passphrase(path),
                    base64.b64decode(document["salt"], validate=True),
                    int(document["iterations"]),
                    int(document["lanes"]),
                    int(document["memory_cost"]),
                )
            )
        return MasterKey.from_bytes(base64.b64decode(document["key"], validate=True))
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise MasterKeyError(f"{path} is not a pixmart master key file ({exc})") from None


def _passphrase(path: Path) -> str:
    """The passphrase of the key file ``path``, from the environment or the terminal."""
    passphrase = os.environ.get(PASSPHRASE_ENV)
    if passphrase is None:
        if not sys.stdin.isatty():
            raise MasterKeyError(f"{path} needs its passphrase: set {PASSPHRASE_ENV}")
        passphrase = getpass.getpass(f"Passphrase for {path}: ")
    return passphrase


def _argon2(passphrase: str, salt: bytes, iterations: int, lanes: int, memory_kib: int) -> bytes:
    kdf = Argon2id(
        salt=salt,
        length=KEY_BYTES,
        iterations=iterations,
        lanes=lanes,
        memory_cost=memory_kib,
    )
    return kdf.derive(passphrase.encode("utf-8"))


__all__ = [
    "InvalidTag",
    "MasterKeyError",
    "KeySet",
    "MasterKey",
    "WrongKey",
    "generate_key_file",
    "load_key_file",
]
