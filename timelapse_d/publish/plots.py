"""The report's plots, drawn with matplotlib into standalone SVG documents."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np

from timelapse_d.errors import ConfigError

try:
    from matplotlib.figure import Figure
except ImportError as exc:  # the `report` extra
    raise ConfigError(
        "`tld report` draws with matplotlib: pip install 'timelapse-d[report]'"
    ) from exc

KEPT_COLOUR = "#2a9d8f"
REJECTED_COLOUR = "#9a9a9a"
THRESHOLD_COLOUR = "#d62828"


def _svg(figure: Figure) -> bytes:
    import matplotlib

    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "timelapse-d"}):
        buffer = io.BytesIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


def bar_chart(labels: Sequence[str], values: Sequence[float], title: str, xlabel: str) -> bytes:
    """Horizontal bars, first label on top."""
    figure = Figure(figsize=(6.4, 0.35 * max(len(labels), 2) + 0.9), layout="constrained")
    axes = figure.subplots()
    positions = np.arange(len(labels))[::-1]
    axes.barh(positions, values, color=KEPT_COLOUR)
    axes.set_yticks(positions, labels)
    for position, value in zip(positions, values, strict=True):
        axes.text(value, position, f" {value:,.0f}", va="center", fontsize=8)
    axes.set_xlabel(xlabel)
    axes.set_title(title)
    axes.margins(x=0.15)
    return _svg(figure)


def grouped_bars(
    labels: Sequence[str], groups: dict[str, Sequence[float]], title: str, ylabel: str
) -> bytes:
    """Vertical bars, one colour per group (e.g. train/test per category)."""
    figure = Figure(figsize=(max(4.0, 0.6 * len(labels) + 2), 3.2), layout="constrained")
    axes = figure.subplots()
    width = 0.8 / max(len(groups), 1)
    x = np.arange(len(labels))
    for index, (name, values) in enumerate(groups.items()):
        axes.bar(x + index * width, values, width, label=name)
    axes.set_xticks(x + width * (len(groups) - 1) / 2, labels, rotation=30, ha="right")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.legend(fontsize=8)
    return _svg(figure)


def score_histograms(panels: list[tuple[str, np.ndarray, np.ndarray, float, str]]) -> bytes:
    """One panel per score: kept and rejected values stacked, the threshold as a red line, the
    side it rejects shaded. Each panel is (score, kept values, rejected values, threshold,
    'below' or 'above'); values far outside the bulk are gathered into the edge bins."""
    columns = 3
    rows = -(-len(panels) // columns)
    figure = Figure(figsize=(4.0 * columns, 2.6 * rows), layout="constrained")
    axes_grid = np.atleast_1d(figure.subplots(rows, columns)).ravel()
    for axes, (name, kept, rejected, threshold, side) in zip(axes_grid, panels, strict=False):
        values = np.concatenate([kept, rejected])
        low, high = np.percentile(values, [0.5, 99.5]) if len(values) else (0.0, 1.0)
        low, high = min(low, threshold), max(high, threshold)
        if high <= low:
            high = low + 1.0
        span = (high - low) * 0.05
        edges = np.linspace(low - span, high + span, 41)
        kept_counts, _ = np.histogram(np.clip(kept, edges[0], edges[-1]), edges)
        rejected_counts, _ = np.histogram(np.clip(rejected, edges[0], edges[-1]), edges)
        axes.stairs(
            kept_counts + rejected_counts, edges, fill=True, color=REJECTED_COLOUR, label="rejected"
        )
        axes.stairs(kept_counts, edges, fill=True, color=KEPT_COLOUR, label="kept")
        axes.axvline(threshold, color=THRESHOLD_COLOUR, linewidth=1.5)
        if side == "below":
            axes.axvspan(edges[0], threshold, color=THRESHOLD_COLOUR, alpha=0.08)
        else:
            axes.axvspan(threshold, edges[-1], color=THRESHOLD_COLOUR, alpha=0.08)
        axes.set_title(f"{name} (threshold {threshold:.3g})", fontsize=9)
        axes.tick_params(labelsize=7)
        axes.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4))
    for axes in axes_grid[len(panels) :]:
        axes.set_visible(False)
    if panels:
        axes_grid[0].legend(fontsize=7)
    return _svg(figure)


def size_histogram(sizes: Mapping[str, Sequence[int]], title: str) -> bytes:
    """Shard sizes (MB) per field."""
    figure = Figure(figsize=(6.4, 2.8), layout="constrained")
    axes = figure.subplots()
    for name, values in sizes.items():
        if len(values):
            axes.hist(np.asarray(values) / 1e6, bins=20, alpha=0.6, label=name)
    axes.set_xlabel("MB per shard")
    axes.set_ylabel("shards")
    axes.set_title(title)
    axes.legend(fontsize=8)
    return _svg(figure)
