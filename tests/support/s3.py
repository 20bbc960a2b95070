"""Gives tests an S3-compatible object store (SeaweedFS), each test a prefix of its own.

The store comes from ``PIXMART_TEST_BLOBS_URL`` (with the ``AWS_*`` credentials in the
environment) or ``.services.env`` when one answers; otherwise the checkout's own is started
(``tests.support.services``) and stopped again when the test session ends.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import obstore
from obstore.store import S3Store

from backend.media.blob_urls import parse_blob_store_url
from tests.support import services

CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


@dataclass(frozen=True)
class ObjectStore:
    """A running S3-compatible store: its bucket's URL and the credentials to sign with."""

    url: str
    credentials: dict[str, str]

    def prefixed(self, prefix: str) -> str:
        """The ``--blobs`` URL of ``prefix`` in the bucket."""
        base, _, query = self.url.partition("?")
        return f"{base.rstrip('/')}/{prefix}?{query}"

    def client(self, url: str | None = None) -> S3Store:
        """An obstore client of ``url`` (the bucket by default), without retries."""
        location = parse_blob_store_url(url or self.url)
        return S3Store(
            location.bucket,
            prefix=location.prefix or None,
            endpoint=location.endpoint,
            region=location.region,
            access_key_id=self.credentials["AWS_ACCESS_KEY_ID"],
            secret_access_key=self.credentials["AWS_SECRET_ACCESS_KEY"],
            virtual_hosted_style_request=False,
            client_options={"allow_http": True},
            retry_config={"max_retries": 0},
        )

    def answers(self) -> bool:
        """Whether a signed request succeeds."""
        try:
            obstore.head(self.client(), ".absent")
        except FileNotFoundError:
            return True
        except Exception:
            return False
        return True

    def keys(self, url: str) -> list[str]:
        """Every key under ``url``'s prefix (relative to it)."""
        return [meta["path"] for page in obstore.list(self.client(url)) for meta in page]

    def clear(self, url: str) -> None:
        """Remove every object under ``url``'s prefix."""
        store = self.client(url)
        keys = self.keys(url)
        if keys:
            obstore.delete(store, keys)


@contextmanager
def object_store_server() -> Iterator[ObjectStore]:
    """A running object store for tests, started for the session if none answers."""
    configured = os.environ.get("PIXMART_TEST_BLOBS_URL")
    settings = services.read_env_file()
    if configured:
        found = ObjectStore(
            configured, {key: os.environ.get(key, "") for key in CREDENTIAL_VARIABLES}
        )
    elif "PIXMART_BLOBS" in settings:
        credentials = {key: settings.get(key, "") for key in CREDENTIAL_VARIABLES}
        found = ObjectStore(settings["PIXMART_BLOBS"], credentials)
    else:
        found = None
    if found is not None and found.answers():
        yield found
        return
    url, credentials, started = services.ensure_object_store()
    try:
        yield ObjectStore(url, credentials)
    finally:
        if started:
            services.seaweed().down()


def fresh_prefix() -> str:
    """A fresh prefix for one test's objects."""
    return f"test-{os.getpid()}-{secrets.token_hex(4)}"
