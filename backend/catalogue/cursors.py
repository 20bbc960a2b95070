"""Provides opaque, tamper-proof listing cursors signed with a secret kept in the data dir.

A cursor carries only a keyset position (e.g. the ``(created_at, id)`` of the last item sent).
Its HMAC-SHA256 covers the position and a *binding*: the listing's kind, the viewer and the
canonical filters. Opening a cursor recomputes the binding from the request that brought it
back, so a cursor edited by hand, made for other filters or issued to another user is refused
with ``bad_request``. The secret lives in a 0600 file created on first start (in the database
when several instances share one, see :func:`backend.catalogue.repositories.cursor_secret`), so
cursors stay valid across reconnects, restarts and instances.

Other listings (similar-image search, order history) reuse this: pick a ``scope``, build the
binding with :func:`cursor_binding`, seal the position of the last row sent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Final

import msgspec

from protocol.errors import BadRequest

SECRET_BYTES: Final = 32
_VERSION: Final = 1
_MAC_BYTES: Final = 32
_DOMAIN: Final = b"pixmart-cursor-v1\x00"

#: A keyset position: the sort key values of the last row sent.
Position = list[int | float | str]

_encoder = msgspec.msgpack.Encoder()
_body_decoder = msgspec.msgpack.Decoder(tuple[int, list[int | float | str]])


def cursor_binding(scope: str, viewer_id: int, *parts: object) -> bytes:
    """Return the binding of a listing: its scope, the viewer and its canonical parameters.

    Args:
        scope: What kind of listing, e.g. ``"catalogue.browse"``; keeps cursors of one
            listing out of another.
        viewer_id: The user the listing is for.
        parts: The normalised filters and the sort order; msgpack-encodable values.
    """
    return hashlib.sha256(_encoder.encode([scope, viewer_id, list(parts)])).digest()


def load_or_create_secret(path: Path) -> bytes:
    """Return the secret stored at ``path``, creating it (mode 0600) if it does not exist.

    Raises:
        RuntimeError: the file exists but does not hold a secret.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = path.read_bytes()
        if len(secret) != SECRET_BYTES:
            raise RuntimeError(f"{path} is damaged; delete it to issue new cursors") from None
        return secret
    secret = secrets.token_bytes(SECRET_BYTES)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(secret)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return secret


class CursorSigner:
    """Seals keyset positions into cursors and opens them again (see the module docstring)."""

    def __init__(self, secret: bytes | None = None) -> None:
        """A signer with ``secret``, or one keyed later by :meth:`use_secret`."""
        self._secret: bytes | None = None
        if secret is not None:
            self.use_secret(secret)

    def use_secret(self, secret: bytes) -> None:
        """Sign with ``secret`` from now on (a server loads it from storage as it starts)."""
        if len(secret) < 16:
            raise ValueError("the cursor secret is too short")
        self._secret = secret

    @classmethod
    def from_file(cls, path: Path) -> CursorSigner:
        """A signer with the secret at ``path`` (created on first use)."""
        return cls(load_or_create_secret(path))

    def _mac(self, binding: bytes, body: bytes) -> bytes:
        if self._secret is None:
            raise RuntimeError("the cursor secret is not loaded yet")
        # One-shot: OpenSSL's HMAC without building an hmac object per cursor.
        return hmac.digest(self._secret, _DOMAIN + binding + body, "sha256")

    def seal(self, binding: bytes, position: Position) -> str:
        """Return the cursor for ``position`` in the listing described by ``binding``."""
        body = _encoder.encode((_VERSION, position))
        token = body + self._mac(binding, body)
        return base64.urlsafe_b64encode(token).rstrip(b"=").decode("ascii")

    def open(self, cursor: str, binding: bytes) -> Position:
        """Return the position sealed in ``cursor`` if it was issued for ``binding``.

        Raises:
            BadRequest: the cursor is malformed, altered, or from another listing or user.
        """
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError):
            raise _invalid() from None
        body, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if len(raw) <= _MAC_BYTES or not hmac.compare_digest(mac, self._mac(binding, body)):
            raise _invalid()
        try:
            version, position = _body_decoder.decode(body)
        except msgspec.DecodeError:
            raise _invalid() from None
        if version != _VERSION:
            raise _invalid()
        return position


def _invalid() -> BadRequest:
    return BadRequest(
        "The cursor is not valid for this listing; start the listing again without a cursor"
    )
