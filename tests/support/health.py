"""Provides the health check of a server process: read ``GET /healthz``, or wait for an answer.

The server listens (and answers its health check) before the image model has warmed up, so a
benchmark or test that needs similar-image search right after starting a server process waits
with :func:`wait_for_health` until the body says ``"vision": "ready"``. Both are synchronous
(the launchers they serve are); async callers run them with :func:`asyncio.to_thread`.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Collection
from typing import Any

from backend.transport import HEALTH_PATH
from tests.support import insecure_tls13_context

#: Answers that will not change by waiting longer (image search could not be built).
HOPELESS: frozenset[str] = frozenset({"failed"})


def health(port: int, *, host: str = "127.0.0.1", timeout: float = 5.0) -> dict[str, Any]:
    """The JSON body of ``GET https://HOST:PORT/healthz``, whether answered 200 or 503.

    The certificate is not checked: callers ask a server they started themselves.

    Raises:
        OSError: no answer (refused, reset, timed out; :class:`urllib.error.URLError` is one).
        ValueError: the answer was not a JSON object.
    """
    url = f"https://{host}:{port}{HEALTH_PATH}"
    try:
        with urllib.request.urlopen(url, context=insecure_tls13_context(), timeout=timeout) as r:
            body = r.read()
    except urllib.error.HTTPError as exc:
        # 503 while starting or shutting down carries the same JSON body, saying what is wrong.
        body = exc.read()
    found = json.loads(body)
    if not isinstance(found, dict):
        raise ValueError(f"{url} answered {found!r}, not a JSON object")
    return found


def wait_for_health(
    port: int,
    *,
    timeout: float,
    interval: float = 0.1,
    process: subprocess.Popen[Any] | None = None,
    hopeless: Collection[str] = HOPELESS,
    **expected: str,
) -> dict[str, Any]:
    """Poll ``/healthz`` until every ``expected`` field has its value; return that body.

    Example: ``wait_for_health(port, vision="ready", timeout=300)``.

    Args:
        timeout: Seconds to wait in all before giving up.
        interval: Seconds between polls (each is a TLS handshake with the server; rare enough
            not to slow a model conversion down on a busy machine).
        process: The server's process, if known: its exit ends the wait at once.
        hopeless: Values of an expected field that will not change by waiting.

    Raises:
        TimeoutError: the fields did not reach their values in time (the last answer is named).
        RuntimeError: the process exited, or an expected field took a hopeless value.
    """
    deadline = time.monotonic() + timeout
    last: object = "no answer yet"
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}; last health {last}")
        try:
            body = health(port, timeout=min(5.0, max(0.1, deadline - time.monotonic())))
        except (OSError, ValueError) as exc:  # not answering yet (or going away): ask again
            last = exc
        else:
            last = body
            if all(body.get(key) == value for key, value in expected.items()):
                return body
            if any(str(body.get(key)) in hopeless for key in expected):
                raise RuntimeError(f"the server's health will not become {expected}: {body}")
        if time.monotonic() >= deadline:
            raise TimeoutError(f"health not {expected} within {timeout} s; last: {last}")
        time.sleep(interval)
