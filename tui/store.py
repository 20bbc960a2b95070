"""Provides the client's small on-disk state: known servers, last server and user, tokens.

Everything lives in the user config dir (``PIXMART_CONFIG_DIR`` overrides it), and the files that
hold secrets are written atomically with mode 0600.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import platformdirs

from protocol.trust import KnownServers


def config_dir() -> Path:
    """The client's config dir."""
    env = os.environ.get("PIXMART_CONFIG_DIR")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_config_dir("pixmart", appauthor=False))


def _write_private_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class ClientStore:
    """The client's remembered state."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or config_dir()

    @property
    def known_servers(self) -> KnownServers:
        """The pinned server fingerprints."""
        return KnownServers(self.root / "known_servers.json")

    def _state(self) -> dict[str, Any]:
        return _read_json(self.root / "state.json")

    def _update_state(self, **changes: Any) -> None:
        state = self._state()
        state.update(changes)
        _write_private_json(self.root / "state.json", state)

    @property
    def last_server(self) -> str | None:
        """The server used last."""
        value = self._state().get("server")
        return str(value) if value else None

    @property
    def last_username(self) -> str | None:
        """The user name used last."""
        value = self._state().get("username")
        return str(value) if value else None

    def remember(self, *, server: str | None = None, username: str | None = None) -> None:
        """Remember the server and/or user name for next time."""
        changes: dict[str, Any] = {}
        if server is not None:
            changes["server"] = server
        if username is not None:
            changes["username"] = username
        if changes:
            self._update_state(**changes)

    def token(self, server: str) -> str | None:
        """The saved session token for ``server``."""
        value = _read_json(self.root / "tokens.json").get(server)
        return str(value) if value else None

    def save_token(self, server: str, token: str | None) -> None:
        """Save (or with ``None``, forget) the session token for ``server``."""
        tokens = _read_json(self.root / "tokens.json")
        if token is None:
            tokens.pop(server, None)
        else:
            tokens[server] = token
        _write_private_json(self.root / "tokens.json", tokens)
