"""Tests for the asyncio micro-batching embedding worker."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from backend.vision.embedder import Embedder
from backend.vision.types import EmbedBatch
from backend.vision.worker import EmbeddingWorker, WorkerClosedError
from tests.unit.vision_fixtures import preprocessed, sample_picture, shared_embedder


class FakeEmbedder:
    """Embeds a picture as its first pixel; records batches and the threads they ran on."""

    model_version = "fake/v1"

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.batches: list[int] = []
        self.threads: set[str] = set()
        self.delay = delay
        self.fail = fail

    def embed(self, batch: np.ndarray) -> EmbedBatch:
        self.threads.add(threading.current_thread().name)
        self.batches.append(len(batch))
        if self.delay:
            threading.Event().wait(self.delay)
        if self.fail:
            raise RuntimeError("network exploded")
        embeddings = np.zeros((len(batch), 1280), np.float32)
        embeddings[:, 0] = batch[:, 0, 0, 0]
        return EmbedBatch(embeddings, np.zeros((len(batch), 1000), np.float32))


def picture(value: int) -> np.ndarray:
    return np.full((224, 224, 3), value, np.uint8)


async def test_concurrent_requests_share_batches_off_the_loop() -> None:
    fake = FakeEmbedder(delay=0.02)
    async with EmbeddingWorker(lambda: fake, max_batch=8) as worker:
        results = await asyncio.gather(*(worker.embed(picture(i)) for i in range(40)))
        assert worker.batches_run == len(fake.batches)
    assert [int(r.embedding[0]) for r in results] == list(range(40))
    assert max(fake.batches) <= 8 and sum(fake.batches) == 40
    assert len(fake.batches) <= 10  # far fewer than one batch per request
    assert fake.threads and all(name.startswith("pixmart-embed") for name in fake.threads)
    assert threading.current_thread().name not in fake.threads


async def test_factory_runs_on_the_worker_thread() -> None:
    built_on: list[str] = []

    def factory() -> FakeEmbedder:
        built_on.append(threading.current_thread().name)
        return FakeEmbedder()

    async with EmbeddingWorker(factory) as worker:
        assert worker.model_version == "fake/v1"
    assert built_on[0].startswith("pixmart-embed")


async def test_bad_picture_fails_alone() -> None:
    fake = FakeEmbedder()
    async with EmbeddingWorker(lambda: fake) as worker:
        with pytest.raises(ValueError):
            await worker.embed(np.zeros((10, 10, 3), np.uint8))
        assert int((await worker.embed(picture(3))).embedding[0]) == 3


async def test_network_failure_reaches_every_caller_in_the_batch() -> None:
    async with EmbeddingWorker(lambda: FakeEmbedder(fail=True)) as worker:
        outcomes = await asyncio.gather(*(worker.embed(picture(i)) for i in range(3)),
                                        return_exceptions=True)
    assert all(isinstance(o, RuntimeError) and "exploded" in str(o) for o in outcomes)


async def test_close_finishes_queued_work_then_rejects() -> None:
    fake = FakeEmbedder(delay=0.01)
    worker = EmbeddingWorker(lambda: fake, max_batch=2)
    with pytest.raises(WorkerClosedError):
        await worker.embed(picture(1))
    await worker.start()
    pending = [asyncio.create_task(worker.embed(picture(i))) for i in range(6)]
    await asyncio.sleep(0)  # let the requests queue
    await worker.close()
    assert [int((await task).embedding[0]) for task in pending] == list(range(6))
    with pytest.raises(WorkerClosedError):
        await worker.embed(picture(1))
    await worker.close()  # idempotent


async def test_cancelled_caller_does_not_disturb_others() -> None:
    fake = FakeEmbedder(delay=0.02)
    async with EmbeddingWorker(lambda: fake) as worker:
        doomed = asyncio.create_task(worker.embed(picture(1)))
        kept = asyncio.create_task(worker.embed(picture(2)))
        await asyncio.sleep(0)
        doomed.cancel()
        assert int((await kept).embedding[0]) == 2
        with pytest.raises(asyncio.CancelledError):
            await doomed


async def test_embed_many_returns_stacked_results() -> None:
    async with EmbeddingWorker(FakeEmbedder) as worker:
        batch = await worker.embed_many([picture(5), picture(6)])
    assert batch.embeddings.shape == (2, 1280)
    assert batch.embeddings[:, 0].tolist() == [5, 6]


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    return shared_embedder(tmp_path_factory)


async def test_real_embedder_through_the_worker_matches_direct_calls(embedder: Embedder) -> None:
    pictures = [preprocessed(sample_picture(name)) for name in ("chelsea", "coffee", "rocket")]
    direct = embedder.embed(np.stack(pictures))
    async with EmbeddingWorker(lambda: embedder) as worker:
        results = await asyncio.gather(*(worker.embed(p) for p in pictures))
    for result, expected in zip(results, direct.embeddings, strict=True):
        np.testing.assert_allclose(result.embedding, expected, atol=1e-5)
