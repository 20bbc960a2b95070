"""Provides the store's keyring: which master keys may have wrapped its data keys, and its names.

A sealed store keeps one small document beside its objects, ``keyring.json``::

    {"format": "pixmart-keyring/1",
     "names": {"<master key id>": "<the name key wrapped under that master key, base64>"},
     "retiring": null or "<master key id being rotated away>",
     "plaintext_left": false}

* ``names``: every master key that may have wrapped a data key in this store, each holding
  the store's *name key* (objects are named ``HMAC-SHA256(name key, content hash)``). The name
  key never changes, so rotating the master key renames nothing.
* ``retiring``: set by ``keys rotate`` while it re-wraps data keys; a server must hold that key
  too until the rotation reports done, or some pictures would not open.
* ``plaintext_left``: the store held pictures before it was encrypted, and the background job
  has not sealed them all yet (until then, reads fall back to the old names).

The document holds no secret in the clear: without a master key it tells only the key ids.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass, replace
from typing import Final

from cryptography.exceptions import InvalidTag

from backend.atrest.keys import KeySet, MasterKey
from backend.media.blobs import ObjectStore

log = logging.getLogger(__name__)

KEYRING: Final = "keyring.json"
KEYRING_FORMAT: Final = "pixmart-keyring/1"
_NAME_KEY_CONTEXT: Final = b"pixmart keyring name key"


class KeyringMismatch(Exception):
    """The keys given do not fit the store; the message names the key ids involved."""


@dataclass(frozen=True, slots=True)
class Keyring:
    """The parsed keyring document (see the module docstring)."""

    names: dict[str, bytes]
    retiring: str | None = None
    plaintext_left: bool = False

    @classmethod
    def parse(cls, data: bytes) -> Keyring:
        """The keyring in ``data``.

        Raises:
            KeyringMismatch: ``data`` is not a keyring document.
        """
        try:
            document = json.loads(data)
            if document.get("format") != KEYRING_FORMAT:
                raise ValueError(f"format {document.get('format')!r}")
            names = {
                str(key_id): base64.b64decode(wrapped, validate=True)
                for key_id, wrapped in document["names"].items()
            }
            retiring = document.get("retiring")
            return cls(names, str(retiring) if retiring else None, bool(document["plaintext_left"]))
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
            raise KeyringMismatch(f"the store's {KEYRING} is damaged ({exc})") from None

    def dump(self) -> bytes:
        """The document's bytes."""
        document = {
            "format": KEYRING_FORMAT,
            "names": {
                key_id: base64.b64encode(wrapped).decode() for key_id, wrapped in self.names.items()
            },
            "retiring": self.retiring,
            "plaintext_left": self.plaintext_left,
        }
        return json.dumps(document, indent=1).encode() + b"\n"

    def describe(self) -> str:
        """The key ids, for error messages."""
        return ", ".join(sorted(self.names)) or "none"

    def name_key(self, keys: KeySet) -> bytes:
        """The store's name key, unwrapped with the first held master key listed.

        Raises:
            KeyringMismatch: no key held is listed, or the listed one fails to unwrap.
        """
        for key_id, wrapped in self.names.items():
            if key_id in keys:
                try:
                    return keys.unwrap(key_id, wrapped, _NAME_KEY_CONTEXT)
                except InvalidTag:
                    raise KeyringMismatch(
                        f"the keyring's entry for master key {key_id} does not open with it "
                        "(the keyring was altered)"
                    ) from None
        raise KeyringMismatch(
            f"this store is encrypted with master key {self.describe()}; the key given is "
            f"{', '.join(keys.ids)}"
        )

    def with_key(self, master: MasterKey, name_key: bytes) -> Keyring:
        """This keyring with ``master`` listed (wrapping the same name key)."""
        names = dict(self.names)
        names[master.key_id] = master.wrap(name_key, _NAME_KEY_CONTEXT)
        return replace(self, names=names)

    def without_key(self, key_id: str) -> Keyring:
        """This keyring with ``key_id`` no longer listed, and no rotation in progress."""
        return replace(
            self, names={k: v for k, v in self.names.items() if k != key_id}, retiring=None
        )


@dataclass(frozen=True, slots=True)
class StoreKeys:
    """What a server holding ``keys`` needs to use a sealed store."""

    keys: KeySet
    name_key: bytes
    keyring: Keyring

    def storage_name(self, sha256: str) -> str:
        """The object name of the content hashing to ``sha256`` (64 hex digits)."""
        return hmac.new(self.name_key, bytes.fromhex(sha256), hashlib.sha256).hexdigest()


async def load_keyring(store: ObjectStore) -> Keyring | None:
    """The store's keyring, or ``None`` when it has none (never encrypted)."""
    data = await store.read_meta(KEYRING)
    return None if data is None else Keyring.parse(data)


async def open_store_keys(store: ObjectStore, keys: KeySet) -> StoreKeys:
    """Check ``keys`` against the store's keyring, making the keyring on first use.

    A store without a keyring gets one listing ``keys.current``; if it holds pictures already
    (written before encryption), it is marked ``plaintext_left`` for the background job. A
    server whose current key is not listed yet (the second step of a rotation in a cluster)
    adds it, wrapping the same name key.

    Raises:
        KeyringMismatch: no key held opens the keyring, or a rotation is in progress and the
            key it retires is not held.
    """
    keyring = await load_keyring(store)
    if keyring is None:
        plaintext_left = await _holds_objects(store)
        name_key = keys.current.initial_name_key()
        keyring = Keyring({}, None, plaintext_left).with_key(keys.current, name_key)
        await store.write_meta(KEYRING, keyring.dump())
        log.info(
            "picture store encrypted under master key %s from now on%s",
            keys.current.key_id,
            " (pictures stored before are being encrypted in the background)"
            if plaintext_left
            else "",
        )
        return StoreKeys(keys, name_key, keyring)
    name_key = keyring.name_key(keys)
    if keyring.retiring is not None and keyring.retiring not in keys:
        raise KeyringMismatch(
            f"a rotation away from master key {keyring.retiring} is in progress; start with "
            "that key as --old-key-file too, or finish it with `pixmart-server keys rotate`"
        )
    if keys.current.key_id not in keyring.names:
        keyring = keyring.with_key(keys.current, name_key)
        await store.write_meta(KEYRING, keyring.dump())
        log.info("master key %s added to the store's keyring", keys.current.key_id)
    return StoreKeys(keys, name_key, keyring)


async def _holds_objects(store: ObjectStore) -> bool:
    async for _ in store.names():
        return True
    return False
