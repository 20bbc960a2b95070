"""Provides ``pixmart-server backup`` and ``pixmart-server restore``: live, consistent copies.

A backup holds what a restored server needs to be the same server: the database, every picture
file a row of that database names, the TLS key and certificate (same fingerprint, so clients'
pins still match) and the cursor secrets (cursors handed out before stay valid). It leaves out
what the server rebuilds or discards anyway: ``server.lock``, partial uploads (``uploads/``;
their rows are swept on start), the image model cache (``models/``), logs and temporary files.

The backup runs next to a serving server without its lock. The database is copied with SQLite's
online backup API from a read-only connection: one step, so one read transaction, so one
committed state. Picture files are content-addressed and never rewritten, but they appear
(before the row naming them commits) and disappear (after the last row naming them is deleted)
while the backup runs. So the copy goes:

1. copy every blob file there is (most of the work, and it races with nothing that matters);
2. snapshot the database;
3. copy the files the snapshot names that step 1 did not see; if one of them has vanished, the
   item was deleted after the snapshot: take the snapshot again (a few attempts);
4. drop copied files the final snapshot does not name, so the backup is exactly consistent.

Thumbnails and previews live in the database (``pictures.thumbnail``, ``picture_previews``); the
files are the original (``pictures.sha256``) and its metadata-stripped copy (``clean_sha256``).

Pictures encrypted at rest (:mod:`backend.atrest`) are copied sealed, as they are: the database
names them by SHA-256, the folder by a keyed hash of it, so mapping one to the other needs the
master key, loaded as the server loads it (``--key-file``; :mod:`backend.backup_pictures`). The
store's ``keyring.json`` goes with the files and the manifest records the master key ids (never
a key). The master key itself is never copied: it lives outside the data dir, and a backup
without it cannot be read; keep it apart from the backups. A restore needs it too, and checks
each sealed file by opening it; a plain store's files are checked by their hash.

Layout of a backup, built in ``DEST/.partial-*`` and moved into ``DEST`` when whole, the
manifest last (a folder without ``manifest.json`` is an interrupted backup and is refused)::

    DEST/manifest.json        what the backup holds, with the database's SHA-256
    DEST/pixmart.sqlite3      the snapshot, in rollback-journal mode, integrity-checked
    DEST/blobs/ab/cd/abcd...  the picture files, laid out as in the data dir
    DEST/blobs/keyring.json   the store's keyring, if its pictures are encrypted
    DEST/server-key.pem ...   the secrets

Files are 0600 and folders 0700 in the backup and in the restored data dir: they hold the
server's private key, customers' accounts and their pictures.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import secrets
import shutil
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, TypeVar

from backend import tls
from backend.atrest.keyring import KEYRING
from backend.backup_pictures import (
    ContentCheck,
    HashCheck,
    KeyLoader,
    PictureDamaged,
    PictureFolder,
    PictureKeyError,
    merged_keyring,
    read_keyring,
)
from backend.commerce.service import CURSOR_SECRET_FILE
from backend.media.blobstore import BlobStore, is_sha256
from backend.media.fsutil import DIR_MODE, FILE_MODE, fsync_dir

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_R = TypeVar("_R")

MANIFEST: Final = "manifest.json"
DATABASE: Final = "pixmart.sqlite3"
BLOBS: Final = "blobs"
#: Written by the catalogue (``backend/catalogue/service.py``) on first start.
CATALOGUE_CURSOR_FILE: Final = "cursor.key"
#: The files in a data dir that make a server *this* server; each is copied when present.
SECRET_FILES: Final = (tls.CERT_NAME, tls.KEY_NAME, CATALOGUE_CURSOR_FILE, CURSOR_SECRET_FILE)
#: Entries of a data dir a backup deliberately leaves out (besides logs and temporary files).
NOT_COPIED: Final = (
    "server.lock",
    "uploads",
    "models",
    f"{DATABASE}-wal",
    f"{DATABASE}-shm",
    f"{DATABASE}-journal",
)
FORMAT: Final = "pixmart-backup"
#: 2: the manifest's ``pictures`` entry, and sealed pictures with their keyring.
FORMAT_VERSION: Final = 2
#: Versions a restore reads: a version 1 backup holds plain pictures.
READABLE_VERSIONS: Final = (1, 2)
#: Snapshots taken before giving up when picture files keep vanishing under the backup.
SNAPSHOT_ATTEMPTS: Final = 5
#: Files copied at once: each copy ends in an fsync, which waits on the disk, not on the CPU.
COPY_THREADS: Final = 8
#: The staging folder's prefix; a leftover one marks an interrupted backup or restore.
PARTIAL_PREFIX: Final = ".partial-"

_CHUNK: Final = 1024 * 1024


class BackupError(Exception):
    """A backup or restore that cannot go ahead; the message is one line for the operator."""


@dataclass(frozen=True)
class Summary:
    """What a backup or restore wrote.

    Attributes:
        files: Files written, the manifest included.
        bytes: Their total size.
        seconds: Wall-clock time taken.
        fingerprint: The SHA-256 fingerprint of the certificate copied, if there was one.
    """

    files: int
    bytes: int
    seconds: float
    fingerprint: str | None


# -- backup ------------------------------------------------------------------------------------


def backup(
    data_dir: Path, dest: Path, *, keys: KeyLoader, attempts: int = SNAPSHOT_ATTEMPTS
) -> Summary:
    """Copy the data dir ``data_dir`` into the empty or new folder ``dest``, live.

    Needs no lock: a server may be serving from ``data_dir`` meanwhile (see the module
    docstring for how the copy stays consistent).

    Args:
        data_dir: A pixmart data dir (it must hold the database).
        dest: Where the backup goes; created if missing, refused if not empty.
        keys: Loads the master keys; called only if the pictures are encrypted.
        attempts: Database snapshots to try before giving up on a shop deleting pictures
            faster than they can be copied (at least 1).

    Returns:
        What was written.

    Raises:
        BackupError: ``dest`` is not empty, ``data_dir`` holds no database, its pictures are
            encrypted and the keys given do not open them, the copy failed its integrity
            check, or pictures kept vanishing. ``dest`` is left as it was.
        OSError: reading or writing failed (disk full, permissions). ``dest`` is left as it was.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, not {attempts}")
    started = time.monotonic()
    db_path = data_dir / DATABASE
    if not db_path.is_file():
        raise BackupError(f"{data_dir} holds no pixmart database ({DATABASE}); nothing to back up")
    # Before the copy: a key added to the keyring later wraps nothing copied before it.
    folder = _open_folder(data_dir / BLOBS, keys)
    with _Staging(dest) as stage:
        copier = _BlobCopier(data_dir / BLOBS, stage.path / BLOBS)
        copier.copy_all()
        snapshot = stage.path / DATABASE
        for attempt in range(1, attempts + 1):
            _snapshot(db_path, snapshot)
            referenced = {sha: folder.stored_names(sha) for sha in _referenced_blobs(snapshot)}
            vanished = copier.copy_missing(referenced)
            if not vanished:
                break
            log.info(
                "%d picture files were deleted during snapshot %d of %d; taking it again",
                len(vanished),
                attempt,
                attempts,
            )
        else:
            # Vanishing in every snapshot: deleted faster than copied, or lost from the disk.
            raise BackupError(
                f"{data_dir / BLOBS} lacks the picture file of {vanished[0]}, which the database"
                f" names (still missing after {attempts} snapshots)"
            )
        copier.prune(keep=referenced)
        folder, keyring_bytes = _copy_keyring(data_dir / BLOBS, stage.path / BLOBS, folder)
        copier.sync()
        _integrity_check(snapshot)
        # Last: a server starting for the first time writes the cursor secrets just after
        # creating its database, and copying them late gives it the most time to finish.
        copied_secrets = _copy_secrets(data_dir, stage.path, SECRET_FILES)
        fingerprint = _fingerprint(stage.path)
        db_bytes, db_sha256 = _size_and_sha256(snapshot)
        manifest = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "source": str(data_dir.resolve()),
            "database": {
                "name": DATABASE,
                "bytes": db_bytes,
                "sha256": db_sha256,
                "schema_version": _schema_version(snapshot),
            },
            "blobs": {"files": len(copier.copied), "bytes": copier.bytes},
            "pictures": folder.describe(),
            "secrets": copied_secrets,
            "fingerprint": fingerprint,
        }
        manifest_bytes = _write_file(
            stage.path / MANIFEST, json.dumps(manifest, indent=2).encode() + b"\n"
        )
        # The manifest moves in last: its presence is what says the backup is whole.
        stage.commit([DATABASE, BLOBS, *copied_secrets, MANIFEST])
    secret_bytes = sum((dest / name).stat().st_size for name in copied_secrets)
    return Summary(
        files=len(copier.copied) + len(copied_secrets) + 2 + (keyring_bytes > 0),
        bytes=copier.bytes + db_bytes + secret_bytes + manifest_bytes + keyring_bytes,
        seconds=time.monotonic() - started,
        fingerprint=fingerprint,
    )


def _open_folder(folder: Path, keys: KeyLoader) -> PictureFolder:
    """The ``blobs`` folder at ``folder``, with the keys to read it if it is encrypted.

    Raises:
        BackupError: it is encrypted and the keys given do not open it (the message names
            the key ids), or its keyring is damaged.
    """
    try:
        return PictureFolder.open(folder, keys)
    except (PictureKeyError, PictureDamaged) as exc:
        raise BackupError(str(exc)) from None


def _copy_keyring(source: Path, target: Path, folder: PictureFolder) -> tuple[PictureFolder, int]:
    """Write the keyring of the encrypted folder ``source`` into ``target``.

    The keyring read before the copy, merged with the one there now (see
    :func:`~backend.backup_pictures.merged_keyring`). Returns the folder as the copy describes
    it, and the bytes written (0 for a plain folder).
    """
    if folder.keyring is None:
        return folder, 0
    try:
        now = read_keyring(source)
    except PictureDamaged as exc:
        raise BackupError(str(exc)) from None
    keyring = folder.keyring if now is None else merged_keyring(folder.keyring, now)
    return folder.with_keyring(keyring), _write_file(target / KEYRING, keyring.dump())


def _snapshot(db_path: Path, target: Path) -> None:
    """Copy the live database at ``db_path`` into a new file ``target`` (replaced if present).

    Raises:
        BackupError: the database cannot be read.
    """
    target.unlink(missing_ok=True)
    # Created 0600 before SQLite opens it: SQLite keeps an existing file's mode, and gives
    # its journal the same one.
    os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    try:
        # Read-only: the backup must never write the live database (no checkpoint on close).
        with contextlib.closing(_connect_read_only(db_path)) as source:
            with contextlib.closing(sqlite3.connect(target)) as copy:
                # pages=-1 (the default) copies in one step, hence in one read transaction:
                # the copy is the state of one commit however busy the writer is.
                source.backup(copy)
                # The copied header says WAL; a backup is one self-contained file instead.
                copy.execute("PRAGMA journal_mode = DELETE")
    except sqlite3.Error as exc:
        raise BackupError(f"cannot copy the database {db_path}: {exc}") from exc


def _referenced_blobs(db_path: Path) -> set[str]:
    """Return the names of the picture files the rows of the database at ``db_path`` name.

    Raises:
        BackupError: the database cannot be read, or names a file that is not a blob name.
    """
    try:
        with contextlib.closing(_connect_read_only(db_path)) as conn:
            rows = conn.execute("SELECT sha256, clean_sha256 FROM pictures").fetchall()
    except sqlite3.Error as exc:
        raise BackupError(f"cannot read the pictures of {db_path}: {exc}") from exc
    names = {str(name) for row in rows for name in row}
    invalid = sorted(name for name in names if not is_sha256(name))
    if invalid:
        raise BackupError(f"{db_path} names a picture file {invalid[0]!r} that is not a SHA-256")
    return names


class _BlobCopier:
    """Copies blob files from one store into a new one, a few at a time, noting what it copied.

    Args:
        source: The source store's folder (it may be missing: a shop without pictures).
        target: The new store's folder, created if missing.
        check: Makes the check of each file's content, by its name, done while copying it;
            ``None`` copies unchecked.
    """

    def __init__(
        self, source: Path, target: Path, *, check: Callable[[str], ContentCheck] | None = None
    ) -> None:
        # Only read a store that exists: BlobStore would create the folder in the live dir.
        self._source = BlobStore(source) if source.is_dir() else None
        self._target = BlobStore(target)
        self._check = check
        self._dirs: set[Path] = set()
        self.copied: set[str] = set()
        self.bytes = 0

    def copy_all(self) -> list[str]:
        """Copy every blob of the source; return those deleted between listing and copying."""
        return self._copy(list(self._source.iter_all()) if self._source is not None else [])

    def copy_missing(self, wanted: Mapping[str, Sequence[str]]) -> list[str]:
        """Copy the pictures of ``wanted`` no file copied holds yet; return those not found.

        Args:
            wanted: Each picture's SHA-256, and the names its file may be stored under, tried
                in this order (:meth:`~backend.backup_pictures.PictureFolder.stored_names`).
        """
        missing = {sha: names for sha, names in wanted.items() if self.copied.isdisjoint(names)}
        position = 0
        while tries := {
            sha: names[position] for sha, names in missing.items() if position < len(names)
        }:
            gone = set(self._copy(sorted(set(tries.values()))))
            missing = {
                sha: names
                for sha, names in missing.items()
                if sha not in tries or tries[sha] in gone
            }
            position += 1
        return sorted(missing)

    def prune(self, keep: Mapping[str, Sequence[str]]) -> None:
        """Remove the copied blobs no picture of ``keep`` needs: no row of the snapshot names
        them, or they are the plain copy of a picture whose sealed file was copied too (the
        last of its names copied is kept)."""
        kept = set()
        for names in keep.values():
            copied = [name for name in names if name in self.copied]
            if copied:
                kept.add(copied[-1])
        for name in sorted(self.copied - kept):
            path = self._target.path_for(name)
            self.bytes -= path.stat().st_size
            path.unlink()
            self.copied.discard(name)

    def sync(self) -> None:
        """Flush the names of the folders and files copied (a file's fsync does not cover them)."""
        _in_threads(fsync_dir, [self._target.root, *sorted(self._dirs)])

    def _copy(self, names: list[str]) -> list[str]:
        if self._source is None:
            return sorted(names)
        source = self._source
        check = self._check
        jobs = [
            (source.path_for(name), self._prepare(name), None if check is None else check(name))
            for name in names
        ]
        vanished: list[str] = []
        for name, size in zip(names, _in_threads(_copy_if_present, jobs), strict=True):
            if size is None:
                vanished.append(name)  # deleted since it was listed: its last item went
            else:
                self.copied.add(name)
                self.bytes += size
        return sorted(vanished)

    def _prepare(self, name: str) -> Path:
        """Create the fan-out folders of blob ``name`` in the target; return its path there."""
        path = self._target.path_for(name)
        for directory in (path.parent.parent, path.parent):
            if directory not in self._dirs:
                directory.mkdir(mode=DIR_MODE, exist_ok=True)
                self._dirs.add(directory)
        return path


def _copy_secrets(source: Path, target: Path, names: Sequence[str]) -> list[str]:
    """Copy the files ``names`` present in ``source`` into ``target``; return those copied."""
    copied: list[str] = []
    for name in names:
        try:
            _copy_file(source / name, target / name)
        except FileNotFoundError:
            continue  # e.g. no self-signed pair when the server uses --cert and --key
        copied.append(name)
    return copied


def _fingerprint(directory: Path) -> str | None:
    """The fingerprint of the certificate in ``directory``, or ``None`` if there is none."""
    cert = directory / tls.CERT_NAME
    return tls.fingerprint_of_pem_file(cert) if cert.is_file() else None


# -- restore -----------------------------------------------------------------------------------


def verify_backup(source: Path, keys: KeyLoader) -> tuple[dict[str, Any], PictureFolder]:
    """Check that ``source`` is a complete, undamaged backup; return its manifest and pictures.

    Cheap checks only (the files' content is checked while :func:`restore` copies it, apart
    from the database, which is hashed and integrity-checked here).

    Args:
        keys: Loads the master keys; called only if the pictures are encrypted.

    Raises:
        BackupError: no manifest (an interrupted backup), an unknown format, a database that
            does not match the manifest or fails its integrity check, missing files, or
            encrypted pictures the keys given do not open (the message names the key ids).
    """
    if not source.is_dir():
        raise BackupError(f"{source} is not a folder")
    try:
        manifest = json.loads((source / MANIFEST).read_bytes())
    except FileNotFoundError:
        raise BackupError(
            f"{source} is not a complete pixmart backup (no {MANIFEST}; an interrupted"
            " backup never writes one)"
        ) from None
    except ValueError:
        raise BackupError(f"{source / MANIFEST} is not a pixmart backup manifest") from None
    if (
        not isinstance(manifest, dict)
        or manifest.get("format") != FORMAT
        or not isinstance(manifest.get("database"), dict)
        or not isinstance(manifest.get("secrets"), list)
    ):
        raise BackupError(f"{source / MANIFEST} is not a pixmart backup manifest")
    if manifest.get("version") not in READABLE_VERSIONS:
        raise BackupError(
            f"{source} was made by another pixmart version (backup format"
            f" {manifest.get('version')!r}, this one reads {FORMAT_VERSION})"
        )
    # Before hashing a big database: a missing or wrong key is the likelier mistake.
    folder = _backed_up_pictures(source, manifest, keys)
    database = source / DATABASE
    if not database.is_file():
        raise BackupError(f"{source} is incomplete: {DATABASE} is missing")
    expected = manifest["database"]
    if _size_and_sha256(database) != (expected.get("bytes"), expected.get("sha256")):
        raise BackupError(f"{database} does not match the backup's manifest (damaged or changed)")
    _integrity_check(database)
    for name in manifest["secrets"]:
        # Only known names: a manifest must not be able to make a restore copy other files.
        if name not in SECRET_FILES:
            raise BackupError(f"{source / MANIFEST} names an unknown file {name!r}")
        if not (source / name).is_file():
            raise BackupError(f"{source} is incomplete: {name} is missing")
    blobs = BlobStore(source / BLOBS) if (source / BLOBS).is_dir() else None
    for sha in sorted(_referenced_blobs(database)):
        if blobs is None or not any(map(blobs.exists, folder.stored_names(sha))):
            raise BackupError(f"{source} is incomplete: the picture file of {sha} is missing")
    return dict(manifest), folder


def _backed_up_pictures(source: Path, manifest: dict[str, Any], keys: KeyLoader) -> PictureFolder:
    """The backup's ``blobs`` folder, checked against what the manifest says of it.

    Raises:
        BackupError: the keyring is missing or does not list the keys the manifest names, or
            the keys given do not open it.
    """
    # Version 1 predates encryption: its pictures are plain.
    entry = manifest.get("pictures", {"encrypted": False} if manifest["version"] == 1 else None)
    if not isinstance(entry, dict) or not isinstance(entry.get("encrypted"), bool):
        raise BackupError(f"{source / MANIFEST} is not a pixmart backup manifest")
    keyring_path = source / BLOBS / KEYRING
    if entry["encrypted"] != keyring_path.is_file():
        if entry["encrypted"]:
            raise BackupError(f"{source} is incomplete: {BLOBS}/{KEYRING} is missing")
        raise BackupError(
            f"{keyring_path} does not belong to this backup (its manifest says the "
            "pictures are not encrypted)"
        )
    folder = _open_folder(source / BLOBS, keys)
    if folder.describe() != entry:
        raise BackupError(
            f"{keyring_path} does not match the backup's manifest (damaged or changed)"
        )
    return folder


def restore(source: Path, data_dir: Path, *, keys: KeyLoader) -> Summary:
    """Restore the backup at ``source`` into the empty or new data dir ``data_dir``.

    Args:
        source: A folder written by :func:`backup`.
        data_dir: The data dir to fill; created if missing, refused if not empty.
        keys: Loads the master keys; called only if the pictures are encrypted.

    Returns:
        What was written.

    Raises:
        BackupError: ``data_dir`` is not empty, or ``source`` is incomplete or damaged (see
            :func:`verify_backup`; a picture file whose content does not match its name, or
            a sealed one that does not open, is found while copying). ``data_dir`` is left
            as it was.
        OSError: reading or writing failed. ``data_dir`` is left as it was.
    """
    started = time.monotonic()
    # The target first: the cheaper refusal, and one that does not read a big database.
    _require_empty(data_dir)
    manifest, folder = verify_backup(source, keys)
    names: list[str] = list(manifest["secrets"])
    with _Staging(data_dir) as stage:
        total = sum(_copy_file(source / name, stage.path / name) for name in names)
        # Each file is hashed against its name, or opened if sealed: damage shows here.
        copier = _BlobCopier(source / BLOBS, stage.path / BLOBS, check=folder.check)
        vanished = copier.copy_all()
        if vanished:
            raise BackupError(f"{source} changed during the restore: {vanished[0]} vanished")
        if folder.encrypted:
            # Beside the files: without it the restored server cannot find them by name.
            total += _copy_file(source / BLOBS / KEYRING, stage.path / BLOBS / KEYRING)
        copier.sync()
        total += copier.bytes
        total += _copy_file(
            source / DATABASE,
            stage.path / DATABASE,
            check=HashCheck(str(manifest["database"]["sha256"])),
        )
        # The database moves in last: a data dir with the files but no database would start
        # as an empty shop whose start-up sweep deletes every picture file as unreferenced.
        stage.commit([*names, BLOBS, DATABASE])
    return Summary(
        files=len(names) + len(copier.copied) + folder.encrypted + 1,
        bytes=total,
        seconds=time.monotonic() - started,
        fingerprint=_fingerprint(data_dir),
    )


# -- files and folders -------------------------------------------------------------------------


class _Staging:
    """A folder inside the target where a copy is built, moved into the target when whole.

    Entering checks that the target is empty or missing, creates it (0700) and the staging
    folder; :meth:`commit` moves the entries in; leaving with an exception removes everything
    this object created, so a failed run leaves the target as it found it. A run killed
    outright leaves only the staging folder: obviously incomplete.
    """

    def __init__(self, target: Path) -> None:
        self._target = target
        self._created = False
        self._moved: list[str] = []
        self.path = target / f"{PARTIAL_PREFIX}{secrets.token_hex(4)}"

    def __enter__(self) -> _Staging:
        _require_empty(self._target)
        if not self._target.exists():
            self._target.parent.mkdir(parents=True, exist_ok=True)
            self._target.mkdir(mode=DIR_MODE)
            self._created = True
        try:
            # Also for a folder the operator made: it is about to hold the server's private key.
            os.chmod(self._target, DIR_MODE)
            self.path.mkdir(mode=DIR_MODE)
        except BaseException:
            if self._created:
                self._target.rmdir()
            raise
        return self

    def commit(self, names: Sequence[str]) -> None:
        """Move the staged entries ``names`` into the target, in this order, durably."""
        for name in names:
            os.replace(self.path / name, self._target / name)
            self._moved.append(name)
        self.path.rmdir()
        fsync_dir(self._target)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is None:
            return
        shutil.rmtree(self.path, ignore_errors=True)
        for name in self._moved:
            entry = self._target / name
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        if self._created:
            with contextlib.suppress(OSError):
                self._target.rmdir()


def _require_empty(target: Path) -> None:
    """Raise :class:`BackupError` unless ``target`` is missing or an empty folder."""
    if not target.exists():
        return
    if not target.is_dir():
        raise BackupError(f"{target} is not a folder")
    entries = sorted(entry.name for entry in target.iterdir())
    if not entries:
        return
    leftovers = [name for name in entries if name.startswith(PARTIAL_PREFIX)]
    if leftovers:
        raise BackupError(
            f"{target} is not empty: it holds an interrupted backup or restore"
            f" ({leftovers[0]}); remove it or pick another folder"
        )
    raise BackupError(f"{target} is not empty; pick an empty or new folder")


def _copy_file(source: Path, target: Path, *, check: ContentCheck | None = None) -> int:
    """Copy ``source`` to the new file ``target`` (0600 from the first byte), durably.

    Args:
        check: If given, what the content must pass (e.g. :class:`HashCheck`).

    Returns:
        The bytes copied.

    Raises:
        FileNotFoundError: ``source`` does not exist (``target`` is then not created).
        BackupError: the content does not pass ``check``.
    """
    size = 0
    try:
        with open(source, "rb") as reader:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
            with os.fdopen(fd, "wb") as writer:
                while chunk := reader.read(_CHUNK):
                    if check is not None:
                        check.update(chunk)
                    writer.write(chunk)
                    size += len(chunk)
                if check is not None:
                    check.finish()
                writer.flush()
                # Durable before the manifest (or the database) that vouches for it appears.
                os.fsync(writer.fileno())
    except PictureDamaged as exc:
        raise BackupError(f"{source} is damaged: {exc}") from None
    except PictureKeyError as exc:
        raise BackupError(f"cannot open {source}: {exc}") from None
    return size


def _copy_if_present(job: tuple[Path, Path, ContentCheck | None]) -> int | None:
    """Run ``_copy_file(source, target, check=...)``; ``None`` if the source does not exist."""
    source, target, check = job
    try:
        return _copy_file(source, target, check=check)
    except FileNotFoundError as exc:
        if exc.filename != str(source):
            raise  # the target's folder is missing: a bug, not a deleted picture
        return None


def _in_threads(function: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
    """``[function(item) for item in items]``, run :data:`COPY_THREADS` at a time, in order."""
    if len(items) < 2:
        return [function(item) for item in items]
    pool = ThreadPoolExecutor(max_workers=COPY_THREADS, thread_name_prefix="pixmart-backup")
    try:
        return list(pool.map(function, items))
    finally:
        # After a failure, the copies not started yet are dropped rather than run for nothing.
        pool.shutdown(wait=True, cancel_futures=True)


def _write_file(target: Path, data: bytes) -> int:
    """Write ``data`` to the new file ``target`` (0600), durably; return its size."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with os.fdopen(fd, "wb") as writer:
        writer.write(data)
        writer.flush()
        os.fsync(writer.fileno())
    return len(data)


def _size_and_sha256(path: Path) -> tuple[int, str]:
    """Return the file's size and hex SHA-256."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as reader:
        while chunk := reader.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


# -- SQLite ------------------------------------------------------------------------------------


def _connect_read_only(db_path: Path) -> sqlite3.Connection:
    """A connection that cannot write the database (``mode=ro``), waiting out brief locks."""
    return sqlite3.connect(db_path.resolve().as_uri() + "?mode=ro", uri=True, timeout=30.0)


def _integrity_check(db_path: Path) -> None:
    """Raise :class:`BackupError` unless the database passes ``PRAGMA integrity_check``."""
    try:
        with contextlib.closing(_connect_read_only(db_path)) as conn:
            rows = conn.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.Error as exc:
        # Damage bad enough that SQLite refuses to walk the file at all.
        raise BackupError(f"{db_path} failed its integrity check ({exc})") from exc
    if rows != [("ok",)]:
        raise BackupError(f"{db_path} failed its integrity check ({rows[0][0]})")


def _schema_version(db_path: Path) -> int:
    """The database's migration version (``PRAGMA user_version``)."""
    with contextlib.closing(_connect_read_only(db_path)) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


# -- the command line --------------------------------------------------------------------------


def run_command(command: str, path: Path, data_dir: Path, keys: KeyLoader) -> str:
    """Run ``pixmart-server backup DEST`` or ``restore SRC``; return the one-line summary.

    Args:
        command: ``"backup"`` or ``"restore"``.
        path: The backup folder: DEST for a backup, SRC for a restore.
        data_dir: The data dir backed up, or restored into.
        keys: Loads the master keys, as the server does; called only if the pictures are
            encrypted.

    Raises:
        BackupError: the command failed; the message is the one line to show (an
            :class:`OSError` is turned into one too, so no traceback reaches the operator).
    """
    try:
        if command == "backup":
            summary = backup(data_dir, path, keys=keys)
            done = f"backed up {data_dir} to {path}"
        else:
            summary = restore(path, data_dir, keys=keys)
            done = f"restored {path} into {data_dir}"
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        raise BackupError(f"{command} failed: {exc.strerror or exc}{where}") from exc
    line = f"{done}: {summary.files} files, {summary.bytes} bytes in {summary.seconds:.2f} s"
    if summary.fingerprint:
        line += f"; certificate fingerprint {summary.fingerprint}"
    return line
