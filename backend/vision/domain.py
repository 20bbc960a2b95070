"""Provides the vision domain: the embedder, the index and the similar-image handlers."""

from __future__ import annotations

from typing import Literal

from backend.catalogue.seen import SeenVocabulary
from backend.catalogue.service import CatalogueService
from backend.dispatch import Dispatcher
from backend.metrics import EmbeddingStats
from backend.services import Services
from backend.startup import check_writable_dir
from backend.vision import handlers
from backend.vision.labels import SEEN_THRESHOLD, class_words
from backend.vision.repositories import embedding_repository, similarity_index
from backend.vision.service import VisionService

#: What the hello's capabilities say of image search.
VisionStatus = Literal["off", "warming", "ready", "failed"]

#: The embedder the hello's capabilities name while the model is in use.
EMBEDDER_NAME = "efficientnet-lite0"


class VisionDomain:
    """Similar-image search; with ``enable_vision`` off its requests answer ``unavailable``."""

    def __init__(self, services: Services, *, catalogue: CatalogueService) -> None:
        """Prepare the domain; the model is looked at only by :meth:`start`.

        Args:
            services: The server's shared services.
            catalogue: Whose items are indexed; the vision service hooks into it.
        """
        self._services = services
        self._catalogue = catalogue
        # Even without the model: the classes stored while it ran are still worth finding.
        catalogue.listings.vocabulary = SeenVocabulary(class_words, threshold=SEEN_THRESHOLD)
        #: The running service; ``None`` without the model (vision off, or not started yet).
        self.service: VisionService | None = None
        # The worker is built only once started, and not at all without the model, so the
        # metrics look it up at every scrape.
        services.metrics.watch_embeddings(self._embedding_worker)
        services.metrics.watch_backfill(self._backfill_remaining)

    @property
    def status(self) -> VisionStatus:
        """``off`` without the model, else the service's state."""
        return "off" if self.service is None else self.service.state

    @property
    def embedder(self) -> str:
        """The embedder's name, ``none`` without the model."""
        return "none" if self.service is None else EMBEDDER_NAME

    @property
    def embedder_version(self) -> str:
        """The model version stored with every embedding, empty without the model."""
        return "" if self.service is None else self.service.model_version

    async def start(self) -> None:
        """Check the model cache, then warm the model and the index up in the background.

        Raises:
            StartupError: The model cache folder cannot be written.
        """
        config = self._services.config
        if not config.enable_vision:
            return
        # Imported only when enabled: these pull in numpy-heavy code and, lazily, TensorFlow.
        from backend.vision.embedder import MODEL_VERSION, Embedder, default_cache_dir

        cache_dir = config.model_cache_dir or default_cache_dir(config.data_dir)
        check_writable_dir(
            cache_dir,
            "image model cache",
            "make it a writable folder or remove it (it is rebuilt), or start with --no-vision",
        )
        db = self._services.db
        self.service = VisionService(
            config=config,
            catalogue=self._catalogue,
            embeddings=embedding_repository(db),
            index=similarity_index(db, MODEL_VERSION),
            embedder_factory=lambda cancel: Embedder(cache_dir, cancel=cancel),
            model_version=MODEL_VERSION,
            exclusive_job=db.exclusive_job,
        )
        await self.service.start()

    def register(self, dispatcher: Dispatcher) -> None:
        """Register the handlers (they answer ``unavailable`` without a model)."""
        handlers.register(dispatcher, self.service)

    async def stop(self) -> None:
        """Stop the worker and any warm-up or re-embedding."""
        if self.service is not None:
            await self.service.stop()
            self.service = None

    def _embedding_worker(self) -> EmbeddingStats | None:
        return self.service.worker if self.service is not None else None

    def _backfill_remaining(self) -> int:
        return self.service.backfill_remaining if self.service is not None else 0
