"""Provides the server's Prometheus metrics and the HTTP endpoint that serves them to scrapers.

:class:`ServerMetrics` owns one :class:`~prometheus_client.CollectorRegistry` per server (never
the library's global one: tests and benchmarks run several servers in one process). Everything on
the request path is a counter increment or a histogram observation on a cached label child;
values that already exist elsewhere (open connections, the embedding queue) are read only when
Prometheus scrapes, so serving requests costs nothing for them.

``pixmart-server serve --metrics HOST:PORT`` turns the endpoint on (the option is read by
:func:`backend.config.parse_address`); :func:`serve_metrics` starts its HTTP server on a thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Final, Protocol, runtime_checkable
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.exposition import start_http_server
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from backend.config import format_address

if TYPE_CHECKING:
    from backend.connection import Connection
    from backend.running import RunningRequests

#: The outcome label of a request, upload or checkout that succeeded (failures carry their code).
OK: Final = "ok"

#: The type label of a frame that could not be decoded into any request.
UNKNOWN_TYPE: Final = "unknown"

#: Request latency buckets (seconds), from a cached read (0.1 ms) to a slow upload (10 s).
REQUEST_DURATION_BUCKETS: Final = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

#: Items-per-batch buckets; 24 and 100 are the default and maximum batch of the default limits.
BATCH_SIZE_BUCKETS: Final = (0, 1, 5, 10, 24, 50, 100, 250, 1000)


@runtime_checkable
class EmbeddingStats(Protocol):
    """What the metrics read from the embedding worker when scraped."""

    @property
    def queue_depth(self) -> int:
        """Pictures waiting for a batch."""

    @property
    def pictures_embedded(self) -> int:
        """Pictures embedded since the worker started."""

    @property
    def batches_run(self) -> int:
        """Batches run through the network since the worker started."""


def _no_embeddings() -> EmbeddingStats | None:
    return None


class ServerMetrics:
    """The metrics of one server, in a registry of their own.

    Attributes:
        registry: What :func:`serve_metrics` exposes (and tests may read directly).
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self._requests = Counter(
            "pixmart_requests",
            "Requests answered, by request type and outcome ('ok' or the error code).",
            ["type", "outcome"],
            registry=registry,
        )
        self._durations = Histogram(
            "pixmart_request_duration_seconds",
            "Time from dispatching a request to having its reply, by request type.",
            ["type"],
            buckets=REQUEST_DURATION_BUCKETS,
            registry=registry,
        )
        self._batch_items = Histogram(
            "pixmart_listing_batch_items",
            "Items per listing batch sent, by listing.",
            ["listing"],
            buckets=BATCH_SIZE_BUCKETS,
            registry=registry,
        )
        self._uploads = Counter(
            "pixmart_uploads_finished",
            "Uploads finished, by outcome ('listed', 'duplicate', 'incomplete' or the error code).",
            ["outcome"],
            registry=registry,
        )
        self._upload_bytes = Counter(
            "pixmart_upload_bytes",
            "Upload bytes received and stored (accepted chunks only).",
            registry=registry,
        )
        self._checkouts = Counter(
            "pixmart_checkouts",
            "Checkouts, by outcome ('placed', 'replayed' or the error code).",
            ["outcome"],
            registry=registry,
        )
        self._sealed_in_place = Counter(
            "pixmart_pictures_encrypted_in_place",
            "Picture files and thumbnail rows stored before encryption and sealed since the "
            "server started, by kind ('file' or 'row').",
            ["kind"],
            registry=registry,
        )
        self._accepted = Counter(
            "pixmart_connections_accepted",
            "WebSocket connections accepted since the server started.",
            registry=registry,
        )
        # Label children cached by label values: ``labels()`` validates and locks on every
        # call, a dict lookup does not, and these run once or twice per request.
        self._request_counters: dict[tuple[str, str], Counter] = {}
        self._duration_children: dict[str, Histogram] = {}
        self._batch_children: dict[str, Histogram] = {}
        self._connections: set[Connection] = set()
        self._embeddings: Callable[[], EmbeddingStats | None] = _no_embeddings
        self._backfill: Callable[[], int] = lambda: 0
        self._running: RunningRequests | None = None
        registry.register(_ScrapeTimeCollector(self))
        # CPU, memory and open files of the process: what an operator checks first.
        ProcessCollector(registry=registry)

    # -- requests --------------------------------------------------------------------------

    def observe_request(self, request_type: str, outcome: str, seconds: float | None) -> None:
        """Count one answered request and, if it was dispatched, its duration.

        Args:
            request_type: The request's wire type, or :data:`UNKNOWN_TYPE`.
            outcome: :data:`OK` or the error code of the reply.
            seconds: Time spent dispatching; ``None`` for requests refused before dispatch
                (rate limited, undecodable), whose near-zero time would skew the latencies.
        """
        key = (request_type, outcome)
        counter = self._request_counters.get(key)
        if counter is None:
            counter = self._request_counters[key] = self._requests.labels(request_type, outcome)
        counter.inc()
        if seconds is not None:
            histogram = self._duration_children.get(request_type)
            if histogram is None:
                histogram = self._duration_children[request_type] = self._durations.labels(
                    request_type
                )
            histogram.observe(seconds)

    # -- connections -----------------------------------------------------------------------

    def connection_opened(self, connection: Connection) -> None:
        """Track a connection from its first frame on (call :meth:`connection_closed` after)."""
        self._connections.add(connection)
        self._accepted.inc()

    def connection_closed(self, connection: Connection) -> None:
        """Stop tracking a connection."""
        self._connections.discard(connection)

    def connection_counts(self) -> tuple[int, int]:
        """Open connections and, among them, those with a logged-in user."""
        # Called on the scraper's thread while the event loop adds and removes connections;
        # copying the set is one C call under the GIL, but retry rather than trust that.
        for _ in range(3):
            try:
                connections = list(self._connections)
                break
            except RuntimeError:  # "Set changed size during iteration"
                continue
        else:
            return len(self._connections), 0
        return len(connections), sum(1 for c in connections if c.principal is not None)

    # -- catalogue, commerce, vision -------------------------------------------------------

    def observe_batch(self, listing: str, items: int) -> None:
        """Record the number of items in one batch of ``listing`` (e.g. ``"browse"``)."""
        histogram = self._batch_children.get(listing)
        if histogram is None:  # cached like the request labels: browsing is the busiest path
            histogram = self._batch_children[listing] = self._batch_items.labels(listing)
        histogram.observe(items)

    def upload_finished(self, outcome: str) -> None:
        """Count one finish of an upload by its outcome."""
        self._uploads.labels(outcome).inc()

    def upload_bytes(self, count: int) -> None:
        """Count upload bytes received and stored."""
        self._upload_bytes.inc(count)

    def checkout(self, outcome: str) -> None:
        """Count one checkout by its outcome."""
        self._checkouts.labels(outcome).inc()

    def sealed_in_place(self, kind: str) -> None:
        """Count one file (``file``) or picture row (``row``) sealed by the in-place job."""
        self._sealed_in_place.labels(kind).inc()

    def watch_embeddings(self, source: Callable[[], EmbeddingStats | None]) -> None:
        """Read the embedding worker's figures from ``source()`` at every scrape.

        A callable rather than the worker itself: the worker is built after the metrics (and
        not at all without the image model), and may be replaced.
        """
        self._embeddings = source

    def embedding_stats(self) -> EmbeddingStats | None:
        """The embedding worker's figures now, if there is a worker."""
        return self._embeddings()

    def watch_backfill(self, source: Callable[[], int]) -> None:
        """Read at every scrape how many stored pictures still wait for the current model."""
        self._backfill = source

    def watch_running_requests(self, running: RunningRequests) -> None:
        """Read at every scrape the requests running and those refused by its bounds."""
        self._running = running

    def running_requests(self) -> tuple[int, dict[str, int]]:
        """Requests running now, and requests refused so far by each bound of ``running``."""
        if self._running is None:
            return 0, {}
        return self._running.count, dict(self._running.refused)

    def backfill_remaining(self) -> int:
        """Stored pictures not yet embedded by the current model (re-embedding after a change)."""
        return self._backfill()


class _ScrapeTimeCollector:
    """Reads the figures that live elsewhere, when Prometheus asks for them."""

    def __init__(self, metrics: ServerMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterator[Metric]:
        """The families :meth:`collect` yields (without values), for the registry's checks."""
        yield GaugeMetricFamily("pixmart_connections_open", "")
        yield GaugeMetricFamily("pixmart_connections_authenticated", "")
        yield GaugeMetricFamily("pixmart_embedding_queue_depth", "")
        yield CounterMetricFamily("pixmart_embedding_pictures", "")
        yield CounterMetricFamily("pixmart_embedding_batches", "")
        yield GaugeMetricFamily("pixmart_embedding_backfill_remaining", "")
        yield GaugeMetricFamily("pixmart_requests_running", "")
        yield CounterMetricFamily("pixmart_requests_refused_running", "", labels=["bound"])

    def collect(self) -> Iterator[Metric]:
        """The current figures."""
        open_, authenticated = self._metrics.connection_counts()
        yield GaugeMetricFamily(
            "pixmart_connections_open", "WebSocket connections open now.", value=open_
        )
        yield GaugeMetricFamily(
            "pixmart_connections_authenticated",
            "Open connections with a logged-in user.",
            value=authenticated,
        )
        # Zeros without a worker (vision off): a dashboard shows an idle queue, not a gap.
        stats = self._metrics.embedding_stats()
        yield GaugeMetricFamily(
            "pixmart_embedding_queue_depth",
            "Pictures waiting for the embedding worker.",
            value=stats.queue_depth if stats else 0,
        )
        yield CounterMetricFamily(
            "pixmart_embedding_pictures",
            "Pictures embedded since the worker started.",
            value=stats.pictures_embedded if stats else 0,
        )
        yield CounterMetricFamily(
            "pixmart_embedding_batches",
            "Batches run through the network since the worker started.",
            value=stats.batches_run if stats else 0,
        )
        yield GaugeMetricFamily(
            "pixmart_embedding_backfill_remaining",
            "Stored pictures still to be embedded by the current model (after a model change).",
            value=self._metrics.backfill_remaining(),
        )
        running, refused = self._metrics.running_requests()
        yield GaugeMetricFamily(
            "pixmart_requests_running",
            "Requests running now, those whose connection has closed included.",
            value=running,
        )
        refusals = CounterMetricFamily(
            "pixmart_requests_refused_running",
            "Requests refused at once because their address, user or the server had as many "
            "running as it may, by bound ('address', 'user' or 'server').",
            labels=["bound"],
        )
        for bound, count in sorted(refused.items()):
            refusals.add_metric([bound], count)
        yield refusals


# -- the HTTP endpoint ---------------------------------------------------------------------


class MetricsEndpoint:
    """A running HTTP server that answers scrapes; :meth:`close` stops it."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def host(self) -> str:
        """The address bound."""
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        """The port bound (the one picked, when port 0 was asked for)."""
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        """Where to scrape."""
        return f"http://{format_address(self.host, self.port)}/metrics"

    def close(self) -> None:
        """Stop serving and release the port; blocks up to half a second (the poll interval)."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5.0)


def serve_metrics(metrics: ServerMetrics, address: tuple[str, int]) -> MetricsEndpoint:
    """Serve ``metrics`` in the Prometheus text format on ``address``, on a daemon thread.

    Raises:
        OSError: the address cannot be resolved or bound (in use, not local, ...).
    """
    host, port = address
    server, thread = start_http_server(port, addr=host, registry=metrics.registry)
    return MetricsEndpoint(server, thread)
