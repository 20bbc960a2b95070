"""Provides ``pixmart-server keys init`` and ``pixmart-server keys rotate``."""

from __future__ import annotations

import fcntl
import getpass
import os
import sys
from pathlib import Path

from backend.atrest.keyring import KeyringMismatch
from backend.atrest.keys import PASSPHRASE_ENV, MasterKeyError, generate_key_file, load_key_file
from backend.atrest.rotation import rotate_master_key
from backend.config import ServerConfig, default_master_key_file
from backend.media.blobs import StoreUnavailable, open_blob_storage
from backend.media.partials import open_partial_storage


def _fail(message: str) -> int:
    print(f"pixmart-server: error: {message}", file=sys.stderr, flush=True)
    return 1


def init_key(path: Path, *, passphrase: bool) -> int:
    """Write a new master key at ``path``; print its id. Returns the exit status."""
    secret: str | None = None
    if passphrase:
        secret = os.environ.get(PASSPHRASE_ENV)
        if secret is None:
            if not sys.stdin.isatty():
                return _fail(f"no terminal to ask for the passphrase: set {PASSPHRASE_ENV}")
            secret = getpass.getpass("New passphrase: ")
            if getpass.getpass("Once more: ") != secret:
                return _fail("the two passphrases differ")
    try:
        key = generate_key_file(path, passphrase=secret)
    except MasterKeyError as exc:
        return _fail(str(exc))
    print(f"master key {key.key_id} written to {path}; keep a copy apart from the data dir")
    return 0


async def rotate_keys(config: ServerConfig, new_key_file: Path) -> int:
    """Re-wrap the store's data keys from the configured key to ``new_key_file``."""
    # Imported here: the database layer is only needed by this command.
    from backend.catalogue.repositories import picture_repository
    from backend.storage.engine import describe, engine_for

    old_path = config.master_key_file or default_master_key_file()
    try:
        old = load_key_file(old_path)
        new = load_key_file(new_key_file)
    except MasterKeyError as exc:
        return _fail(str(exc))
    lock = _lock_single_server(config)
    if isinstance(lock, str):
        return _fail(lock)
    raw = open_blob_storage(config.blobs, config.data_dir / "blobs")
    db = engine_for(config)
    try:
        await db.open()
        report = await rotate_master_key(
            raw,
            picture_repository(db),
            lambda sealer: open_partial_storage(
                config.blobs,
                config.data_dir / "uploads",
                config.limits.max_upload_bytes,
                sealer,
            ),
            old,
            new,
            progress=_print_progress,
        )
    except KeyringMismatch as exc:
        return _fail(str(exc))
    except StoreUnavailable as exc:
        return _fail(f"{exc}; nothing is lost: run the command again")
    except OSError as exc:
        return _fail(f"cannot open {describe(db)}: {exc}")
    finally:
        await db.close()
        if lock is not None:
            os.close(lock)
    print(
        f"\rdone: {report.describe()}. Every data key is wrapped under {new.key_id}; start the "
        f"server with --key-file {new_key_file}; the old key {old.key_id} may be retired.",
        flush=True,
    )
    return 0


def _print_progress(kind: str, count: int) -> None:
    if count % 100 == 0:
        print(f"\r{count} {kind}s re-wrapped", end="", file=sys.stderr, flush=True)


def _lock_single_server(config: ServerConfig) -> int | str | None:
    """Take the data dir's server lock when the shop is a single SQLite server.

    A single server must be stopped: it caches nothing that a rotation changes, but the
    SQLite file has one writer. Instances on PostgreSQL run beside a rotation (holding both
    keys). Returns the lock's descriptor, ``None`` when there is none to take, or an error.
    """
    if config.database is not None:
        return None
    path = config.data_dir / "server.lock"
    if not config.data_dir.is_dir():
        return f"no data dir at {config.data_dir}"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return f"a pixmart server is running on {config.data_dir}: stop it first"
    return fd
