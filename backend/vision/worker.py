"""Provides the asyncio facade that micro-batches embedding requests onto one worker thread.

Uploads and search-by-image arrive one picture at a time from many connections, but the network
is several times cheaper per picture in batches, and TensorFlow must never run on the event
loop. :class:`EmbeddingWorker` queues single pictures, groups whatever arrives within a few
milliseconds (or while the previous batch is running) into one batch of up to ``max_batch``,
and runs it on a dedicated thread; the embedder is also *built* on that thread so every
TensorFlow call happens there.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Final

import numpy as np
from numpy.typing import NDArray

from backend.vision.types import (
    EMBEDDING_DIM,
    NUM_CLASSES,
    BatchEmbedder,
    EmbedBatch,
    EmbedResult,
    check_image,
)

_DEFAULT_MAX_BATCH: Final = 32
# Long enough for concurrent requests to join one batch, short next to a batch's ~100+ ms.
_DEFAULT_MAX_WAIT: Final = 0.004


class WorkerClosedError(RuntimeError):
    """Raised for requests made before :meth:`EmbeddingWorker.start` or after ``close()``."""


@dataclass(slots=True)
class _Request:
    image: NDArray[np.uint8]
    future: asyncio.Future[EmbedResult]


class EmbeddingWorker:
    """Embeds pictures for coroutines, batching concurrent requests on one dedicated thread.

    Use as ``async with EmbeddingWorker(factory) as worker: await worker.embed(picture)`` or
    call :meth:`start` and :meth:`close` explicitly. ``close()`` finishes every request queued
    before it and rejects later ones.
    """

    def __init__(
        self,
        factory: Callable[[], BatchEmbedder],
        *,
        max_batch: int = _DEFAULT_MAX_BATCH,
        max_wait: float = _DEFAULT_MAX_WAIT,
    ) -> None:
        """Prepare a worker; nothing runs until :meth:`start`.

        Args:
            factory: Builds the embedder; called once, on the worker thread.
            max_batch: Most pictures run together.
            max_wait: Seconds a lone request waits for company before running.
        """
        if max_batch < 1 or max_wait < 0:
            raise ValueError("max_batch must be >= 1 and max_wait >= 0")
        self._factory = factory
        self._max_batch = max_batch
        self._max_wait = max_wait
        self._executor: ThreadPoolExecutor | None = None
        self._embedder: BatchEmbedder | None = None
        self._queue: asyncio.Queue[_Request | None] = asyncio.Queue()
        self._full = asyncio.Event()
        self._collector: asyncio.Task[None] | None = None
        self._accepting = False
        self._batches_run = 0
        self._pictures_embedded = 0

    @property
    def model_version(self) -> str:
        """The embedder's model version (available once started)."""
        if self._embedder is None:
            raise WorkerClosedError("worker not started")
        return self._embedder.model_version

    @property
    def batches_run(self) -> int:
        """How many batches have gone through the network (for tests and metrics)."""
        return self._batches_run

    @property
    def pictures_embedded(self) -> int:
        """How many pictures have been embedded (for metrics: throughput is its rate)."""
        return self._pictures_embedded

    @property
    def queue_depth(self) -> int:
        """Pictures waiting for a batch (for metrics; read from any thread, approximately)."""
        return self._queue.qsize()

    async def start(self) -> None:
        """Start the thread and build the embedder on it (may take seconds the first time)."""
        if self._executor is not None:
            raise RuntimeError("worker already started")
        loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pixmart-embed")
        try:
            self._embedder = await loop.run_in_executor(self._executor, self._factory)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise
        self._accepting = True
        self._collector = asyncio.create_task(self._collect(), name="pixmart-embed-collector")

    async def close(self) -> None:
        """Finish the requests already queued, then stop the thread. Safe to call twice."""
        if self._executor is None:
            return
        self._accepting = False
        if self._collector is not None:
            self._queue.put_nowait(None)  # drained after everything queued before it
            self._full.set()
            await self._collector
            self._collector = None
        executor, self._executor = self._executor, None
        # Nothing is running on it any more; wait off the loop anyway in case the factory is.
        await asyncio.to_thread(executor.shutdown, wait=True)

    async def __aenter__(self) -> EmbeddingWorker:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def embed(self, image: NDArray[np.uint8]) -> EmbedResult:
        """Embed one preprocessed picture (uint8 [224, 224, 3]).

        Raises:
            ValueError: The picture has the wrong dtype or shape (checked before queueing, so
                one bad request never fails a whole batch).
            WorkerClosedError: The worker is not running.
        """
        check_image(image)
        if not self._accepting:
            raise WorkerClosedError("embedding worker is not running")
        future: asyncio.Future[EmbedResult] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Request(image, future))
        # The collector holds the batch's first request outside the queue.
        if self._queue.qsize() >= self._max_batch - 1:
            self._full.set()
        return await future

    async def embed_many(self, images: Sequence[NDArray[np.uint8]]) -> EmbedBatch:
        """Embed several pictures; they share batches with everyone else's requests."""
        results = await asyncio.gather(*(self.embed(image) for image in images))
        if not results:
            return EmbedBatch(
                np.empty((0, EMBEDDING_DIM), np.float32), np.empty((0, NUM_CLASSES), np.float32)
            )
        return EmbedBatch(
            np.stack([result.embedding for result in results]),
            np.stack([result.probabilities for result in results]),
        )

    async def _collect(self) -> None:
        """Take requests off the queue in batches and run each batch on the thread."""
        stopping = False
        try:
            while not stopping:
                first = await self._queue.get()
                if first is None:
                    break
                if self._queue.qsize() < self._max_batch - 1 and self._max_wait > 0:
                    # Give concurrent callers a moment to join, unless the batch is already full.
                    self._full.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._full.wait(), self._max_wait)
                batch = [first]
                while len(batch) < self._max_batch and not self._queue.empty():
                    request = self._queue.get_nowait()
                    if request is None:
                        stopping = True
                        break
                    batch.append(request)
                await self._run(batch)
        finally:
            # Only reached with requests left if the collector itself failed or was cancelled.
            self._accepting = False
            while not self._queue.empty():
                request = self._queue.get_nowait()
                if request is not None and not request.future.done():
                    request.future.set_exception(WorkerClosedError("embedding worker stopped"))

    async def _run(self, batch: list[_Request]) -> None:
        """Run one batch on the worker thread and resolve its futures."""
        live = [request for request in batch if not request.future.done()]  # skip cancelled
        if not live:
            return
        embedder, executor = self._embedder, self._executor
        assert embedder is not None and executor is not None
        images = [request.image for request in live]
        loop = asyncio.get_running_loop()
        try:
            # Stacking ~5 MB happens on the thread too: nothing heavy on the event loop.
            result = await loop.run_in_executor(executor, _embed_stacked, embedder, images)
        except asyncio.CancelledError:
            for request in live:
                if not request.future.done():
                    request.future.set_exception(WorkerClosedError("embedding worker cancelled"))
            raise
        except Exception as exc:  # the network failed: every caller in the batch learns why
            for request in live:
                if not request.future.done():
                    request.future.set_exception(exc)
            return
        self._batches_run += 1
        self._pictures_embedded += len(live)
        for index, request in enumerate(live):
            if not request.future.done():
                request.future.set_result(
                    EmbedResult(result.embeddings[index], result.probabilities[index])
                )


def _embed_stacked(embedder: BatchEmbedder, images: list[NDArray[np.uint8]]) -> EmbedBatch:
    """Stack single pictures into a batch and embed it (runs on the worker thread)."""
    return embedder.embed(np.stack(images))
