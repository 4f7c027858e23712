"""The few chart kinds the reports draw, as embedded PNGs: bars per category, and timelines of segments.

One timeline drawing serves both "when does the answer show the label"
(a query, one row per video) and "when is each person on screen" (faces, one
row per person), as one merging rule (:mod:`mxn.media.segments`) serves both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .page import Markup, figure_img, new_figure

#: Colours of the series of a chart, in order (colour-blind safe).
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#17becf", "#7f7f7f")


def bar_chart(
    categories: Sequence[str], series: Mapping[str, Sequence[float]], title: str, xlabel: str
) -> Markup:
    """Horizontal bars: one group per category, one bar per series, each bar labelled with its value."""
    n = max(len(categories), 1)
    fig = new_figure(8.0, 1.0 + 0.2 * n * max(len(series), 1) + 0.15 * n)
    ax = fig.subplots()
    height = 0.8 / max(len(series), 1)
    for k, (name, values) in enumerate(series.items()):
        offsets = [i + (k - (len(series) - 1) / 2) * height for i in range(len(categories))]
        bars = ax.barh(offsets, values, height=height, label=name, color=PALETTE[k % len(PALETTE)])
        ax.bar_label(bars, fmt="%g", padding=2, fontsize=8)
    ax.set_yticks(range(len(categories)), list(categories))
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.margins(x=0.12)
    ax.grid(axis="x", alpha=0.3)
    if len(series) > 1:
        ax.legend(loc="lower right", fontsize=8)
    return figure_img(fig, title)


def timeline_chart(
    rows: Sequence[tuple[str, Sequence[tuple[float, float]]]],
    title: str,
    span: tuple[float, float] | None = None,
    colours: Sequence[str] | None = None,
) -> Markup:
    """One row per name, its (start, end) segments as bars over time in seconds.

    A segment of a single frame has no length; it is drawn at least 0.4% of
    the span wide, so a moment seen once is still visible.
    """
    ends = [e for _, segments in rows for _, e in segments]
    low, high = span if span is not None else (0.0, max(ends, default=1.0))
    high = max(high, low + 1e-6)
    least = 0.004 * (high - low)
    fig = new_figure(9.0, 1.0 + 0.35 * max(len(rows), 1))
    ax = fig.subplots()
    for k, (_, segments) in enumerate(rows):
        colour = (colours[k] if colours else None) or PALETTE[k % len(PALETTE)]
        bars = [(s, max(e - s, least)) for s, e in segments]
        ax.broken_barh(bars, (k - 0.35, 0.7), facecolors=colour)
    ax.set_yticks(range(len(rows)), [name for name, _ in rows])
    ax.set_xlim(low, high)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlabel("seconds")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return figure_img(fig, title)
