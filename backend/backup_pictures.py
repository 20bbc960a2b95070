"""Provides :class:`PictureFolder`: a ``blobs`` folder as backups see it, plain or sealed.

A backup copies picture files by the names the database gives them, the pictures' SHA-256, and
a restore checks each file it copies. How depends on the folder:

* **Plain** (a shop run ``--unencrypted``, or a backup made before encryption): each file is
  named by its content's SHA-256, so a copy is checked by hashing it.
* **Sealed** (:mod:`backend.atrest`): each file is named ``HMAC(name key, SHA-256)`` and the
  folder keeps its ``keyring.json``, which holds the name key wrapped under each master key that
  may have sealed a file in it. Mapping the database's names to the files needs that name key,
  so a backup and a restore need the master key, loaded as the server loads it. A copy is checked
  by opening it (authenticated decryption, bound to its name): a flipped bit, a truncated file or
  two files swapped are refused, a file sealed under a key not given is refused naming the key.
* **Being sealed in place** (``plaintext_left`` in the keyring): a picture is stored under its
  sealed name, its old plain name, or (for a moment) both; the job writes the sealed file before
  removing the plain one. Both names are tried, the plain one first, so a picture sealed between
  the two looks is still found; a file that is not sealed must hash to its name.

The master key is never read from, or written to, the folder or the backup: it lives outside
the data dir (:func:`backend.atrest.server_keys.server_key_set` refuses one inside it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from backend.atrest.envelope import (
    HEADER_BYTES,
    MAGIC,
    TAG_BYTES,
    OpenedHeader,
    SealBroken,
    Sealer,
)
from backend.atrest.keyring import KEYRING, Keyring, KeyringMismatch, StoreKeys
from backend.atrest.keys import KeySet, MasterKeyError, WrongKey
from backend.atrest.sealed_blobs import blob_context

#: Loads the master keys given (``--key-file``, ``--old-key-file``); ``None`` when the
#: configuration says to run without encryption. Only called for a sealed folder.
KeyLoader = Callable[[], KeySet | None]


class PictureKeyError(Exception):
    """The keys given do not open the folder's pictures; the message names the key ids."""


class PictureDamaged(Exception):
    """A picture file's content does not check out; the message says how (no key material)."""


class ContentCheck(Protocol):
    """Checks a file's content fed to it in order, as it is copied."""

    def update(self, chunk: bytes) -> None:
        """Take the next bytes of the file.

        Raises:
            PictureDamaged, PictureKeyError: what was read so far does not check out.
        """
        ...

    def finish(self) -> None:
        """The file ended.

        Raises:
            PictureDamaged, PictureKeyError: the file does not check out.
        """
        ...


class HashCheck:
    """Checks that a file's content hashes to ``sha256`` (hex)."""

    def __init__(self, sha256: str) -> None:
        self._expected = sha256
        self._digest = hashlib.sha256()

    def update(self, chunk: bytes) -> None:
        """Hash the next bytes."""
        self._digest.update(chunk)

    def finish(self) -> None:
        """Compare the hash."""
        if self._digest.hexdigest() != self._expected:
            raise PictureDamaged("its content does not match its SHA-256")


class SealCheck:
    """Opens a sealed file segment by segment as it streams past, keeping one segment's worth.

    The same checks as :meth:`backend.atrest.envelope.Sealer.open` (header, every segment's
    tag, the exact length), without holding a whole original in memory.
    """

    def __init__(self, sealer: Sealer, context: bytes) -> None:
        self._sealer = sealer
        self._context = context
        self._pending = bytearray()
        self._opened: OpenedHeader | None = None
        self._next_segment = 0
        self._size = 0

    def update(self, chunk: bytes) -> None:
        """Open the segments ``chunk`` completes."""
        self._size += len(chunk)
        self._pending += chunk
        opened = self._opened
        if opened is None:
            if len(self._pending) < HEADER_BYTES:
                return
            opened = self._opened = self._open_header()
            del self._pending[:HEADER_BYTES]
        if self._size > opened.header.sealed_bytes:
            raise PictureDamaged(
                f"it is longer than the {opened.header.sealed_bytes} bytes its header says"
            )
        step = opened.header.segment_bytes + TAG_BYTES
        whole = len(self._pending) // step
        if whole:
            self._open_segments(opened, whole * step)
            self._next_segment += whole

    def finish(self) -> None:
        """Open the last segment and check the length."""
        opened = self._opened
        if opened is None:
            opened = self._open_header()  # too short for a header: says so
        if self._size != opened.header.sealed_bytes:
            raise PictureDamaged(
                f"it is {self._size} bytes, its header says {opened.header.sealed_bytes}"
            )
        if self._pending:
            self._open_segments(opened, len(self._pending))

    def _open_header(self) -> OpenedHeader:
        try:
            return self._sealer.open_header(bytes(self._pending[:HEADER_BYTES]), self._context)
        except WrongKey as exc:
            raise PictureKeyError(
                f"it is sealed under master key {exc.key_id}, which was not given (--key-file, "
                "or --old-key-file while a rotation away from it is unfinished)"
            ) from None
        except SealBroken as exc:
            raise PictureDamaged(str(exc)) from None

    def _open_segments(self, opened: OpenedHeader, length: int) -> None:
        try:
            opened.open_segments(self._next_segment, bytes(self._pending[:length]))
        except SealBroken as exc:
            raise PictureDamaged(str(exc)) from None
        del self._pending[:length]


class _SealedOrPlainCheck:
    """For a folder being sealed in place: a sealed file opens, any other hashes to its name."""

    def __init__(self, sealer: Sealer, name: str) -> None:
        self._sealer = sealer
        self._name = name
        self._check: ContentCheck | None = None

    def update(self, chunk: bytes) -> None:
        """Pick the check by the file's first bytes (a whole read chunk, or the whole file)."""
        if self._check is None:
            sealed = chunk[: len(MAGIC)] == MAGIC
            self._check = (
                SealCheck(self._sealer, blob_context(self._name))
                if sealed
                else HashCheck(self._name)
            )
        self._check.update(chunk)

    def finish(self) -> None:
        """Finish the check picked."""
        (self._check or HashCheck(self._name)).finish()


@dataclass(frozen=True)
class PictureFolder:
    """A ``blobs`` folder: how its files are named and checked (see the module docstring).

    Attributes:
        keyring: The folder's keyring; ``None`` for a plain folder.
        names: What maps a picture's SHA-256 to its sealed name; ``None`` for a plain folder.
        sealer: Opens the sealed files; ``None`` for a plain folder.
    """

    keyring: Keyring | None = None
    names: StoreKeys | None = None
    sealer: Sealer | None = None

    @classmethod
    def open(cls, folder: Path, keys: KeyLoader) -> PictureFolder:
        """The folder at ``folder`` (missing: a plain one without pictures).

        Args:
            keys: Called only when the folder is sealed.

        Raises:
            PictureKeyError: the folder is sealed and no key given opens its keyring (or none
                was given, or it could not be read); the message names the keys' ids.
            PictureDamaged: its keyring is not a keyring.
        """
        keyring = read_keyring(folder)
        if keyring is None:
            return cls()
        where = f"the pictures in {folder} are encrypted under master key {keyring.describe()}"
        try:
            key_set = keys()
        except MasterKeyError as exc:
            raise PictureKeyError(f"{where}; {exc}") from None
        if key_set is None:
            raise PictureKeyError(
                f"{where}: give that key with --key-file (or PIXMART_KEY_FILE), and do not "
                "set PIXMART_UNENCRYPTED"
            )
        try:
            name_key = keyring.name_key(key_set)
        except KeyringMismatch as exc:
            raise PictureKeyError(f"cannot open the pictures in {folder}: {exc}") from None
        return cls(keyring, StoreKeys(key_set, name_key, keyring), Sealer(key_set))

    def with_keyring(self, keyring: Keyring) -> PictureFolder:
        """This folder described by ``keyring`` (see :func:`merged_keyring`)."""
        return replace(self, keyring=keyring)

    @property
    def encrypted(self) -> bool:
        """Whether the folder has a keyring (its files are, or are being, sealed)."""
        return self.keyring is not None

    def stored_names(self, sha256: str) -> tuple[str, ...]:
        """The names the picture hashing to ``sha256`` may be stored under, to try in order."""
        if self.names is None or self.keyring is None:
            return (sha256,)
        sealed = self.names.storage_name(sha256)
        # Plain first: the job sealing in place writes the sealed file before removing the
        # plain one, so a picture not found under its plain name is under its sealed name.
        return (sha256, sealed) if self.keyring.plaintext_left else (sealed,)

    def check(self, name: str) -> ContentCheck:
        """A check of the content of the file stored as ``name``."""
        if self.sealer is None or self.keyring is None:
            return HashCheck(name)
        if self.keyring.plaintext_left:
            return _SealedOrPlainCheck(self.sealer, name)
        return SealCheck(self.sealer, blob_context(name))

    def describe(self) -> dict[str, object]:
        """What a backup manifest records of the folder: ids and flags, never key material."""
        keyring = self.keyring
        if keyring is None:
            return {"encrypted": False}
        return {
            "encrypted": True,
            "master_keys": sorted(keyring.names),
            "retiring": keyring.retiring,
            "plaintext_left": keyring.plaintext_left,
        }


def read_keyring(folder: Path) -> Keyring | None:
    """The keyring of the ``blobs`` folder ``folder``; ``None`` when it has none (plain).

    Raises:
        PictureDamaged: the file is not a keyring document.
    """
    try:
        data = (folder / KEYRING).read_bytes()
    except FileNotFoundError:
        return None
    try:
        return Keyring.parse(data)
    except KeyringMismatch as exc:
        raise PictureDamaged(str(exc)) from None


def merged_keyring(first: Keyring, last: Keyring) -> Keyring:
    """The keyring a copy holding files written under either ``first`` or ``last`` needs.

    A backup reads the keyring before copying and again after: a server started meanwhile
    may have listed a new master key, and a rotation may have finished and dropped the old one
    while files wrapped under it were being copied. The copy lists both, and a rotation or a
    sealing in place either one shows as still to finish (the restored server finishes it).
    """
    return Keyring(
        names={**last.names, **first.names},
        retiring=first.retiring or last.retiring,
        plaintext_left=first.plaintext_left or last.plaintext_left,
    )
