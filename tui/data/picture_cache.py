"""Provides :class:`DiskPictureCache`: pictures on disk by content hash, one folder per server.

Thumbnails, previews and similar-strip pictures are named by their SHA-256, so a picture the
client holds never needs to cross the network again, whatever listing, sort or session brings
it back. The cache lives in the user cache dir (``PIXMART_CACHE_DIR`` overrides it):

```
<cache dir>/pictures/<server namespace>/ab/abcdef…   one file per picture, named by its hash
<cache dir>/pictures/<server namespace>/tmp/…        writes in progress (renamed into place)
```

- Per server: the namespace is a hash of the server's address and its trust identity (the
  pinned certificate fingerprint, or the CA file that vouches for it), so two servers, or a
  server reinstalled under a new certificate at the same address, never share pictures.
- Bounded: every namespace together holds at most ``limit_bytes`` (default 200 MB); beyond it the
  least recently used pictures go first (recency is the file's mtime, touched on every hit), down
  to 90% of the bound so that eviction is rare.
- Safe: a write goes to a temporary file renamed into place, so a reader never sees half of one;
  every read verifies the hash, and a corrupt or truncated file (a crash, a full disk) is deleted
  and counted as a miss. Two app instances share the folder: renames are atomic, and a file the
  other one evicted is just a miss.
- Never on the event loop: the ``async`` methods run the blocking ones in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import secrets
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import platformdirs

#: Overrides the client's cache dir (tests, portable installs).
CACHE_DIR_VARIABLE: Final = "PIXMART_CACHE_DIR"
#: Overrides the picture cache's bound, in megabytes.
CACHE_LIMIT_VARIABLE: Final = "PIXMART_PICTURE_CACHE_MB"
DEFAULT_LIMIT_BYTES: Final = 200 * 1024 * 1024
#: After an eviction the cache holds at most this share of its bound.
LOW_WATER: Final = 0.9
#: Temporary files older than this are leftovers of a crashed writer.
STALE_TEMP_SECONDS: Final = 3600.0
#: A hit refreshes a file's recency only if it is older than this (one write a minute at most).
TOUCH_AFTER_SECONDS: Final = 60.0

_DIGEST: Final = re.compile(r"^[0-9a-f]{64}$")
_TMP: Final = "tmp"


def cache_dir() -> Path:
    """The client's cache dir: ``PIXMART_CACHE_DIR``, else the platform's user cache dir."""
    env = os.environ.get(CACHE_DIR_VARIABLE)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("pixmart", appauthor=False))


def cache_limit_bytes() -> int:
    """The picture cache's bound: ``PIXMART_PICTURE_CACHE_MB`` megabytes, else 200 MB.

    Raises:
        ValueError: the variable is not a positive number.
    """
    env = os.environ.get(CACHE_LIMIT_VARIABLE)
    if not env:
        return DEFAULT_LIMIT_BYTES
    megabytes = float(env)
    if megabytes <= 0:
        raise ValueError(f"{CACHE_LIMIT_VARIABLE} must be a positive number of megabytes")
    return int(megabytes * 1024 * 1024)


def server_namespace(server: str, identity: str) -> str:
    """The folder name of one server's pictures: a hash of its address and trust identity.

    Args:
        server: the server's address (``wss://host:port``).
        identity: what vouches for it, e.g. ``sha256:AB:CD:…`` (see
            :func:`tui.data.server_identity.trust_identity`).
    """
    return hashlib.sha256(f"{server}\n{identity}".encode()).hexdigest()[:32]


def is_digest(text: str) -> bool:
    """Whether ``text`` is a lower-case hex SHA-256 (and so safe as a file name)."""
    return _DIGEST.match(text) is not None


@dataclass(frozen=True)
class _Entry:
    path: Path
    size: int
    used_at: float


class DiskPictureCache:
    """One server's pictures on disk, by SHA-256, bounded with the other servers' together.

    Args:
        root: the pictures folder holding every server's namespace (``<cache dir>/pictures``).
        namespace: this server's folder (:func:`server_namespace`).
        limit_bytes: what every namespace under ``root`` may hold together.
    """

    def __init__(self, root: Path, namespace: str, *, limit_bytes: int = DEFAULT_LIMIT_BYTES):
        if not re.fullmatch(r"[0-9a-f]{8,64}", namespace):
            raise ValueError(f"not a cache namespace: {namespace!r}")
        self.root = root
        self.folder = root / namespace
        self.limit_bytes = limit_bytes
        self._lock = threading.Lock()
        #: Bytes under ``root`` as last counted plus what this process wrote since.
        self._usage: int | None = None

    # -- blocking (call in a thread) -----------------------------------------------------------

    def read(self, digest: str) -> bytes | None:
        """The picture named ``digest``, or ``None``; a file that fails its hash is deleted."""
        if not is_digest(digest):
            return None
        path = self._path(digest)
        try:
            data = path.read_bytes()
        except OSError:
            return None  # absent, or evicted by another instance a moment ago
        if hashlib.sha256(data).hexdigest() != digest:
            self._discard(path, len(data))
            return None
        self._touch(path)
        return data

    def read_many(self, digests: Iterable[str]) -> dict[str, bytes]:
        """The pictures of ``digests`` that are here (and intact), by digest."""
        found: dict[str, bytes] = {}
        for digest in digests:
            if digest not in found and (data := self.read(digest)) is not None:
                found[digest] = data
        return found

    def write(self, digest: str, data: bytes) -> bool:
        """Keep ``data`` as ``digest``; returns whether it was stored.

        Bytes that do not hash to ``digest`` (or larger than a tenth of the bound) are refused,
        so the cache never holds a picture under another's name.
        """
        if not is_digest(digest) or len(data) > self.limit_bytes // 10:
            return False
        if hashlib.sha256(data).hexdigest() != digest:
            return False
        path = self._path(digest)
        if path.exists():
            self._touch(path, force=True)
            return True
        try:
            self._write_atomically(path, data)
        except OSError:
            return False  # a full or read-only disk costs a cache entry, nothing else
        with self._lock:
            if self._usage is not None:
                self._usage += len(data)
            over = self._usage is None or self._usage > self.limit_bytes
        if over:
            self.evict()
        return True

    def write_many(self, pictures: Mapping[str, bytes]) -> int:
        """Keep several pictures; returns how many were stored."""
        return sum(self.write(digest, data) for digest, data in pictures.items())

    def usage(self) -> int:
        """Bytes held under ``root`` (every namespace), counted afresh."""
        total = sum(entry.size for entry in self._entries())
        with self._lock:
            self._usage = total
        return total

    def evict(self) -> int:
        """Delete the least recently used pictures until the cache is under its low water mark.

        Counts what is on disk first (another instance may have written or evicted meanwhile).
        Returns how many bytes were freed.
        """
        with self._lock:
            entries = sorted(self._entries(), key=lambda entry: entry.used_at)
            total = sum(entry.size for entry in entries)
            freed = 0
            if total > self.limit_bytes:
                target = int(self.limit_bytes * LOW_WATER)
                for entry in entries:
                    if total - freed <= target:
                        break
                    with contextlib.suppress(FileNotFoundError):
                        entry.path.unlink()
                    freed += entry.size
            self._usage = total - freed
        return freed

    def sweep_temporary(self, now: float | None = None) -> int:
        """Delete temporary files a crashed writer left in this namespace; returns how many."""
        now = time.time() if now is None else now
        removed = 0
        with contextlib.suppress(FileNotFoundError), os.scandir(self.folder / _TMP) as listing:
            for entry in listing:
                with contextlib.suppress(OSError):
                    if now - entry.stat().st_mtime > STALE_TEMP_SECONDS:
                        os.unlink(entry.path)
                        removed += 1
        return removed

    # -- async (the event loop's side) ---------------------------------------------------------

    async def get(self, digest: str) -> bytes | None:
        """:meth:`read` in a thread."""
        return await asyncio.to_thread(self.read, digest)

    async def put(self, digest: str, data: bytes) -> None:
        """:meth:`write` in a thread."""
        await asyncio.to_thread(self.write, digest, data)

    async def get_many(self, digests: Iterable[str]) -> dict[str, bytes]:
        """:meth:`read_many` in one thread hop."""
        return await asyncio.to_thread(self.read_many, list(digests))

    async def put_many(self, pictures: Mapping[str, bytes]) -> int:
        """:meth:`write_many` in one thread hop."""
        return await asyncio.to_thread(self.write_many, dict(pictures))

    # -- helpers -------------------------------------------------------------------------------

    def _path(self, digest: str) -> Path:
        return self.folder / digest[:2] / digest

    def _write_atomically(self, path: Path, data: bytes) -> None:
        # No fsync: a cache may lose a file in a crash, and a torn one fails its hash on read.
        tmp_dir = self.folder / _TMP
        tmp_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = tmp_dir / f"{path.name[:16]}.{os.getpid()}.{secrets.token_hex(6)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    def _touch(self, path: Path, *, force: bool = False) -> None:
        """Mark ``path`` as just used (its mtime is the recency eviction goes by)."""
        with contextlib.suppress(OSError):
            if force or time.time() - path.stat().st_mtime > TOUCH_AFTER_SECONDS:
                os.utime(path)

    def _discard(self, path: Path, size: int) -> None:
        with contextlib.suppress(OSError):
            path.unlink()
        with self._lock:
            if self._usage is not None:
                self._usage = max(0, self._usage - size)

    def _entries(self) -> Iterator[_Entry]:
        """Every picture file under ``root``, with its size and last use."""
        for namespace in _subfolders(self.root):
            for fan in _subfolders(Path(namespace)):
                if os.path.basename(fan) == _TMP:
                    continue
                with contextlib.suppress(FileNotFoundError), os.scandir(fan) as files:
                    for entry in files:
                        with contextlib.suppress(OSError):
                            if entry.is_file(follow_symlinks=False):
                                stat = entry.stat(follow_symlinks=False)
                                yield _Entry(Path(entry.path), stat.st_size, stat.st_mtime)


def _subfolders(folder: Path) -> list[str]:
    try:
        with os.scandir(folder) as listing:
            return [entry.path for entry in listing if entry.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []


__all__ = [
    "CACHE_DIR_VARIABLE",
    "CACHE_LIMIT_VARIABLE",
    "DEFAULT_LIMIT_BYTES",
    "DiskPictureCache",
    "cache_dir",
    "cache_limit_bytes",
    "is_digest",
    "server_namespace",
]
