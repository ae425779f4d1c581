"""Small helpers the templates use: number formats, the heatmap colour scale, chart data."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from web.queries import evidence_turn

# A diverging scale that people with red-green colour blindness can read: orange for low,
# near white for the middle, blue for high. The value is always printed in the cell too.
_LOW = (179, 88, 6)
_MID = (247, 247, 247)
_HIGH = (33, 102, 172)


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    r, g, bl = (round(x + (y - x) * t) for x, y in zip(a, b, strict=True))
    return r, g, bl


def _luminance(rgb: tuple[int, int, int]) -> float:
    def channel(c: int) -> float:
        v = c / 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def level_style(mean: float | None) -> str:
    """Background and text colour for a mean level between 1 and 3 (contrast at least 4.5:1)."""
    if mean is None:
        return "background:#ececec;color:#333"
    t = min(max((mean - 1.0) / 2.0, 0.0), 1.0)
    rgb = _mix(_LOW, _MID, t * 2) if t <= 0.5 else _mix(_MID, _HIGH, (t - 0.5) * 2)
    light = _luminance(rgb)
    # pick the text colour with the better contrast against the background
    dark_contrast = (light + 0.05) / (0.0 + 0.05)
    white_contrast = 1.05 / (light + 0.05)
    text = "#000" if dark_contrast >= white_contrast else "#fff"
    return f"background:rgb({rgb[0]},{rgb[1]},{rgb[2]});color:{text}"


def fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def signed(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:+.{digits}f}"


def when(value: datetime | date | None) -> str:
    if value is None:
        return "–"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return value.isoformat()


def clock_time(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


def trend_chart(
    rows: Iterable[Mapping[str, Any]],
    names: Mapping[str, str],
    *,
    threshold: float | None,
    title: str,
) -> dict[str, Any]:
    """Chart data for criterion means per bucket (rows as `team_trend` returns them)."""
    rows = list(rows)
    labels = sorted({str(r["bucket_start"]) for r in rows})
    criteria: list[str] = []
    for r in rows:
        if r["criterion_id"] not in criteria:
            criteria.append(str(r["criterion_id"]))
    order = [c for c in names if c in criteria] + [c for c in criteria if c not in names]
    by_key = {(str(r["bucket_start"]), str(r["criterion_id"])): r for r in rows}
    datasets = []
    for cid in order:
        values = [by_key.get((label, cid), {}).get("mean") for label in labels]
        counts = [by_key.get((label, cid), {}).get("n", 0) for label in labels]
        datasets.append({"label": names.get(cid, cid), "data": values, "n": counts})
    return {
        "kind": "trend",
        "title": title,
        "labels": labels,
        "datasets": datasets,
        "threshold": threshold,
    }


def sessions_chart(
    sessions: Sequence[Any],
    criteria: Sequence[tuple[str, str]],
    *,
    threshold: float | None,
    title: str,
) -> dict[str, Any]:
    """Chart data for a rep's sessions: one panel per criterion, calls and practice apart,
    each point linking to its interaction."""
    panels = []
    for cid, name in criteria:
        calls: list[dict[str, Any]] = []
        practice: list[dict[str, Any]] = []
        for s in sorted(sessions, key=lambda s: s.started_at):
            score = s.scores.get(cid)
            if score is None or score.level is None:
                continue
            turn = evidence_turn(score.checks)
            anchor = f"#turn-{turn}" if turn is not None else ""
            point = {
                "x": int(s.started_at.timestamp() * 1000),
                "y": score.level,
                "href": f"/interactions/{s.interaction_id}{anchor}",
            }
            (practice if s.kind == "practice" else calls).append(point)
        panels.append({"criterion": cid, "title": name, "calls": calls, "practice": practice})
    return {"kind": "sessions", "title": title, "panels": panels, "threshold": threshold}
