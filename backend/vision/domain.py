"""Provides the vision domain: the embedder, the index and the similar-image handlers."""

from __future__ import annotations

from typing import Literal

from backend.catalogue.service import CatalogueService
from backend.dispatch import Dispatcher
from backend.services import Services
from backend.startup import check_writable_dir
from backend.vision import handlers
from backend.vision.service import VisionService

#: What the hello's capabilities say of image search.
VisionStatus = Literal["off", "warming", "ready", "failed"]


class VisionDomain:
    """Similar-image search; with ``enable_vision`` off its requests answer ``unavailable``."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self.service: VisionService | None = None

    @property
    def status(self) -> VisionStatus:
        """``off`` without the model, else the service's state."""
        return "off" if self.service is None else self.service.state

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

        catalogue: CatalogueService = self._services.extra["catalogue"]
        cache_dir = config.model_cache_dir or default_cache_dir(config.data_dir)
        check_writable_dir(
            cache_dir,
            "image model cache",
            "make it a writable folder or remove it (it is rebuilt), or start with --no-vision",
        )
        self.service = VisionService(
            self._services,
            catalogue,
            lambda cancel: Embedder(cache_dir, cancel=cancel),
            MODEL_VERSION,
        )
        await self.service.start()
        self._services.extra["vision"] = self.service
        self._services.extra["embedder_name"] = "efficientnet-lite0"
        self._services.extra["embedder_version"] = MODEL_VERSION

    def register(self, dispatcher: Dispatcher) -> None:
        """Register the handlers (they answer ``unavailable`` without a model)."""
        handlers.register(dispatcher, self.service)

    async def stop(self) -> None:
        """Stop the worker and any warm-up or re-embedding."""
        if self.service is not None:
            await self.service.stop()
            self.service = None
