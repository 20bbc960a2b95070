"""Provides the vision domain's storage interfaces: what the vision service asks of a database.

Two protocols, each with a SQLite and a PostgreSQL implementation
(:mod:`backend.vision.repositories` picks them):

* :class:`EmbeddingRepository`: one embedding per distinct picture (its vector, the model
  version that made it, the classifier's tag suggestions and the classes it sees, which text
  search matches in ``picture_classes``);
* :class:`SimilarityIndex`: ranks the items showing those pictures by cosine similarity to a
  query vector, among the items a viewer may see, in keyset-paged batches.

Vectors are L2-normalised float32 arrays going in; both engines store them as float16, so a
vector read back carries float16 values. Hits are ordered by score descending, then item id
ascending, on both engines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from backend.vision.index import Hit
from backend.vision.labels import SeenClass

__all__ = [
    "EmbeddingRepository",
    "Hit",
    "ItemSuggestions",
    "PictureLabels",
    "SimilarityIndex",
    "Suggestion",
]


@dataclass(frozen=True, slots=True)
class Suggestion:
    """A tag the image classifier proposes for a picture, with its probability."""

    tag: str
    probability: float


@dataclass(frozen=True, slots=True)
class ItemSuggestions:
    """What the tag suggestions for one item are made from.

    Attributes:
        owner_id: The item's owner (only they, or an admin, may see the suggestions).
        suggestions: Those of the item's picture, best first; empty until it is embedded.
        tags: The tags the item carries already.
    """

    owner_id: int
    suggestions: tuple[Suggestion, ...]
    tags: frozenset[str]


@dataclass(frozen=True, slots=True)
class PictureLabels:
    """The classes the model sees in a picture, for text search to find it by.

    Attributes:
        version: The way they were chosen (:data:`~backend.vision.labels.LABELS_VERSION`).
        classes: Most probable first; possibly none.
    """

    version: int
    classes: tuple[SeenClass, ...]


class EmbeddingRepository(Protocol):
    """The embeddings of the catalogue's pictures, one per picture (keyed by its SHA-256)."""

    async def store(
        self,
        sha256: str,
        *,
        model_version: str,
        vector: NDArray[np.float32],
        suggestions: Sequence[Suggestion],
        labels: PictureLabels,
    ) -> bool:
        """Store (or replace) a picture's embedding and its classes; ``False`` if it is gone.

        The picture's last item may be deleted while its embedding is computed; then nothing
        is stored. Its classes replace those stored before, in the same transaction.
        """
        ...

    async def vector(self, sha256: str, model_version: str) -> NDArray[np.float32] | None:
        """The picture's stored vector if ``model_version`` made it, else ``None``."""
        ...

    async def unembedded(self, model_version: str, labels_version: int) -> list[str]:
        """The hashes of the pictures items show that have no embedding by ``model_version``,
        or whose classes were chosen before ``labels_version``.

        These are re-embedded in the background after a model change (and after uploads made
        while the model was warming up, and for pictures stored before their classes were).
        """
        ...

    async def item_suggestions(self, item_id: int) -> ItemSuggestions | None:
        """The owner, the picture's suggestions and the tags of an item; ``None`` if no item."""
        ...


class SimilarityIndex(Protocol):
    """Similar-image ranking over the items whose picture has an embedding of one model.

    Visibility is part of every ranking: a viewer sees public items and their own, and
    nothing else is ever ranked, so filtering never shortens a batch after the fact.
    """

    async def load(self) -> int:
        """Get ready to search; return how many items are searchable.

        Called once, before the first search, while the server already serves; the hooks below
        may run meanwhile.
        """
        ...

    async def search(
        self,
        query: NDArray[np.float32],
        k: int,
        *,
        viewer_id: int | None,
        after: tuple[float, int] | None = None,
        among: Sequence[int] | None = None,
    ) -> list[Hit]:
        """Return up to ``k`` items most like ``query`` that the viewer may see.

        Args:
            query: A vector of the embedding's length (normalised here).
            k: Most hits to return.
            viewer_id: The signed-in user; ``None`` sees public items only.
            after: Keyset cursor ``(score, item_id)`` of the last hit of the previous batch:
                only hits strictly after it in the result order are returned.
            among: If given, only these item ids are ranked (a tag or price prefilter).

        Returns:
            Hits ordered by score descending, then item id ascending.
        """
        ...

    async def count_visible(self, viewer_id: int | None) -> int:
        """How many searchable items the viewer may see (an unfiltered search's total)."""
        ...

    async def vector_of(self, item_id: int) -> NDArray[np.float32] | None:
        """The searchable vector of an item, or ``None`` if it has none (yet)."""
        ...

    async def picture_embedded(self, sha256: str, vector: NDArray[np.float32]) -> None:
        """Make the items showing picture ``sha256`` searchable with its new ``vector``.

        Called after the embedding was stored: for a new item, and after re-embedding.
        """
        ...

    async def items_deleted(self, item_ids: Sequence[int]) -> None:
        """Forget deleted items (called after the deletion committed)."""
        ...

    async def visibility_changed(self, item_id: int, public: bool) -> None:
        """Take an item's new visibility into account (called after the edit committed)."""
        ...
