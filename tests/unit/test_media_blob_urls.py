"""The ``--blobs`` URL: bucket, prefix and endpoint; credentials refused in it."""

from __future__ import annotations

import pytest

from backend.media.blob_urls import (
    BlobStoreLocation,
    is_blob_store_url,
    parse_blob_store_url,
)


def test_bucket_prefix_endpoint_and_region_are_read() -> None:
    url = "s3://pixmart/shop/one?endpoint=http://127.0.0.1:8333&region=eu-west-1"
    assert parse_blob_store_url(url) == BlobStoreLocation(
        bucket="pixmart", prefix="shop/one", endpoint="http://127.0.0.1:8333", region="eu-west-1"
    )


def test_aws_itself_needs_no_endpoint() -> None:
    location = parse_blob_store_url("s3://pixmart")
    assert (location.prefix, location.endpoint, location.region) == ("", None, "us-east-1")
    assert location.describe() == "s3://pixmart"


@pytest.mark.parametrize(
    "url",
    [
        "https://pixmart.example/blobs",  # not s3://
        "s3://",  # no bucket
        "s3://pixmart?endpoint=ftp://host",  # not an http(s) endpoint
        "s3://pixmart?endpont=http://host",  # a misspelt option is not ignored
    ],
)
def test_malformed_urls_are_refused(url: str) -> None:
    assert not is_blob_store_url(url)


def test_credentials_in_the_url_are_refused_without_echoing_them() -> None:
    with pytest.raises(ValueError) as refused:
        parse_blob_store_url("s3://key:hunter2@pixmart?endpoint=http://127.0.0.1:1")
    assert "AWS_SECRET_ACCESS_KEY" in str(refused.value)
    assert "hunter2" not in str(refused.value)
