"""Criterion trends: per rep, criterion and day rollups, kept up to date one score at a time,
and the window sums the trigger rules and reports read from them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Date, String, bindparam, func, select as sa_select, text
from sqlalchemy.engine import Connection
from sqlmodel import Session
from sqlmodel.sql.sqltypes import UTCDateTime

from coaching._sql import table_of
from coaching.scored import ScoredInteraction
from store.models import CriterionDaily

RECENT_KEPT = 10
"""How many recent levels each rep and criterion keeps for the decline rule."""


@dataclass(frozen=True, slots=True)
class Counts:
    """Sessions per level on one criterion; N/A sessions are counted apart and never averaged."""

    n1: int = 0
    n2: int = 0
    n3: int = 0
    n_na: int = 0

    @property
    def n(self) -> int:
        return self.n1 + self.n2 + self.n3

    @property
    def total(self) -> int:
        return self.n1 + 2 * self.n2 + 3 * self.n3

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None

    def below(self, threshold: float) -> bool:
        """Mean strictly below `threshold` (compared exactly, without float rounding)."""
        return self.n > 0 and self.total < threshold * self.n - 1e-9

    def distribution(self) -> dict[int, int]:
        return {1: self.n1, 2: self.n2, 3: self.n3}

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.n1 + other.n1, self.n2 + other.n2, self.n3 + other.n3, self.n_na + other.n_na
        )


def day_of(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def window_days(end: datetime, days: int) -> tuple[date, date]:
    """The inclusive day range of a window of `days` days ending on the day of `end`."""
    last = day_of(end)
    return last - timedelta(days=days - 1), last


def level_columns(level: int | None) -> dict[str, int]:
    return {
        "n1": int(level == 1),
        "n2": int(level == 2),
        "n3": int(level == 3),
        "n_na": int(level is None),
    }


_CLAIM = text(
    "UPDATE coachingrun SET trends_applied = :yes "
    "WHERE interaction_id = :interaction_id AND trends_applied = :no"
)
_ADD_DAILY = text(
    "INSERT INTO criteriondaily (rep_id, criterion_id, kind, day, team_id, n1, n2, n3, n_na) "
    "VALUES (:rep_id, :criterion_id, :kind, :day, :team_id, :n1, :n2, :n3, :n_na) "
    "ON CONFLICT (rep_id, criterion_id, kind, day) DO UPDATE SET "
    "n1 = criteriondaily.n1 + excluded.n1, n2 = criteriondaily.n2 + excluded.n2, "
    "n3 = criteriondaily.n3 + excluded.n3, n_na = criteriondaily.n_na + excluded.n_na"
).bindparams(bindparam("day", type_=Date))
_READ_RECENT = text(
    "SELECT criterion_id, recent FROM criteriontrend WHERE rep_id = :rep_id"
).columns(criterion_id=String, recent=JSON)
_WRITE_RECENT = text(
    "INSERT INTO criteriontrend (rep_id, criterion_id, recent, sessions, updated_at) "
    "VALUES (:rep_id, :criterion_id, :recent, 1, :updated_at) "
    "ON CONFLICT (rep_id, criterion_id) DO UPDATE SET recent = excluded.recent, "
    "sessions = criteriontrend.sessions + 1, updated_at = excluded.updated_at"
).bindparams(bindparam("recent", type_=JSON), bindparam("updated_at", type_=UTCDateTime()))


def apply_scores(session: Session, scored: ScoredInteraction) -> bool:
    """Add one interaction's scores to the rollups and trends, exactly once.

    The run's `trends_applied` flag flips in the same transaction, so a retry after a crash
    finds it set and adds nothing. Returns False when the scores were already applied.

    This is the step that runs after every new score, so it is written as four plain
    statements rather than through the ORM.
    """
    conn = session.connection()
    claimed = conn.execute(
        _CLAIM, {"yes": True, "no": False, "interaction_id": scored.interaction_id}
    )
    if not claimed.rowcount:
        return False
    day = day_of(scored.started_at)
    rows = [
        {
            "rep_id": scored.rep_id,
            "criterion_id": s.criterion_id,
            "kind": scored.kind,
            "day": day,
            "team_id": scored.team_id,
            **level_columns(s.level),
        }
        for s in scored.scores
    ]
    if rows:
        conn.execute(_ADD_DAILY, rows)
    if scored.is_call:
        _append_recent(conn, scored)
    return True


def _append_recent(conn: Connection, scored: ScoredInteraction) -> None:
    # Read-modify-write of a few small rows; runs for one rep at a time in practice, and a
    # concurrent writer on SQLite makes this transaction fail and the step retry.
    levels = {s.criterion_id: s.level for s in scored.scores if s.level is not None}
    if not levels:
        return
    current = {
        row.criterion_id: list(row.recent or [])
        for row in conn.execute(_READ_RECENT, {"rep_id": scored.rep_id})
    }
    at = scored.started_at.astimezone(UTC).isoformat()
    now = datetime.now(UTC)
    writes = []
    for criterion_id, level in levels.items():
        recent = [
            e
            for e in current.get(criterion_id, [])
            if e.get("interaction_id") != scored.interaction_id
        ]
        recent.append({"interaction_id": scored.interaction_id, "level": level, "at": at})
        recent.sort(key=lambda e: (e["at"], e["interaction_id"]))
        writes.append(
            {
                "rep_id": scored.rep_id,
                "criterion_id": criterion_id,
                "recent": recent[-RECENT_KEPT:],
                "updated_at": now,
            }
        )
    conn.execute(_WRITE_RECENT, writes)


def recent_by_criterion(session: Session, rep_id: int) -> dict[str, list[dict[str, Any]]]:
    """A rep's recent real-call levels per criterion, oldest first."""
    return {
        row.criterion_id: list(row.recent or [])
        for row in session.connection().execute(_READ_RECENT, {"rep_id": rep_id})
    }


def _counts(row: Any) -> Counts:
    return Counts(int(row.n1 or 0), int(row.n2 or 0), int(row.n3 or 0), int(row.n_na or 0))


def rep_window(
    session: Session, rep_id: int, first: date, last: date, *, kind: str = "call"
) -> dict[str, Counts]:
    """Per criterion, a rep's sessions per level on the days `first` to `last` inclusive."""
    d = table_of(CriterionDaily).c
    stmt = (
        sa_select(
            d.criterion_id,
            func.sum(d.n1).label("n1"),
            func.sum(d.n2).label("n2"),
            func.sum(d.n3).label("n3"),
            func.sum(d.n_na).label("n_na"),
        )
        .where(d.rep_id == rep_id, d.kind == kind, d.day >= first, d.day <= last)
        .group_by(d.criterion_id)
    )
    return {row.criterion_id: _counts(row) for row in session.connection().execute(stmt)}


def team_window(
    session: Session,
    team_id: int,
    criterion_id: str,
    first: date,
    last: date,
    *,
    kind: str = "call",
) -> dict[int, Counts]:
    """Per rep of a team, sessions per level on one criterion within the days given."""
    d = table_of(CriterionDaily).c
    stmt = (
        sa_select(
            d.rep_id,
            func.sum(d.n1).label("n1"),
            func.sum(d.n2).label("n2"),
            func.sum(d.n3).label("n3"),
            func.sum(d.n_na).label("n_na"),
        )
        .where(
            d.team_id == team_id,
            d.kind == kind,
            d.day >= first,
            d.day <= last,
            d.criterion_id == criterion_id,
        )
        .group_by(d.rep_id)
    )
    return {int(row.rep_id): _counts(row) for row in session.connection().execute(stmt)}


def total(counts: Iterable[Counts]) -> Counts:
    result = Counts()
    for c in counts:
        result = result + c
    return result
