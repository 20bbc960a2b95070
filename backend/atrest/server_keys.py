"""Provides the master keys a server starts with, from its configuration."""

from __future__ import annotations

import logging
from pathlib import Path

from backend.atrest.keys import KeySet, MasterKeyError, generate_key_file, load_key_file
from backend.config import ServerConfig, default_master_key_file

log = logging.getLogger(__name__)


def server_key_set(config: ServerConfig, *, make_missing: bool = True) -> KeySet | None:
    """The keys of ``config``, or ``None`` for a server storing pictures unencrypted.

    Without ``--key-file``, the key in the user config dir is used, made there on first use
    (``pixmart demo``, ``make run``, a first ``serve``).

    Args:
        make_missing: Whether to make the key in the user config dir if it is missing; off for
            commands that only read a store sealed already (``restore`` on a new machine must
            not make a key that opens nothing).

    Raises:
        MasterKeyError: a key file is missing, unreadable, open to others, or inside the data
            dir (where a stolen disk or backup would carry it along with the pictures).
    """
    if not config.encrypt_at_rest:
        return None
    path = config.master_key_file
    if path is None:
        path = default_master_key_file()
        if not path.exists():
            if not make_missing:
                raise MasterKeyError(
                    f"no key was given and there is none at {path} (the default): give the "
                    "store's key with --key-file"
                )
            key = generate_key_file(path)
            log.warning(
                "made a new master key %s at %s: keep a copy apart from the data dir and its "
                "backups; without it the pictures cannot be read",
                key.key_id,
                path,
            )
    elif not path.exists():
        raise MasterKeyError(
            f"the key file {path} does not exist; make one with: pixmart-server keys init {path}"
        )
    keys = [_outside_data_dir(path, config)]
    if config.old_master_key_file is not None:
        keys.append(_outside_data_dir(config.old_master_key_file, config))
    current, *others = [load_key_file(key) for key in keys]
    return KeySet(current, others)


def _outside_data_dir(path: Path, config: ServerConfig) -> Path:
    if path.resolve().is_relative_to(config.data_dir.resolve()):
        raise MasterKeyError(
            f"the key file {path} is inside the data dir {config.data_dir}; keep it elsewhere, "
            "or a copy of the data dir carries the key along with the pictures"
        )
    return path
