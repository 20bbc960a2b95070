"""Provides the parsing of object-store URLs (``--blobs``), without importing the S3 client.

Kept apart so that the command line can check ``--blobs`` on a client-only install. The form is
``s3://BUCKET[/PREFIX]?endpoint=http://HOST:PORT[&region=REGION]``: without ``endpoint`` the
client talks to AWS itself. Credentials never travel in the URL (it ends up in process lists and
logs); the client reads them from ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qs, urlsplit

#: The query parameters a ``--blobs`` URL may carry.
OPTIONS: Final = frozenset({"endpoint", "region"})
DEFAULT_REGION: Final = "us-east-1"


@dataclass(frozen=True)
class BlobStoreLocation:
    """Where in an S3-compatible store the pictures are."""

    bucket: str
    #: Keys are made under this prefix ("" for the bucket's root), e.g. one per test.
    prefix: str
    #: ``http(s)://host:port`` of an S3-compatible server, or ``None`` for AWS.
    endpoint: str | None
    region: str

    def describe(self) -> str:
        """The location for logs (no secrets: the URL never has any)."""
        where = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        return f"{where} at {self.endpoint}" if self.endpoint else where


def is_blob_store_url(value: str) -> bool:
    """Whether ``value`` is a valid ``--blobs`` URL."""
    try:
        parse_blob_store_url(value)
    except ValueError:
        return False
    return True


def parse_blob_store_url(value: str) -> BlobStoreLocation:
    """Parse ``s3://BUCKET[/PREFIX]?endpoint=...&region=...``.

    Raises:
        ValueError: Not such a URL, an unknown option, or credentials in it.
    """
    parts = urlsplit(value)
    if parts.scheme != "s3" or not parts.hostname:
        raise ValueError("an object store URL is s3://BUCKET[/PREFIX]?endpoint=URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "put the object store's credentials in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "not in the URL"
        )
    query = parse_qs(parts.query, strict_parsing=bool(parts.query))
    unknown = set(query) - OPTIONS
    if unknown:
        raise ValueError(f"unknown object store option(s): {', '.join(sorted(unknown))}")
    endpoint = query.get("endpoint", [None])[-1]
    if endpoint is not None and urlsplit(endpoint).scheme not in ("http", "https"):
        raise ValueError("the object store endpoint must be an http:// or https:// URL")
    return BlobStoreLocation(
        bucket=parts.netloc,
        prefix=parts.path.strip("/"),
        endpoint=endpoint,
        region=query.get("region", [DEFAULT_REGION])[-1],
    )
