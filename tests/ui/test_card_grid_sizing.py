"""The card grid's tiles composed before the first layout from an expected size (issue #21).

A grid told what size to expect composes its tiles with itself, so the screen's first frame has
its cards; the first resize keeps them when the guess was right, and corrects a wrong guess by
removing (or mounting) only the difference.
"""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.geometry import Size

from tests.ui.harness import HarnessApp, card
from tui.data.thumbnails import PictureCache
from tui.widgets.card_grid import CardGrid, ItemTile, tiles_that_fit

SIZE = (80, 24)


class RecordingGrid(CardGrid):
    """A card grid that remembers the tiles it composed."""

    composed: list[ItemTile]

    def compose(self) -> ComposeResult:
        self.composed = [tile for tile in super().compose() if isinstance(tile, ItemTile)]
        yield from self.composed


async def _content_size(tmp_path: Path) -> Size:
    """The grid's content size in the harness at :data:`SIZE`, learnt without a guess."""
    app = HarnessApp(lambda: CardGrid(id="cards"), root=tmp_path / "learn")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        return app.query_one(CardGrid).content_size


async def test_a_right_guess_composes_the_tiles_kept_after_the_first_layout(
    tmp_path: Path,
) -> None:
    size = await _content_size(tmp_path)
    app = HarnessApp(lambda: RecordingGrid(expected_size=lambda _: size, id="cards"), root=tmp_path)
    cards = [card(i) for i in range(1, 30)]
    async with app.run_test(size=SIZE) as pilot:
        grid = app.query_one(RecordingGrid)
        await grid.set_items(cards, reset=True)
        await pilot.pause()
        columns, rows = tiles_that_fit(size)
        assert len(grid.composed) == columns * rows > 1
        assert list(app.query(ItemTile)) == grid.composed  # none mounted again
        assert [tile.card for tile in grid.composed] == cards[: columns * rows]


async def test_a_wrong_guess_is_corrected_keeping_the_first_tiles(tmp_path: Path) -> None:
    size = await _content_size(tmp_path)
    app = HarnessApp(
        lambda: RecordingGrid(expected_size=lambda t: Size(t.width * 2, t.height * 2), id="cards"),
        root=tmp_path,
    )
    cards = [card(i) for i in range(1, 60)]
    async with app.run_test(size=SIZE) as pilot:
        grid = app.query_one(RecordingGrid)
        await grid.set_items(cards, reset=True)
        await pilot.pause()
        columns, rows = tiles_that_fit(size)
        shown = list(app.query(ItemTile))
        assert (grid.columns, grid.rows) == (columns, rows)
        assert len(grid.composed) > len(shown) == columns * rows
        assert shown == grid.composed[: len(shown)]
        assert [tile.card for tile in shown] == cards[: len(shown)]


async def test_an_empty_shared_picture_cache_is_still_shared(tmp_path: Path) -> None:
    shared = PictureCache()
    assert len(shared) == 0
    assert CardGrid(cache=shared).cache is shared
