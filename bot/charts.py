"""The criterion trend chart for `/team-gaps`, drawn with matplotlib's Agg renderer.

Uses the object API (a `Figure` with its own Agg canvas, no pyplot state), so charts can be
drawn from worker threads at the same time.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def trend_chart(
    trend: Sequence[Mapping[str, Any]],
    names: Mapping[str, str],
    *,
    title: str,
    threshold: float | None = None,
) -> bytes:
    """A PNG of each criterion's mean level per bucket of days (`team_trend` rows)."""
    series: dict[str, list[tuple[date, float]]] = defaultdict(list)
    for row in trend:
        if row.get("mean") is None:
            continue
        series[str(row["criterion_id"])].append(
            (date.fromisoformat(str(row["bucket_start"])), float(row["mean"]))
        )
    figure = Figure(figsize=(8, 4.2), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    buckets = sorted({d for points in series.values() for d, _ in points})
    position = {d: i for i, d in enumerate(buckets)}
    for i, (criterion_id, points) in enumerate(sorted(series.items())):
        points.sort()
        axes.plot(
            [position[p[0]] for p in points],
            [p[1] for p in points],
            marker="o",
            linewidth=2,
            color=PALETTE[i % len(PALETTE)],
            label=names.get(criterion_id, criterion_id),
        )
    if threshold is not None:
        axes.axhline(threshold, color="#888888", linestyle="--", linewidth=1, label="the bar")
    axes.set_ylim(0.8, 3.2)
    axes.set_yticks([1, 2, 3])
    axes.set_ylabel("mean level")
    axes.set_title(title)
    axes.grid(axis="y", alpha=0.3)
    if series:
        axes.legend(loc="lower left", fontsize="small", ncols=2)
    else:
        axes.text(0.5, 0.5, "no scored calls", ha="center", va="center", transform=axes.transAxes)
    axes.set_xticks(range(len(buckets)))
    axes.set_xticklabels([f"{d:%d %b}" for d in buckets])
    axes.set_xlabel("week starting")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
