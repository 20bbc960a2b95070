"""Provides :class:`SalesChart`: a bar chart of a sales series, drawn by plotext.

The chart is :class:`textual_plotext.PlotextPlot`, plotext's own drawing in a Textual widget; it is
redrawn from the series at every render, so the ticks it labels always fit the width it has.
"""

from __future__ import annotations

from textual.app import RenderResult
from textual_plotext import PlotextPlot

from tui.data.sales import ChartSeries, nice_ticks, tick_indexes, tick_label

#: Columns plotext keeps left of the bars for the y-axis labels (roughly; only for the ticks).
_Y_AXIS_WIDTH = 8
#: Rows around the bars: the title, the frame's two lines and the x-axis labels.
_FRAME_ROWS = 4
#: Bar width as a share of the space per bar: narrow enough that neighbours stay apart.
_BAR_WIDTH = 0.4


class SalesChart(PlotextPlot):
    """Bars of one :class:`~tui.data.sales.ChartSeries`, oldest on the left."""

    DEFAULT_CSS = """
    SalesChart {
        height: 1fr;
        min-height: 6;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, classes=classes)
        self._series: ChartSeries | None = None

    @property
    def series(self) -> ChartSeries | None:
        """The series drawn, if any."""
        return self._series

    def show(self, series: ChartSeries) -> None:
        """Draw ``series`` instead of what was drawn."""
        self._series = series
        self.refresh()

    def render(self) -> RenderResult:
        plot = self.plt
        plot.clear_figure()
        series = self._series
        if series is not None:
            self._draw(series)
        return super().render()

    def _draw(self, series: ChartSeries) -> None:
        plot = self.plt
        positions = list(range(1, len(series.values) + 1))
        plot.title(series.title)
        plot.bar(positions, series.values, width=_BAR_WIDTH)
        shown = tick_indexes(len(positions), max(1, self.size.width - _Y_AXIS_WIDTH))
        plot.xticks([positions[i] for i in shown], [series.labels[i] for i in shown])
        # Round, whole ticks (plotext's own would label 4.17 units); an all-zero series
        # still gets a scale to draw its axis with.
        ticks = nice_ticks(max(series.values, default=0.0), self.size.height - _FRAME_ROWS)
        plot.ylim(0, ticks[-1])
        plot.yticks([float(tick) for tick in ticks], [tick_label(tick) for tick in ticks])


__all__ = ["SalesChart"]
