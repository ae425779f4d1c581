"""Lagging indicators (CSAT, resolution rate, QA score, ...) imported per rep and period.

The CSV has a header. Each row names the rep (`rep`, `external_id` or `email`), the period
(`period_start`, `period_end`, ISO dates, inclusive) and either a `metric` and a `value`
column, or one column per metric. A bad row is reported with its line and set aside; the
rest are stored. Importing the same file again changes nothing.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from coaching.errors import OutcomeImportError
from store.db import session_scope
from store.models import Outcome, Person

logger = logging.getLogger(__name__)

REP_COLUMNS = ("rep", "external_id", "rep_id", "employee_id", "email")
PERIOD_COLUMNS = ("period_start", "period_end")


@dataclass(frozen=True, slots=True)
class RejectedRow:
    line: int
    reason: str


@dataclass
class OutcomeImportResult:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)


def _parse_date(text: str, column: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"`{column}` is `{text}`, not a date like 2026-11-01") from None


def _parse_value(text: str, metric: str) -> float:
    cleaned = text.strip().rstrip("%").replace(",", "")
    try:
        value = float(cleaned)
    except ValueError:
        raise ValueError(f"`{metric}` is `{text}`, not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"`{metric}` is `{text}`, not a finite number")
    return value


def import_outcomes(
    engine: Engine, path: Path, *, metrics: Sequence[str], now: datetime
) -> OutcomeImportResult:
    """Import outcomes from a CSV file; see the module docstring for the format."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise OutcomeImportError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise OutcomeImportError(
            f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8 CSV"
        ) from None
    reader = csv.DictReader(text.splitlines())
    header = [h.strip() for h in reader.fieldnames or []]
    if not header:
        raise OutcomeImportError(f"{path}: empty; the first line must be a header")
    reader.fieldnames = header
    rep_column = next((c for c in REP_COLUMNS if c in header), None)
    missing = [c for c in PERIOD_COLUMNS if c not in header]
    if rep_column is None or missing:
        need = ([f"one of {', '.join(REP_COLUMNS)}"] if rep_column is None else []) + missing
        raise OutcomeImportError(f"{path}: the header lacks {'; '.join(need)}")
    long_format = "metric" in header and "value" in header
    metric_columns = [c for c in header if c not in (rep_column, *PERIOD_COLUMNS)]
    if not long_format:
        unknown = [c for c in metric_columns if c not in metrics]
        if unknown:
            raise OutcomeImportError(
                f"{path}: unknown metric columns {', '.join(unknown)}; known metrics: "
                f"{', '.join(metrics)} (set them in the coaching rules under outcomes.metrics)"
            )
        if not metric_columns:
            raise OutcomeImportError(f"{path}: no metric columns; add `metric` and `value`")

    result = OutcomeImportResult()
    parsed: list[tuple[int, str, date, date, str, float]] = []
    for row in reader:
        line = reader.line_num
        try:
            if None in row:
                raise ValueError("more fields than the header has")
            who = (row.get(rep_column) or "").strip()
            if not who:
                raise ValueError(f"`{rep_column}` is empty")
            start = _parse_date(row.get("period_start") or "", "period_start")
            end = _parse_date(row.get("period_end") or "", "period_end")
            if end < start:
                raise ValueError(f"period_end {end} is before period_start {start}")
            if long_format:
                metric = (row.get("metric") or "").strip()
                if metric not in metrics:
                    raise ValueError(f"unknown metric `{metric}`; known: {', '.join(metrics)}")
                parsed.append((line, who, start, end, metric, _parse_value(row["value"], metric)))
            else:
                for metric in metric_columns:
                    raw = (row.get(metric) or "").strip()
                    if raw:
                        parsed.append((line, who, start, end, metric, _parse_value(raw, metric)))
        except ValueError as exc:
            result.rejected.append(RejectedRow(line, str(exc)))

    with session_scope(engine) as session:
        names = sorted({who for _, who, *_ in parsed})
        people = session.exec(
            select(Person).where(
                (col(Person.external_id).in_(names)) | (col(Person.email).in_(names))
            )
        ).all()
        by_key: dict[str, int] = {}
        for person in people:
            assert person.id is not None
            by_key[person.external_id] = person.id
            if person.email:
                by_key.setdefault(person.email, person.id)
        rep_ids = sorted(set(by_key.values()))
        existing = {
            (o.rep_id, o.metric, o.period_start, o.period_end): o
            for o in session.exec(select(Outcome).where(col(Outcome.rep_id).in_(rep_ids))).all()
        }
        for line, who, start, end, metric, value in parsed:
            rep_id = by_key.get(who)
            if rep_id is None:
                result.rejected.append(
                    RejectedRow(line, f"no rep `{who}`; import the organisation first")
                )
                continue
            key = (rep_id, metric, start, end)
            outcome = existing.get(key)
            if outcome is None:
                outcome = Outcome(
                    rep_id=rep_id,
                    period_start=start,
                    period_end=end,
                    metric=metric,
                    value=value,
                    source=path.name,
                    imported_at=now,
                )
                existing[key] = outcome
                result.new += 1
            elif outcome.value == value:
                result.unchanged += 1
                continue
            else:
                outcome.value = value
                outcome.source = path.name
                outcome.imported_at = now
                result.updated += 1
            session.add(outcome)
    result.rejected.sort(key=lambda r: r.line)
    logger.info(
        "outcomes imported",
        extra={
            "file": path.name,
            "new": result.new,
            "updated": result.updated,
            "unchanged": result.unchanged,
            "rejected": len(result.rejected),
        },
    )
    return result
