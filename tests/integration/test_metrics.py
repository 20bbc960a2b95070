"""Operator observability: the Prometheus endpoint of a real server, the request log, the CLI."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from prometheus_client.parser import text_string_to_metric_families

from backend.cli import _config, _parser
from backend.config import ServerConfig, parse_address
from backend.logs import REQUEST_LOGGER, configure_logging
from backend.metrics import ServerMetrics
from backend.running import RunningRequests
from backend.server import PixmartServer
from backend.vision.types import EMBEDDING_DIM, NUM_CLASSES, EmbedBatch
from backend.vision.worker import EmbeddingWorker
from protocol.catalogue_client import browse
from protocol.commerce_client import add_to_cart, checkout, get_cart, new_checkout_key
from protocol.errors import BadRequest, RateLimited, Unauthenticated
from tests.conftest import SessionFactory, logged_in
from tests.support import raw_client
from tests.support.catalogue import jpeg, upload

PASSWORD = "correct-horse-battery"

#: One scrape: sample name -> list of (labels, value).
Samples = dict[str, list[tuple[dict[str, str], float]]]


@pytest.fixture
def server_config(server_config: ServerConfig) -> ServerConfig:
    """The shared test config with the metrics endpoint on a free loopback port."""
    return replace(server_config, metrics_address=("127.0.0.1", 0))


async def scrape(server: PixmartServer) -> Samples:
    """Fetch and parse the server's metrics over HTTP, as Prometheus would."""
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"

    def fetch() -> str:
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            return bytes(response.read()).decode()

    samples: Samples = {}
    for family in text_string_to_metric_families(await asyncio.to_thread(fetch)):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The value of the one sample of ``name`` whose labels include ``labels`` (0 if none)."""
    found = [
        v for sample_labels, v in samples.get(name, []) if labels.items() <= sample_labels.items()
    ]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else 0.0


async def test_scrape_counts_requests_uploads_batches_and_checkouts(
    server: PixmartServer, make_session: SessionFactory, tmp_path: Path
) -> None:
    assert server.metrics_port not in (None, 0)
    before = await scrape(server)
    assert value(before, "pixmart_connections_open") == 0
    assert value(before, "pixmart_requests_total", type="Login") == 0

    seller = await logged_in(make_session, "seller", PASSWORD)
    picture_bytes = jpeg(7)
    created = await upload(seller, tmp_path, picture_bytes, "Sunset", price_cents=300, stock=2)
    buyer = await logged_in(make_session, "buyer", PASSWORD)
    first = await browse(buyer, limit=10)
    await browse(buyer, limit=10)
    with pytest.raises(BadRequest):
        await browse(buyer, limit=10, cursor="forged")  # refused by the handler
    with pytest.raises(BadRequest):
        await checkout(buyer, 0, new_checkout_key())  # empty cart
    await add_to_cart(buyer, created.item.id)
    key = new_checkout_key()
    await checkout(buyer, (await get_cart(buyer)).total_cents, key)
    await checkout(buyer, 300, key)  # a retry with the same key: the same order, replayed
    stranger = await make_session()
    with pytest.raises(Unauthenticated):
        await stranger.login("seller", "not-the-password")
    async with raw_client(server) as raw:
        await raw.hello()
        await raw.send_frame(b"\xc1")  # never valid msgpack: refused before dispatch
        await raw.recv_reply()
        after = await scrape(server)

    requests = "pixmart_requests_total"
    assert value(after, requests, type="Login", outcome="ok") == 2
    assert value(after, requests, type="Login", outcome="unauthenticated") == 1
    assert value(after, requests, type="Browse", outcome="ok") == 2
    assert value(after, requests, type="Browse", outcome="bad_request") == 1
    assert value(after, requests, type="Checkout", outcome="ok") == 2
    assert value(after, requests, type="Checkout", outcome="bad_request") == 1
    assert value(after, requests, type="unknown", outcome="bad_request") == 1
    durations = "pixmart_request_duration_seconds"
    assert value(after, f"{durations}_count", type="Browse") == 3
    assert value(after, f"{durations}_bucket", type="Browse", le="+Inf") == 3
    assert 0 < value(after, f"{durations}_sum", type="Browse") < 10
    # A refused frame is counted but has no dispatch time to observe.
    assert value(after, f"{durations}_count", type="unknown") == 0

    assert value(after, "pixmart_listing_batch_items_count", listing="browse") == 2
    assert value(after, "pixmart_listing_batch_items_sum", listing="browse") == 2 * len(first.items)
    assert value(after, "pixmart_uploads_finished_total", outcome="listed") == 1
    assert value(after, "pixmart_upload_bytes_total") == len(picture_bytes)
    assert value(after, "pixmart_checkouts_total", outcome="placed") == 1
    assert value(after, "pixmart_checkouts_total", outcome="replayed") == 1
    assert value(after, "pixmart_checkouts_total", outcome="bad_request") == 1

    # seller, buyer, stranger and the raw client; the first two are logged in.
    assert value(after, "pixmart_connections_open") == 4
    assert value(after, "pixmart_connections_authenticated") == 2
    assert value(after, "pixmart_connections_accepted_total") == 4
    # Vision is off in tests: an idle queue, not a gap.
    assert value(after, "pixmart_embedding_queue_depth") == 0
    assert value(after, "pixmart_embedding_pictures_total") == 0
    assert "process_resident_memory_bytes" in after or sys.platform != "linux"

    await stranger.close()  # the raw client closed too, when its block ended
    for _ in range(100):  # the server notices the closes a moment later
        if value(await scrape(server), "pixmart_connections_open") == 2:
            break
        await asyncio.sleep(0.02)
    else:
        pytest.fail("closed connections are still counted")


async def test_metrics_are_per_server_and_the_port_is_released(
    server_config: ServerConfig, tmp_path: Path
) -> None:
    first = PixmartServer(server_config)
    second = PixmartServer(replace(server_config, data_dir=tmp_path / "second"))
    await first.start()
    try:
        await second.start()
        try:
            assert first.services.metrics.registry is not second.services.metrics.registry
            assert first.metrics_port != second.metrics_port
        finally:
            await second.stop()
        port = first.metrics_port
    finally:
        await first.stop()
    assert first.metrics_port is None
    # The port is free again: a new endpoint can bind exactly it.
    third = PixmartServer(replace(server_config, metrics_address=("127.0.0.1", port or 0)))
    await third.start()
    try:
        assert third.metrics_port == port
    finally:
        await third.stop()


async def test_a_taken_metrics_port_fails_the_start_in_one_line(
    server: PixmartServer, server_config: ServerConfig, tmp_path: Path
) -> None:
    from backend.startup import StartupError

    taken = ("127.0.0.1", server.metrics_port or 0)
    other = PixmartServer(
        replace(server_config, data_dir=tmp_path / "other", metrics_address=taken)
    )
    with pytest.raises(StartupError, match=r"cannot serve metrics on 127\.0\.0\.1:\d+.*--metrics"):
        await other.start()


class ZeroEmbedder:
    """Embeds every picture as zeros, at once."""

    model_version = "zero/v1"

    def embed(self, batch: NDArray[np.uint8]) -> EmbedBatch:
        return EmbedBatch(
            np.zeros((len(batch), EMBEDDING_DIM), np.float32),
            np.zeros((len(batch), NUM_CLASSES), np.float32),
        )


async def test_embedding_worker_figures_are_read_at_scrape_time() -> None:
    metrics = ServerMetrics()
    async with EmbeddingWorker(ZeroEmbedder, max_batch=4) as worker:
        metrics.watch_embeddings(lambda: worker)
        pictures = [np.full((224, 224, 3), i, np.uint8) for i in range(6)]
        await asyncio.gather(*(worker.embed(p) for p in pictures))
        assert worker.queue_depth == 0
        samples = {
            sample.name: sample.value
            for family in metrics.registry.collect()
            for sample in family.samples
        }
    assert samples["pixmart_embedding_pictures_total"] == 6
    assert samples["pixmart_embedding_batches_total"] == worker.batches_run >= 2
    assert samples["pixmart_embedding_queue_depth"] == 0


def test_the_re_embedding_backlog_is_read_at_scrape_time() -> None:
    metrics = ServerMetrics()

    def backlog() -> float:
        samples = {sample.name: sample.value
                   for family in metrics.registry.collect() for sample in family.samples}
        return samples["pixmart_embedding_backfill_remaining"]

    assert backlog() == 0  # nothing watched: vision off
    remaining = [120]
    metrics.watch_backfill(lambda: remaining[0])
    assert backlog() == 120
    remaining[0] = 7  # the background pass moved on
    assert backlog() == 7


def test_requests_running_and_refused_by_their_bounds_are_read_at_scrape_time() -> None:
    metrics = ServerMetrics()

    def samples() -> dict[tuple[str, str], float]:
        return {(sample.name, sample.labels.get("bound", "")): sample.value
                for family in metrics.registry.collect() for sample in family.samples}

    assert samples()[("pixmart_requests_running", "")] == 0  # nothing watched yet
    running = RunningRequests(per_address=1, per_user=5, total=5)
    metrics.watch_running_requests(running)
    ticket = running.admit("127.0.0.2", 7)
    with pytest.raises(RateLimited):
        running.admit("127.0.0.2", 7)  # the address's one place is taken
    assert samples()[("pixmart_requests_running", "")] == 1
    assert samples()[("pixmart_requests_refused_running_total", "address")] == 1
    assert samples()[("pixmart_requests_refused_running_total", "user")] == 0
    ticket.release()
    assert samples()[("pixmart_requests_running", "")] == 0


# -- the request log ---------------------------------------------------------------------


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """Logging configured as ``pixmart-server --log-format json`` does, into a string."""
    root = logging.getLogger()
    level = root.level
    stream = io.StringIO()
    handler = configure_logging(verbose=False, fmt="json", stream=stream)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def request_lines(stream: io.StringIO) -> list[dict[str, object]]:
    """The JSON request lines written so far (every line must be JSON)."""
    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [entry for entry in entries if entry["logger"] == REQUEST_LOGGER]


async def test_one_json_line_per_request_without_secrets(
    log_stream: io.StringIO, make_session: SessionFactory
) -> None:
    session = await make_session()
    await session.create_account("carol", PASSWORD)
    user = await session.login("carol", PASSWORD)
    token = session.token
    await browse(session)
    with pytest.raises(BadRequest):
        await browse(session, cursor="forged")

    lines = request_lines(log_stream)
    by_type = {(line["type"], line["outcome"]): line for line in lines}
    assert [line["type"] for line in lines] == [
        "Hello",
        "CreateAccount",
        "Login",
        "Browse",
        "Browse",
    ]
    login = by_type["Login", "ok"]
    assert login["level"] == "INFO"
    assert login["user_id"] == user.id
    assert login["client"] == "127.0.0.1"
    assert isinstance(login["request_id"], int) and login["request_id"] > 0
    assert isinstance(login["conn_id"], int)
    assert isinstance(login["duration_ms"], float) and login["duration_ms"] >= 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", str(login["time"]))
    assert by_type["CreateAccount", "ok"]["user_id"] is None  # not logged in yet
    assert by_type["Browse", "bad_request"]["user_id"] == user.id
    assert "type=Browse outcome=bad_request" in str(by_type["Browse", "bad_request"]["message"])

    output = log_stream.getvalue()
    assert token and token not in output
    assert PASSWORD not in output
    assert all("carol" not in json.dumps(line) for line in lines)  # the user id, never the name


async def test_logout_line_names_who_logged_out_and_text_format_is_readable(
    make_session: SessionFactory,
) -> None:
    root = logging.getLogger()
    level = root.level
    stream = io.StringIO()
    handler = configure_logging(verbose=False, fmt="text", stream=stream)
    try:
        session = await logged_in(make_session, "dave", PASSWORD)
        user = await session.whoami()
        await session.logout()
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    lines = [line for line in stream.getvalue().splitlines() if REQUEST_LOGGER in line]
    logout = next(line for line in lines if "type=Logout" in line)
    assert re.search(
        rf"INFO pixmart\.requests: type=Logout outcome=ok duration_ms=\d+\.\d{{3}} "
        rf"request_id=\d+ user_id={user.id} conn_id=\d+ client=127\.0\.0\.1$",
        logout,
    ), logout
    assert PASSWORD not in stream.getvalue()


def test_configure_logging_rejects_an_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown log format"):
        configure_logging(verbose=False, fmt="xml")


# -- addresses and the command line ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9100", ("127.0.0.1", 9100)),
        (":9100", ("127.0.0.1", 9100)),
        ("0.0.0.0:9100", ("0.0.0.0", 9100)),
        ("metrics.local:0", ("metrics.local", 0)),
        ("[::1]:9100", ("::1", 9100)),
    ],
)
def test_parse_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "expected PORT"),
        ("host:", "must be a number"),
        ("host:http", "must be a number"),
        ("70000", "0-65535"),
        ("::1:9100", "in brackets"),
        ("[::1]", "expected :PORT"),
        ("[::1:9100", "closing"),
        ("[]:9100", "no address"),
    ],
)
def test_parse_address_says_what_is_wrong(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=re.escape(words)):
        parse_address(text)


def test_cli_options(capsys: pytest.CaptureFixture[str]) -> None:
    args = _parser().parse_args(["--log-format", "json", "serve", "--metrics", ":9100"])
    config = _config(args)
    assert config.metrics_address == ("127.0.0.1", 9100)
    assert config.log_format == "json"
    assert _config(_parser().parse_args(["serve"])).metrics_address is None
    with pytest.raises(SystemExit):
        _parser().parse_args(["serve", "--metrics", "::1:9100"])
    assert "put an IPv6 address in brackets" in capsys.readouterr().err


async def test_pixmart_server_serve_with_metrics_and_json_logs(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "pixmart-server"
    if not script.exists():
        pytest.skip("pixmart-server is not installed in this environment")
    command = [str(script), "--log-format", "json", "--data-dir", str(tmp_path / "data")]
    command += ["serve", "--port", "0", "--no-vision", "--metrics", "127.0.0.1:0"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert process.stderr is not None
    try:
        url = None
        async with asyncio.timeout(60):
            while url is None:
                line = (await asyncio.to_thread(process.stderr.readline)).decode()
                if not line:
                    pytest.fail(f"the server exited with {process.wait()}")
                entry = json.loads(line)  # every line is JSON
                if match := re.search(r"serving metrics on (http://\S+)", entry["message"]):
                    url = match.group(1)

        def fetch() -> str:
            with urllib.request.urlopen(url, timeout=5) as response:
                return bytes(response.read()).decode()

        text = await asyncio.to_thread(fetch)
        assert "pixmart_connections_open 0.0" in text
    finally:
        process.terminate()
        process.wait(timeout=15)
        process.stderr.close()
