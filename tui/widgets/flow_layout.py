"""Provides :class:`FlowLayout`: children left to right, wrapping onto a new row when full."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual._resolve import resolve_box_models
from textual.geometry import NULL_OFFSET, Region, Size
from textual.layout import ArrangeResult, Layout, WidgetPlacement

if TYPE_CHECKING:
    from textual.widget import Widget


class FlowLayout(Layout):
    """Lays children out like words in a paragraph: left to right at their own (``auto``)
    width, starting a new row when the next one does not fit in what is left of the row.

    Textual has no wrapping layout (``horizontal`` clips what does not fit, ``grid`` gives
    every cell one width). Horizontal margins between neighbours collapse as in ``horizontal``
    and are dropped at the start of a row; a row is as high as its highest child. A child wider
    than the whole row gets a row of its own and is clipped. The container's ``auto`` height is
    the rows' total, so a container using it grows a row when its width shrinks.
    """

    name = "flow"

    def arrange(
        self, parent: Widget, children: list[Widget], size: Size, greedy: bool = True
    ) -> ArrangeResult:
        parent.pre_layout(self)
        flowing = [child for child in children if child.styles.overlay != "screen"]
        if not flowing:
            return []
        # Widths as the horizontal layout resolves them (auto: the child's own content width).
        box_models = resolve_box_models(
            [child.styles.width for child in flowing],
            flowing,
            size,
            parent.app.viewport_size,
            Size(0, 0),
            resolve_dimension="width",
            greedy=False,
        )
        placements: list[WidgetPlacement] = []
        x = y = row_height = 0
        right_margin = 0  # of the previous child on this row
        for child, (box_width, box_height, margin) in zip(flowing, box_models, strict=True):
            width, height = int(box_width), int(box_height)
            gap = max(right_margin, margin.left)
            if x and x + gap + width > size.width:  # full: the child starts the next row
                y += row_height
                x = row_height = 0
            if x:
                x += gap
            placements.append(
                WidgetPlacement(
                    Region(x, y + margin.top, width, height), NULL_OFFSET, margin, child
                )
            )
            x += width
            right_margin = margin.right
            row_height = max(row_height, height + margin.top + margin.bottom)
        return placements


__all__ = ["FlowLayout"]
