"""Read-only look-ups the pages and the API share. Figures that carry coaching rules
(gaps, trends, reports, breaches of the feedback target) come from `coaching`; this module
only fetches rows to show, always narrowed to what the viewer may see."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from coaching._sql import table_of
from coaching.reports import Period
from coaching.trends import Counts
from store.models import (
    Access,
    Assignment,
    CoachingTrigger,
    CohortDecision,
    CriterionDaily,
    Dispute,
    Evaluation,
    Interaction,
    OutboxMessage,
    Person,
    Score,
    Team,
)
from web.context import NotFound


def aware(moment: datetime | None) -> datetime | None:
    """SQLite returns stored UTC times without a zone; give them theirs back."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def team_by_slug(session: Session, slug: str) -> Team:
    team = session.exec(select(Team).where(Team.slug == slug)).first()
    if team is None or team.id is None:
        raise NotFound(f"No team `{slug}`; the teams you can open are listed on the Teams page")
    return team


def person_by_id(session: Session, person_id: int) -> Person:
    person = session.get(Person, person_id)
    if person is None:
        raise NotFound(f"No person `{person_id}`")
    return person


def team_reps(session: Session, team_id: int) -> list[Person]:
    return list(
        session.exec(
            select(Person)
            .where(Person.team_id == team_id, Person.access == Access.rep)
            .order_by(col(Person.name))
        )
    )


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def rep_weekly(
    engine: Engine, rep_id: int, period: Period, *, kind: str = "call", bucket_days: int = 7
) -> list[dict[str, Any]]:
    """One rep's criterion means per bucket of days, from the daily rollups (the same shape
    as `coaching.reports.team_trend`)."""
    d = table_of(CriterionDaily).c
    stmt = sa_select(d.day, d.criterion_id, d.n1, d.n2, d.n3).where(
        d.rep_id == rep_id, d.kind == kind, d.day >= period.start, d.day < period.end
    )
    buckets: dict[tuple[date, str], Counts] = defaultdict(Counts)
    with engine.connect() as conn:
        for row in conn.execute(stmt):
            day = _day(row.day)
            start = period.start + timedelta(
                days=((day - period.start).days // bucket_days) * bucket_days
            )
            key = (start, str(row.criterion_id))
            buckets[key] = buckets[key] + Counts(int(row.n1), int(row.n2), int(row.n3))
    return [
        {
            "bucket_start": start.isoformat(),
            "criterion_id": cid,
            "mean": round(c.mean, 3) if c.mean is not None else None,
            "n": c.n,
        }
        for (start, cid), c in sorted(buckets.items())
    ]


@dataclass
class SessionScore:
    score_id: int
    criterion_id: str
    level: int | None
    checks: list[dict[str, Any]]


@dataclass
class SessionRow:
    """One scored call or practice session of a rep, with its newest scores."""

    interaction_id: int
    external_id: str
    kind: str
    channel: str
    started_at: datetime
    scores: dict[str, SessionScore] = field(default_factory=dict)


def rep_sessions(
    engine: Engine, rep_id: int, start: datetime, end: datetime, *, limit: int = 200
) -> list[SessionRow]:
    """A rep's scored sessions (calls and practice) in a time range, newest first, each with
    the scores of its newest evaluation."""
    i, s = table_of(Interaction).c, table_of(Score).c
    with engine.connect() as conn:
        heads = conn.execute(
            sa_select(i.id, i.external_id, i.kind, i.channel, i.started_at)
            .where(i.rep_id == rep_id, i.started_at >= start, i.started_at < end)
            .order_by(i.started_at.desc())
            .limit(limit)
        ).all()
        rows = {
            int(h.id): SessionRow(
                interaction_id=int(h.id),
                external_id=str(h.external_id),
                kind=h.kind.value if hasattr(h.kind, "value") else str(h.kind),
                channel=str(h.channel),
                started_at=aware(h.started_at) or h.started_at,
            )
            for h in heads
        }
        if not rows:
            return []
        scores = conn.execute(
            sa_select(s.id, s.evaluation_id, s.interaction_id, s.criterion_id, s.level, s.checks)
            .where(s.interaction_id.in_(sorted(rows)))
            .order_by(s.evaluation_id)
        ).all()
    newest: dict[int, int] = {}
    for row in scores:
        newest[int(row.interaction_id)] = max(
            newest.get(int(row.interaction_id), 0), int(row.evaluation_id)
        )
    for row in scores:
        iid = int(row.interaction_id)
        if int(row.evaluation_id) != newest[iid]:
            continue
        rows[iid].scores[str(row.criterion_id)] = SessionScore(
            int(row.id), str(row.criterion_id), row.level, list(row.checks or [])
        )
    return [r for r in rows.values() if r.scores]


def evidence_turn(checks: list[dict[str, Any]], preferred: list[str] | None = None) -> int | None:
    """The turn a score's evidence points at, for a link to that moment."""
    observed = [c for c in checks if isinstance(c, dict) and c.get("turn") is not None]
    if preferred:
        for c in observed:
            if c.get("id") in preferred and c.get("observed"):
                return int(c["turn"])
    for c in observed:
        if c.get("observed"):
            return int(c["turn"])
    return int(observed[0]["turn"]) if observed else None


def open_triggers(
    session: Session, *, team_id: int | None, rep_ids: list[int], limit: int = 100
) -> list[CoachingTrigger]:
    """Open coaching triggers (individual, decline and cohort) for a team or some reps."""
    t = CoachingTrigger
    stmt = select(t).where(t.status == "open", col(t.kind).in_(["individual", "decline", "cohort"]))
    if team_id is not None:
        stmt = stmt.where(col(t.team_id) == team_id)
    else:
        stmt = stmt.where(col(t.rep_id).in_(rep_ids))
    return list(session.exec(stmt.order_by(col(t.observed_at).desc()).limit(limit)))


def session_flag_count(session: Session, team_id: int, since: datetime) -> int:
    t = CoachingTrigger
    return int(
        session.exec(
            select(func.count())
            .select_from(t)
            .where(
                t.team_id == team_id,
                t.kind == "session_flag",
                col(t.observed_at) >= since,
            )
        ).one()
    )


def cohort_decisions(session: Session, team_id: int, *, limit: int = 10) -> list[CohortDecision]:
    """The team's pending cohort decisions first, then the most recent decided ones."""
    d = CohortDecision
    pending = list(
        session.exec(
            select(d).where(d.team_id == team_id, d.status == "pending").order_by(col(d.id))
        )
    )
    decided = list(
        session.exec(
            select(d)
            .where(d.team_id == team_id, d.status != "pending")
            .order_by(col(d.id).desc())
            .limit(limit)
        )
    )
    return pending + decided


@dataclass(frozen=True)
class LateFeedback:
    message_id: int
    rep_id: int
    interaction_id: int | None
    interaction_started_at: datetime
    status: str
    hours: float


def late_feedback(
    session: Session,
    rep_ids: list[int],
    period: Period,
    *,
    now: datetime,
    sla_hours: float,
    limit: int = 20,
) -> list[LateFeedback]:
    """Feedback to these reps, for interactions in the period, that missed the target:
    delivered late, or still not delivered after it (as `coaching.outbox.feedback_breaches`
    counts them, narrowed to one team's reps)."""
    if not rep_ids:
        return []
    o = table_of(OutboxMessage).c
    rows = (
        session.connection()
        .execute(
            sa_select(
                o.id,
                o.recipient_id,
                o.interaction_id,
                o.interaction_started_at,
                o.status,
                o.sent_at,
            )
            .where(
                o.recipient_id.in_(rep_ids),
                o.kind == "rep_feedback",
                o.status != "cancelled",
                o.interaction_started_at >= period.start_at,
                o.interaction_started_at < min(period.end_at, now - timedelta(hours=sla_hours)),
            )
            .order_by(o.interaction_started_at.desc())
        )
        .all()
    )
    late = []
    for mid, rep_id, iid, started, status, sent_at in rows:
        started = aware(started)
        assert started is not None and mid is not None
        delivered = aware(sent_at) if status == "sent" else None
        hours = ((delivered or now) - started).total_seconds() / 3600
        if hours > sla_hours:
            late.append(
                LateFeedback(int(mid), int(rep_id), iid, started, str(status), round(hours, 1))
            )
    return late[:limit]


def rep_assignments(session: Session, rep_id: int, *, limit: int = 50) -> list[Assignment]:
    return list(
        session.exec(
            select(Assignment)
            .where(Assignment.rep_id == rep_id)
            .order_by(col(Assignment.created_at).desc())
            .limit(limit)
        )
    )


def practice_levels(
    session: Session, interaction_ids: list[int]
) -> dict[int, dict[str, int | None]]:
    """Levels of practice sessions (the results of assignments), newest evaluation each."""
    if not interaction_ids:
        return {}
    rows = session.exec(
        select(Score.interaction_id, Score.evaluation_id, Score.criterion_id, Score.level)
        .where(col(Score.interaction_id).in_(interaction_ids))
        .order_by(col(Score.evaluation_id))
    ).all()
    result: dict[int, dict[str, int | None]] = defaultdict(dict)
    newest: dict[int, int] = {}
    for iid, eid, _, _ in rows:
        newest[iid] = max(newest.get(iid, 0), eid)
    for iid, eid, cid, level in rows:
        if eid == newest[iid]:
            result[iid][cid] = level
    return dict(result)


def disputes_for(session: Session, interaction_id: int) -> list[Dispute]:
    return list(
        session.exec(
            select(Dispute)
            .where(Dispute.interaction_id == interaction_id)
            .order_by(col(Dispute.created_at))
        )
    )


def judge_of(session: Session, evaluation_id: int) -> Evaluation | None:
    return session.get(Evaluation, evaluation_id)


def names_of(session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = session.exec(select(Person.id, Person.name).where(col(Person.id).in_(sorted(ids))))
    return {int(i): name for i, name in rows if i is not None}
