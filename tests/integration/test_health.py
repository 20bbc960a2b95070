"""``GET /healthz`` on the server's own port: what supervisors and load balancers poll.

Proves that a serving server answers 200 with a small JSON body (status, version, protocol,
database, vision state), that it answers 503 with the reason once the database stops
answering, that any other plain HTTP request is still refused, and that a WebSocket client on
the same port is unaffected.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.error
import urllib.request

import pytest

from backend.server import PixmartServer
from tests.conftest import SessionFactory


def _get(port: int, path: str) -> tuple[int, bytes, str]:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        with urllib.request.urlopen(
            f"https://127.0.0.1:{port}{path}", context=context, timeout=5
        ) as response:
            return response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get("Content-Type", "")


async def test_healthz_says_ok_with_the_servers_state(
    server: PixmartServer, make_session: SessionFactory
) -> None:
    status, body, content_type = await asyncio.to_thread(_get, server.port, "/healthz")
    assert status == 200
    assert content_type == "application/json"
    health = json.loads(body)
    assert health["status"] == "ok"
    assert health["database"] == "ok"
    assert health["vision"] == "off"  # the test server runs without the model
    assert health["protocol"] == 1
    assert isinstance(health["version"], str) and health["version"]
    # WebSocket clients on the same port are served as before.
    session = await make_session()
    assert session.capabilities is not None and session.capabilities.vision == "off"


@pytest.mark.parametrize("path", ["/", "/healthz/x", "/metrics", "/HEALTHZ"])
async def test_other_plain_http_requests_stay_refused(server: PixmartServer, path: str) -> None:
    status, _, _ = await asyncio.to_thread(_get, server.port, path)
    assert status == 426  # websockets: upgrade required


async def test_healthz_says_unavailable_when_the_database_does_not_answer(
    server: PixmartServer,
) -> None:
    await server.db.close()
    status, body, _ = await asyncio.to_thread(_get, server.port, "/healthz")
    assert status == 503
    health = json.loads(body)
    assert health["status"] == "unavailable"
    assert health["database"] == "unreachable"
