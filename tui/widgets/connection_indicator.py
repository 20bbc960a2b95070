"""Provides :class:`ConnectionIndicator`: the always-visible state of the link to the server."""

from __future__ import annotations

import math
import time

from textual.reactive import reactive
from textual.timer import Timer
from textual.widgets import Static

from protocol.client import ConnectionState, ConnectionStatus
from tui.feedback import first_line


def short_fingerprint(fingerprint: str | None, pairs: int = 3) -> str:
    """The first ``pairs`` hex pairs of a fingerprint and an ellipsis, e.g. ``AB:CD:EF…``."""
    if not fingerprint:
        return ""
    return ":".join(fingerprint.split(":")[:pairs]) + "…"


def describe_status(status: ConnectionStatus | None, now: float | None = None) -> str:
    """One line for the header: state, TLS version and fingerprint, countdown or reason."""
    if status is None or status.state is ConnectionState.DISCONNECTED:
        return "○ not connected"
    if status.state is ConnectionState.CONNECTING:
        return f"◌ connecting to {status.server}…"
    if status.state is ConnectionState.CONNECTED:
        parts = ["● connected", status.tls_version or "", short_fingerprint(status.fingerprint)]
        return " · ".join(part for part in parts if part)
    if status.state is ConnectionState.RECONNECTING:
        reason = first_line(status.reason or "")
        why = f" · {reason}" if reason else ""
        if status.next_attempt_at is None:
            return f"◐ reconnecting…{why}"
        left = status.next_attempt_at - (time.time() if now is None else now)
        if left <= 0.05:
            return f"◐ reconnecting now…{why}"
        return f"◐ reconnecting in {math.ceil(left)} s{why}"
    reason = first_line(status.reason or "") or "not connected"
    return f"✕ offline: {reason}"


class ConnectionIndicator(Static):
    """Shows :class:`ConnectionStatus` in words, with a live countdown while reconnecting.

    The widget follows the app's ``connection`` reactive; its CSS class (``-connected``,
    ``-reconnecting``, ``-offline``, ...) sets the colour.
    """

    DEFAULT_CSS = """
    ConnectionIndicator {
        width: auto;
        max-width: 60;
        height: 1;
        padding: 0 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
        color: $text-muted;
        &.-connected { color: $text-success; }
        &.-connecting, &.-reconnecting { color: $text-warning; }
        &.-offline { color: $text-error; text-style: bold; }
    }
    """

    status: reactive[ConnectionStatus | None] = reactive(None, always_update=True)

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__("", id=id, classes=classes)
        self._ticker: Timer | None = None

    def on_mount(self) -> None:
        self._ticker = self.set_interval(0.25, self._tick, pause=True)
        self.watch(self.app, "connection", self._follow, init=True)

    def _follow(self, status: ConnectionStatus | None) -> None:
        self.status = status

    def watch_status(self, status: ConnectionStatus | None) -> None:
        state = status.state if status is not None else ConnectionState.DISCONNECTED
        self.set_classes(f"-{state.value}")
        self.tooltip = _tooltip(status)
        if self._ticker is not None:
            if state is ConnectionState.RECONNECTING:
                self._ticker.resume()
            else:
                self._ticker.pause()
        self.update(describe_status(status))

    def _tick(self) -> None:
        self.update(describe_status(self.status))


def _tooltip(status: ConnectionStatus | None) -> str:
    if status is None:
        return "Not connected"
    lines = [f"Server: {status.server}"]
    if status.tls_version:
        lines.append(f"TLS: {status.tls_version}")
    if status.fingerprint:
        lines.append(f"Certificate SHA-256: {status.fingerprint}")
    if status.reason:
        lines.append(f"Reason: {status.reason}")
    if status.state is ConnectionState.RECONNECTING:
        lines.append("Press ctrl+r to retry now")
    return "\n".join(lines)


__all__ = ["ConnectionIndicator", "describe_status", "short_fingerprint"]
