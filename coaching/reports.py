"""Gaps, tracking and reports: pure functions over the database.

Everything is reported per criterion: a total score never stands in for criterion scores.
The figures come from the daily rollups the pipeline keeps (`CriterionDaily`), so a team's
report reads a few thousand small rows however many interactions lie behind them.

The Slack `/team-gaps` command, the web dashboard and the command line all call these.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, case, func, select as sa_select, true
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, col, select

from coaching._sql import table_of
from coaching.errors import TeamNotFoundError
from coaching.rubrics import criterion_names
from coaching.trends import Counts
from config.coaching import CoachingRules, TriggerRules
from store.models import (
    Assignment,
    CoachingNote,
    CoachingTrigger,
    CriterionDaily,
    Evaluation,
    Interaction,
    InteractionKind,
    OutboxMessage,
    Outcome,
    Person,
    Team,
)

CHECKPOINT_DAYS = (30, 60)
FLAT_WARNING = (
    "Criterion scores have not moved at 30 days. Lagging outcomes are unlikely to move by "
    "60 days: check that coaching is happening (feedback coverage and time to feedback), "
    "that practice targets the weakest criteria, and that the rubric describes behaviours "
    "reps can change, before waiting for the 60-day figures."
)


# -- periods --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Period:
    """Days from `start` (inclusive) to `end` (exclusive)."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"A period must end after it starts ({self.start} to {self.end})")

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def previous(self) -> Period:
        return Period(self.start - timedelta(days=self.days), self.start)

    @property
    def start_at(self) -> datetime:
        return datetime.combine(self.start, time(0), tzinfo=UTC)

    @property
    def end_at(self) -> datetime:
        return datetime.combine(self.end, time(0), tzinfo=UTC)

    def contains(self, day: date) -> bool:
        return self.start <= day < self.end

    @property
    def label(self) -> str:
        return f"{self.start.isoformat()} to {(self.end - timedelta(days=1)).isoformat()}"

    @classmethod
    def last_days(cls, days: int, today: date) -> Period:
        """The `days` days up to and including `today`."""
        return cls(today - timedelta(days=days - 1), today + timedelta(days=1))


def parse_period(text: str, today: date) -> Period:
    """`30d` (the last 30 days), `2026-11` (a month) or `2026-11-01..2026-11-30` (inclusive)."""
    text = text.strip()
    try:
        if text.endswith("d") and text[:-1].isdigit():
            return Period.last_days(int(text[:-1]), today)
        if ".." in text:
            first, last = text.split("..", 1)
            return Period(date.fromisoformat(first), date.fromisoformat(last) + timedelta(days=1))
        if len(text) == 7 and text[4] == "-":
            start = date.fromisoformat(text + "-01")
            following = date(start.year + start.month // 12, start.month % 12 + 1, 1)
            return Period(start, following)
    except ValueError:
        pass
    raise ValueError(
        f"Period `{text}` is not understood; use 30d, 2026-11 or 2026-11-01..2026-11-30"
    )


# -- shared pieces --------------------------------------------------------------------------


def _team(session: Session, team: str | int) -> Team:
    if isinstance(team, int):
        found = session.get(Team, team)
    else:
        found = session.exec(select(Team).where(Team.slug == team)).first()
    if found is None:
        slugs = session.exec(select(Team.slug)).all()
        raise TeamNotFoundError(str(team), slugs)
    return found


def _sum_when(column: Any, condition: Any) -> Any:
    return func.sum(case((condition, column), else_=0))


def _rollup_two(
    conn: Connection, current: Period, previous: Period, *, team_id: int | None
) -> tuple[dict[tuple[int, str], Counts], dict[tuple[int, str], Counts]]:
    """Per (rep, criterion): the counts in `current` and in `previous`, in one scan."""
    d = table_of(CriterionDaily).c
    now = and_(d.day >= current.start, d.day < current.end)
    before = and_(d.day >= previous.start, d.day < previous.end)
    first = min(current.start, previous.start)
    last = max(current.end, previous.end)
    stmt = sa_select(
        d.rep_id,
        d.criterion_id,
        *[_sum_when(d[c], now).label(c) for c in ("n1", "n2", "n3", "n_na")],
        *[_sum_when(d[c], before).label("p_" + c) for c in ("n1", "n2", "n3", "n_na")],
    ).where(d.kind == "call", d.day >= first, d.day < last)
    if team_id is not None:
        stmt = stmt.where(d.team_id == team_id)
    stmt = stmt.group_by(d.rep_id, d.criterion_id)
    cur: dict[tuple[int, str], Counts] = {}
    prev: dict[tuple[int, str], Counts] = {}
    for row in conn.execute(stmt):
        key = (int(row.rep_id), str(row.criterion_id))
        c = Counts(int(row.n1), int(row.n2), int(row.n3), int(row.n_na))
        p = Counts(int(row.p_n1), int(row.p_n2), int(row.p_n3), int(row.p_n_na))
        if c.n or c.n_na:
            cur[key] = c
        if p.n or p.n_na:
            prev[key] = p
    return cur, prev


def _people(session: Session, ids: Iterable[int]) -> dict[int, Person]:
    ids = sorted(set(ids))
    if not ids:
        return {}
    rows = session.exec(select(Person).where(col(Person.id).in_(ids))).all()
    return {p.id: p for p in rows if p.id is not None}


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _criterion_order(names: dict[str, str], present: Iterable[str]) -> list[str]:
    present = set(present)
    ordered = [cid for cid in names if cid in present]
    return ordered + sorted(present - set(ordered))


def _pooled(counts: Iterable[Counts]) -> Counts:
    total = Counts()
    for c in counts:
        total = total + c
    return total


# -- team gaps ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CriterionStats:
    criterion_id: str
    name: str
    sessions: int
    not_applicable: int
    mean: float | None
    distribution: dict[int, int]
    share_sessions_below: float | None
    """Share of sessions below the session-flag threshold (level 1 on a 1-3 scale)."""
    reps: int
    reps_eligible: int
    """Reps with at least the minimum sessions, who count for the share below."""
    reps_below: int
    share_reps_below: float | None
    previous_mean: float | None
    trend: float | None
    """Mean minus the previous period's mean."""
    cohort: bool
    """The share below reaches the cohort rule: one team response, not rep-by-rep."""


@dataclass(frozen=True)
class RepCriterion:
    criterion_id: str
    sessions: int
    mean: float | None
    distribution: dict[int, int]
    previous_mean: float | None
    trend: float | None
    below: bool


@dataclass(frozen=True)
class RepGaps:
    rep_id: int
    external_id: str
    name: str
    pilot: bool
    criteria: list[RepCriterion]
    weakest: str | None


@dataclass(frozen=True)
class TeamGaps:
    team_id: int
    team_slug: str
    team_name: str
    period: Period
    previous: Period
    threshold: float
    criteria: list[CriterionStats]
    reps: list[RepGaps]
    largest_gaps: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["period"] = {
            "start": self.period.start.isoformat(),
            "end": self.period.end.isoformat(),
        }
        data["previous"] = {
            "start": self.previous.start.isoformat(),
            "end": self.previous.end.isoformat(),
        }
        return data


def _team_rules(rules: CoachingRules, people: dict[int, Person]) -> TriggerRules:
    roles = Counter(p.role for p in people.values() if p.role)
    return rules.for_role(roles.most_common(1)[0][0] if roles else None)


def _criterion_stats(
    criterion_id: str,
    name: str,
    per_rep: dict[int, Counts],
    previous: dict[int, Counts],
    people: dict[int, Person],
    rules: CoachingRules,
    team_rules: TriggerRules,
) -> CriterionStats:
    pooled = _pooled(per_rep.values())
    before = _pooled(previous.values())
    eligible = below = 0
    for rep_id, counts in per_rep.items():
        person = people.get(rep_id)
        r = rules.for_role(person.role if person else None)
        if counts.n >= r.min_sessions:
            eligible += 1
            below += int(counts.below(r.individual_below))
    share_reps = below / eligible if eligible else None
    low_sessions = pooled.n1 + (pooled.n2 if team_rules.session_flag_below > 2 else 0)
    mean, prev = pooled.mean, before.mean
    return CriterionStats(
        criterion_id=criterion_id,
        name=name,
        sessions=pooled.n,
        not_applicable=pooled.n_na,
        mean=_round(mean),
        distribution=pooled.distribution(),
        share_sessions_below=_round(low_sessions / pooled.n) if pooled.n else None,
        reps=sum(1 for c in per_rep.values() if c.n),
        reps_eligible=eligible,
        reps_below=below,
        share_reps_below=_round(share_reps),
        previous_mean=_round(prev),
        trend=_round(mean - prev) if mean is not None and prev is not None else None,
        cohort=(
            share_reps is not None
            and eligible >= team_rules.cohort_min_reps
            and share_reps >= team_rules.cohort_share - 1e-9
        ),
    )


def team_gaps(
    engine: Engine,
    team: str | int,
    period: Period,
    *,
    rules: CoachingRules | None = None,
    largest: int = 5,
) -> TeamGaps:
    """Per criterion for a team and period: mean, distribution, share below threshold,
    trend against the previous period and sessions; per rep the same; the largest gaps."""
    rules = rules or CoachingRules()
    previous = period.previous()
    with Session(engine) as session:
        found = _team(session, team)
        assert found.id is not None
        cur, prev = _rollup_two(session.connection(), period, previous, team_id=found.id)
        people = _people(session, [rep for rep, _ in cur])
    names = criterion_names(engine)
    team_rules = _team_rules(rules, people)
    by_criterion: dict[str, dict[int, Counts]] = defaultdict(dict)
    prev_by_criterion: dict[str, dict[int, Counts]] = defaultdict(dict)
    for (rep_id, cid), counts in cur.items():
        by_criterion[cid][rep_id] = counts
    for (rep_id, cid), counts in prev.items():
        prev_by_criterion[cid][rep_id] = counts
    order = _criterion_order(names, by_criterion)
    criteria = [
        _criterion_stats(
            cid,
            names.get(cid, cid),
            by_criterion[cid],
            prev_by_criterion.get(cid, {}),
            people,
            rules,
            team_rules,
        )
        for cid in order
    ]

    reps: list[RepGaps] = []
    gaps: list[dict[str, Any]] = []
    for rep_id in sorted(people, key=lambda r: people[r].name):
        person = people[rep_id]
        r = rules.for_role(person.role)
        rows = []
        for cid in order:
            found_counts = by_criterion[cid].get(rep_id)
            if found_counts is None:
                continue
            counts = found_counts
            before = prev_by_criterion.get(cid, {}).get(rep_id)
            mean = counts.mean
            prev_mean = before.mean if before else None
            is_below = counts.n >= r.min_sessions and counts.below(r.individual_below)
            rows.append(
                RepCriterion(
                    criterion_id=cid,
                    sessions=counts.n,
                    mean=_round(mean),
                    distribution=counts.distribution(),
                    previous_mean=_round(prev_mean),
                    trend=_round(mean - prev_mean)
                    if mean is not None and prev_mean is not None
                    else None,
                    below=is_below,
                )
            )
            if mean is not None and counts.n >= r.min_sessions:
                gaps.append(
                    {
                        "rep_id": rep_id,
                        "name": person.name,
                        "criterion_id": cid,
                        "criterion": names.get(cid, cid),
                        "mean": _round(mean),
                        "sessions": counts.n,
                        "below": is_below,
                    }
                )
        scored = [row for row in rows if row.mean is not None and row.sessions >= r.min_sessions]
        weakest = min(scored, key=lambda row: row.mean or 0).criterion_id if scored else None
        reps.append(
            RepGaps(
                rep_id=rep_id,
                external_id=person.external_id,
                name=person.name,
                pilot=person.pilot,
                criteria=rows,
                weakest=weakest,
            )
        )
    gaps.sort(key=lambda g: (g["mean"], -g["sessions"], g["name"]))
    return TeamGaps(
        team_id=found.id,
        team_slug=found.slug,
        team_name=found.name,
        period=period,
        previous=previous,
        threshold=team_rules.individual_below,
        criteria=criteria,
        reps=reps,
        largest_gaps=gaps[:largest],
    )


def rep_progress(
    engine: Engine, rep_id: int, period: Period, *, rules: CoachingRules | None = None
) -> list[RepCriterion]:
    """One rep's criteria for a period against the previous one (real calls only)."""
    rules = rules or CoachingRules()
    d = table_of(CriterionDaily).c
    previous = period.previous()
    with Session(engine) as session:
        person = session.get(Person, rep_id)
        r = rules.for_role(person.role if person else None)
        now = and_(d.day >= period.start, d.day < period.end)
        stmt = (
            sa_select(
                d.criterion_id,
                *[_sum_when(d[c], now).label(c) for c in ("n1", "n2", "n3", "n_na")],
                *[_sum_when(d[c], ~now).label("p_" + c) for c in ("n1", "n2", "n3", "n_na")],
            )
            .where(
                d.rep_id == rep_id,
                d.kind == "call",
                d.day >= previous.start,
                d.day < period.end,
            )
            .group_by(d.criterion_id)
        )
        result = []
        for row in session.connection().execute(stmt):
            c = Counts(int(row.n1), int(row.n2), int(row.n3), int(row.n_na))
            p = Counts(int(row.p_n1), int(row.p_n2), int(row.p_n3), int(row.p_n_na))
            result.append(
                RepCriterion(
                    criterion_id=str(row.criterion_id),
                    sessions=c.n,
                    mean=_round(c.mean),
                    distribution=c.distribution(),
                    previous_mean=_round(p.mean),
                    trend=_round(c.mean - p.mean)
                    if c.mean is not None and p.mean is not None
                    else None,
                    below=c.n >= r.min_sessions and c.below(r.individual_below),
                )
            )
    names = criterion_names(engine)
    order = _criterion_order(names, [row.criterion_id for row in result])
    return sorted(result, key=lambda row: order.index(row.criterion_id))


def team_trend(
    engine: Engine, team: str | int, period: Period, *, bucket_days: int = 7
) -> list[dict[str, Any]]:
    """Criterion means per bucket of days across the period, for trend charts."""
    d = table_of(CriterionDaily).c
    with Session(engine) as session:
        found = _team(session, team)
        stmt = (
            sa_select(
                d.day,
                d.criterion_id,
                func.sum(d.n1).label("n1"),
                func.sum(d.n2).label("n2"),
                func.sum(d.n3).label("n3"),
            )
            .where(
                d.team_id == found.id,
                d.kind == "call",
                d.day >= period.start,
                d.day < period.end,
            )
            .group_by(d.day, d.criterion_id)
        )
        buckets: dict[tuple[date, str], Counts] = defaultdict(Counts)
        for row in session.connection().execute(stmt):
            day = row.day if isinstance(row.day, date) else date.fromisoformat(str(row.day))
            start = period.start + timedelta(
                days=((day - period.start).days // bucket_days) * bucket_days
            )
            key = (start, str(row.criterion_id))
            buckets[key] = buckets[key] + Counts(int(row.n1), int(row.n2), int(row.n3))
    return [
        {"bucket_start": start.isoformat(), "criterion_id": cid, "mean": _round(c.mean), "n": c.n}
        for (start, cid), c in sorted(buckets.items())
    ]


# -- the coaching report --------------------------------------------------------------------


@dataclass(frozen=True)
class LeadingIndicator:
    criterion_id: str
    name: str
    baseline_mean: float | None
    mean: float | None
    delta: float | None
    sessions: int
    baseline_sessions: int
    distribution: dict[int, int]
    share_reps_below: float | None
    baseline_share_reps_below: float | None


@dataclass(frozen=True)
class ProcessIndicators:
    interactions: int
    scored: int
    scored_share: float | None
    feedback_queued: int
    feedback_coverage: float | None
    """Share of scored interactions whose rep was sent (or has queued) feedback."""
    feedback_delivered: int
    median_hours_to_feedback: float | None
    """Interaction to delivery, for delivered feedback."""
    p90_hours_to_feedback: float | None
    median_hours_to_queue: float | None
    sla_hours: float
    sla_breaches: int
    triggers: int
    triggers_acted_on: int
    notes: int
    note_quality_mean: float | None
    """0-3: names a behaviour, cites a moment, gives a next step."""
    notes_complete_share: float | None


@dataclass(frozen=True)
class LaggingIndicator:
    metric: str
    baseline_mean: float | None
    mean: float | None
    delta: float | None
    reps: int


@dataclass(frozen=True)
class Correlation:
    criterion_id: str
    metric: str
    r: float | None
    n: int
    enough: bool
    """Whether n reaches the configured minimum to read the figure."""


@dataclass(frozen=True)
class TransferGroup:
    reps: int
    sessions_after: int
    mean_before: float | None
    mean_after: float | None
    change: float | None


@dataclass(frozen=True)
class Transfer:
    criterion_id: str
    completed: TransferGroup
    not_completed: TransferGroup


@dataclass(frozen=True)
class CohortComparison:
    criterion_id: str
    pilot_reps: int
    pilot_mean: float | None
    pilot_delta: float | None
    rest_reps: int
    rest_mean: float | None
    rest_delta: float | None


@dataclass(frozen=True)
class Checkpoint:
    days: int
    window: Period
    baseline: Period
    leading: list[LeadingIndicator]
    process: ProcessIndicators
    lagging: list[LaggingIndicator]
    correlations: list[Correlation]
    transfer: list[Transfer]
    pilot: list[CohortComparison]
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CoachingReport:
    team_slug: str | None
    team_name: str
    period: Period
    checkpoints: list[Checkpoint]
    warnings: list[str]

    def as_dict(self) -> dict[str, Any]:
        def convert(value: Any) -> Any:
            if isinstance(value, Period):
                return {"start": value.start.isoformat(), "end": value.end.isoformat()}
            if isinstance(value, dict):
                return {str(k): convert(v) for k, v in value.items()}
            if isinstance(value, list | tuple):
                return [convert(v) for v in value]
            if isinstance(value, date):
                return value.isoformat()
            return value

        return {
            "team_slug": self.team_slug,
            "team_name": self.team_name,
            "period": convert(self.period),
            "checkpoints": [
                {
                    **{
                        k: convert(v)
                        for k, v in asdict(cp).items()
                        if k not in ("window", "baseline")
                    },
                    "window": convert(cp.window),
                    "baseline": convert(cp.baseline),
                }
                for cp in self.checkpoints
            ],
            "warnings": self.warnings,
        }


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Pearson's r, or None with fewer than three pairs or no spread."""
    if len(xs) != len(ys) or len(xs) < 3:
        return None
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx <= 0 or syy <= 0:
        return None
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    return sxy / math.sqrt(sxx * syy)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


@dataclass
class _Scope:
    team_id: int | None
    rep_ids: list[int]
    people: dict[int, Person]


def _scope(session: Session, team: Team | None, window: Period, baseline: Period) -> _Scope:
    d = table_of(CriterionDaily).c
    first = min(window.start, baseline.start)
    stmt = sa_select(d.rep_id).where(d.kind == "call", d.day >= first, d.day < window.end)
    members = select(Person.id).where(col(Person.access) == "rep")
    if team is not None:
        stmt = stmt.where(d.team_id == team.id)
        members = select(Person.id).where(Person.team_id == team.id)
    ids = {int(r[0]) for r in session.connection().execute(stmt.distinct())}
    ids |= {int(i) for i in session.exec(members).all() if i is not None}
    people = _people(session, ids)
    return _Scope(team.id if team else None, sorted(people), people)


def _leading(
    cur: dict[tuple[int, str], Counts],
    prev: dict[tuple[int, str], Counts],
    names: dict[str, str],
    scope: _Scope,
    rules: CoachingRules,
) -> list[LeadingIndicator]:
    def share_below(data: dict[int, Counts]) -> float | None:
        eligible = below = 0
        for rep_id, counts in data.items():
            person = scope.people.get(rep_id)
            r = rules.for_role(person.role if person else None)
            if counts.n >= r.min_sessions:
                eligible += 1
                below += int(counts.below(r.individual_below))
        return _round(below / eligible) if eligible else None

    by_c: dict[str, dict[int, Counts]] = defaultdict(dict)
    by_p: dict[str, dict[int, Counts]] = defaultdict(dict)
    for (rep, cid), c in cur.items():
        by_c[cid][rep] = c
    for (rep, cid), c in prev.items():
        by_p[cid][rep] = c
    result = []
    for cid in _criterion_order(names, set(by_c) | set(by_p)):
        now, before = _pooled(by_c[cid].values()), _pooled(by_p[cid].values())
        result.append(
            LeadingIndicator(
                criterion_id=cid,
                name=names.get(cid, cid),
                baseline_mean=_round(before.mean),
                mean=_round(now.mean),
                delta=_round(now.mean - before.mean)
                if now.mean is not None and before.mean is not None
                else None,
                sessions=now.n,
                baseline_sessions=before.n,
                distribution=now.distribution(),
                share_reps_below=share_below(by_c[cid]),
                baseline_share_reps_below=share_below(by_p[cid]),
            )
        )
    return result


def _process(
    session: Session, scope: _Scope, window: Period, rules: CoachingRules, now: datetime
) -> ProcessIndicators:
    i, e, o = Interaction, Evaluation, OutboxMessage
    in_window = and_(
        col(i.started_at) >= window.start_at,
        col(i.started_at) < window.end_at,
        col(i.kind) == InteractionKind.call,
    )
    whole_org = scope.team_id is None
    scope_clause = true() if whole_org else i.team_id == scope.team_id
    interactions = session.exec(
        select(func.count()).select_from(i).where(in_window, scope_clause)
    ).one()
    scored = session.exec(
        select(func.count(func.distinct(e.interaction_id)))
        .join(i, col(i.id) == col(e.interaction_id))
        .where(in_window, scope_clause, e.status == "scored")
    ).one()
    feedback = session.exec(
        select(o.status, o.created_at, o.sent_at, o.interaction_started_at)
        .join(i, col(i.id) == col(o.interaction_id))
        .where(in_window, scope_clause, o.kind == "rep_feedback", o.status != "cancelled")
    ).all()
    sla = rules.feedback.sla_hours
    delivered_hours: list[float] = []
    queued_hours: list[float] = []
    breaches = 0
    for status, created_at, sent_at, started_at in feedback:
        if started_at is None:
            continue
        queued_hours.append((created_at - started_at).total_seconds() / 3600)
        if status == "sent" and sent_at is not None:
            hours = (sent_at - started_at).total_seconds() / 3600
            delivered_hours.append(hours)
            breaches += int(hours > sla)
        else:
            breaches += int((now - started_at).total_seconds() / 3600 > sla)

    notes = session.exec(
        select(CoachingNote.quality).where(
            true() if whole_org else col(CoachingNote.rep_id).in_(scope.rep_ids),
            col(CoachingNote.created_at) >= window.start_at,
            col(CoachingNote.created_at) < window.end_at,
        )
    ).all()
    t = CoachingTrigger
    trigger_scope = true() if whole_org else t.team_id == scope.team_id
    triggers = session.exec(
        select(t.id, t.kind, t.status, t.cohort_decision_id).where(
            trigger_scope,
            col(t.kind).in_(["individual", "decline", "cohort"]),
            col(t.observed_at) >= window.start_at,
            col(t.observed_at) < window.end_at,
        )
    ).all()
    trigger_ids = [tid for tid, *_ in triggers if tid is not None]
    acted: set[int] = set()
    if trigger_ids:
        acted |= {
            int(x)
            for x in session.exec(
                select(Assignment.trigger_id).where(col(Assignment.trigger_id).in_(trigger_ids))
            ).all()
            if x is not None
        }
        acted |= {
            int(x)
            for x in session.exec(
                select(CoachingNote.trigger_id).where(col(CoachingNote.trigger_id).in_(trigger_ids))
            ).all()
            if x is not None
        }
    acted |= {
        tid
        for tid, kind, status, decision in triggers
        if tid is not None and (status == "merged" or (kind == "cohort" and decision is not None))
    }
    return ProcessIndicators(
        interactions=int(interactions),
        scored=int(scored),
        scored_share=_round(scored / interactions) if interactions else None,
        feedback_queued=len(feedback),
        feedback_coverage=_round(min(len(feedback), scored) / scored) if scored else None,
        feedback_delivered=len(delivered_hours),
        median_hours_to_feedback=_round(_percentile(delivered_hours, 0.5), 2),
        p90_hours_to_feedback=_round(_percentile(delivered_hours, 0.9), 2),
        median_hours_to_queue=_round(_percentile(queued_hours, 0.5), 2),
        sla_hours=sla,
        sla_breaches=breaches,
        triggers=len(triggers),
        triggers_acted_on=len(acted & set(trigger_ids)),
        notes=len(notes),
        note_quality_mean=_round(statistics.fmean(notes)) if notes else None,
        notes_complete_share=_round(sum(1 for q in notes if q >= 3) / len(notes))
        if notes
        else None,
    )


def _outcomes_by_rep(
    session: Session, rep_ids: list[int], window: Period, baseline: Period
) -> tuple[dict[str, dict[int, float]], dict[str, dict[int, float]]]:
    """Per metric and rep: the mean value of outcome periods whose midpoint falls in the
    window, and in the baseline."""
    rows = session.exec(
        select(Outcome).where(
            col(Outcome.rep_id).in_(rep_ids),
            col(Outcome.period_end) >= min(window.start, baseline.start),
            col(Outcome.period_start) < max(window.end, baseline.end),
        )
    ).all()
    now: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    before: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for o in rows:
        mid = o.period_start + (o.period_end - o.period_start) / 2
        if window.contains(mid):
            now[o.metric][o.rep_id].append(o.value)
        elif baseline.contains(mid):
            before[o.metric][o.rep_id].append(o.value)

    def means(data: dict[str, dict[int, list[float]]]) -> dict[str, dict[int, float]]:
        return {m: {r: statistics.fmean(v) for r, v in reps.items()} for m, reps in data.items()}

    return means(now), means(before)


def _lagging(
    now: dict[str, dict[int, float]], before: dict[str, dict[int, float]]
) -> list[LaggingIndicator]:
    result = []
    for metric in sorted(set(now) | set(before)):
        cur = list(now.get(metric, {}).values())
        base = list(before.get(metric, {}).values())
        mean = statistics.fmean(cur) if cur else None
        base_mean = statistics.fmean(base) if base else None
        result.append(
            LaggingIndicator(
                metric=metric,
                baseline_mean=_round(base_mean),
                mean=_round(mean),
                delta=_round(mean - base_mean)
                if mean is not None and base_mean is not None
                else None,
                reps=len(set(now.get(metric, {})) & set(before.get(metric, {}))),
            )
        )
    return result


def _correlations(
    cur: dict[tuple[int, str], Counts],
    prev: dict[tuple[int, str], Counts],
    outcomes_now: dict[str, dict[int, float]],
    outcomes_before: dict[str, dict[int, float]],
    min_n: int,
) -> list[Correlation]:
    movement: dict[str, dict[int, float]] = defaultdict(dict)
    for (rep, cid), c in cur.items():
        p = prev.get((rep, cid))
        if c.mean is not None and p is not None and p.mean is not None:
            movement[cid][rep] = c.mean - p.mean
    result = []
    for cid in sorted(movement):
        for metric in sorted(set(outcomes_now) & set(outcomes_before)):
            reps = sorted(
                set(movement[cid]) & set(outcomes_now[metric]) & set(outcomes_before[metric])
            )
            xs = [movement[cid][r] for r in reps]
            ys = [outcomes_now[metric][r] - outcomes_before[metric][r] for r in reps]
            r = pearson(xs, ys)
            result.append(Correlation(cid, metric, _round(r), len(reps), len(reps) >= min_n))
    return result


def _daily(
    conn: Connection, rep_ids: list[int], first: date, end: date
) -> dict[tuple[int, str], list[tuple[date, Counts]]]:
    d = table_of(CriterionDaily).c
    stmt = sa_select(d.rep_id, d.criterion_id, d.day, d.n1, d.n2, d.n3).where(
        d.kind == "call", d.rep_id.in_(rep_ids), d.day >= first, d.day < end
    )
    result: dict[tuple[int, str], list[tuple[date, Counts]]] = defaultdict(list)
    for row in conn.execute(stmt):
        day = row.day if isinstance(row.day, date) else date.fromisoformat(str(row.day))
        result[(int(row.rep_id), str(row.criterion_id))].append(
            (day, Counts(int(row.n1), int(row.n2), int(row.n3)))
        )
    return result


def _transfer(
    session: Session, scope: _Scope, window: Period, baseline: Period, lookback_days: int
) -> list[Transfer]:
    """Later real-call scores of reps who completed their assigned practice, against those
    who did not, per criterion."""
    assignments = session.exec(
        select(Assignment).where(
            col(Assignment.rep_id).in_(scope.rep_ids),
            col(Assignment.created_at) >= baseline.start_at,
            col(Assignment.created_at) < window.end_at,
        )
    ).all()
    if not assignments:
        return []
    daily = _daily(
        session.connection(),
        sorted({a.rep_id for a in assignments}),
        baseline.start - timedelta(days=lookback_days),
        window.end,
    )
    groups: dict[tuple[str, bool], dict[str, Any]] = {}
    for a in assignments:
        completed = (
            a.status == "completed"
            and a.completed_at is not None
            and a.completed_at < window.end_at
        )
        pivot_at = a.completed_at if completed and a.completed_at else a.created_at
        pivot = pivot_at.astimezone(UTC).date()
        days = daily.get((a.rep_id, a.criterion_id), [])
        after = _pooled(c for day, c in days if day > pivot)
        before = _pooled(
            c for day, c in days if pivot - timedelta(days=lookback_days) <= day < pivot
        )
        g = groups.setdefault(
            (a.criterion_id, completed), {"reps": set(), "after": Counts(), "before": Counts()}
        )
        g["reps"].add(a.rep_id)
        g["after"] = g["after"] + after
        g["before"] = g["before"] + before

    def group(cid: str, completed: bool) -> TransferGroup:
        g = groups.get((cid, completed))
        if g is None:
            return TransferGroup(0, 0, None, None, None)
        after, before = g["after"], g["before"]
        return TransferGroup(
            reps=len(g["reps"]),
            sessions_after=after.n,
            mean_before=_round(before.mean),
            mean_after=_round(after.mean),
            change=_round(after.mean - before.mean)
            if after.mean is not None and before.mean is not None
            else None,
        )

    criteria = sorted({cid for cid, _ in groups})
    return [Transfer(cid, group(cid, True), group(cid, False)) for cid in criteria]


def _pilot(
    cur: dict[tuple[int, str], Counts], prev: dict[tuple[int, str], Counts], scope: _Scope
) -> list[CohortComparison]:
    if not any(p.pilot for p in scope.people.values()):
        return []
    result = []
    for cid in sorted({c for _, c in cur} | {c for _, c in prev}):
        parts = {}
        for is_pilot in (True, False):
            reps = [r for r, p in scope.people.items() if p.pilot == is_pilot]
            now = _pooled(cur[(r, cid)] for r in reps if (r, cid) in cur)
            before = _pooled(prev[(r, cid)] for r in reps if (r, cid) in prev)
            parts[is_pilot] = (
                sum(1 for r in reps if (r, cid) in cur),
                _round(now.mean),
                _round(now.mean - before.mean)
                if now.mean is not None and before.mean is not None
                else None,
            )
        result.append(CohortComparison(cid, *parts[True], *parts[False]))
    return result


def _checkpoint(
    session: Session,
    team: Team | None,
    days: int,
    window: Period,
    baseline: Period,
    names: dict[str, str],
    rules: CoachingRules,
    now: datetime,
) -> Checkpoint:
    scope = _scope(session, team, window, baseline)
    cur, prev = _rollup_two(session.connection(), window, baseline, team_id=scope.team_id)
    if scope.team_id is None:
        cur = {k: v for k, v in cur.items() if k[0] in scope.people}
        prev = {k: v for k, v in prev.items() if k[0] in scope.people}
    leading = _leading(cur, prev, names, scope, rules)
    outcomes_now, outcomes_before = _outcomes_by_rep(session, scope.rep_ids, window, baseline)
    warnings = []
    deltas = [row.delta for row in leading if row.delta is not None]
    if days <= 30 and deltas and max(deltas) < rules.reports.flat_delta:
        warnings.append(FLAT_WARNING)
    correlations = _correlations(
        cur, prev, outcomes_now, outcomes_before, rules.reports.min_correlation_n
    )
    if correlations and not any(c.enough for c in correlations):
        warnings.append(
            f"Correlations rest on fewer than {rules.reports.min_correlation_n} reps; "
            "read them as anecdotes"
        )
    if days >= 60 and not outcomes_now:
        warnings.append(
            "No lagging outcomes for this window; import them with `coachloop outcomes import`"
        )
    process = _process(session, scope, window, rules, now)
    if process.sla_breaches:
        warnings.append(
            f"{process.sla_breaches} feedback messages missed the "
            f"{rules.feedback.sla_hours:g}-hour target"
        )
    return Checkpoint(
        days=days,
        window=window,
        baseline=baseline,
        leading=leading,
        process=process,
        lagging=_lagging(outcomes_now, outcomes_before),
        correlations=correlations,
        transfer=_transfer(session, scope, window, baseline, rules.triggers.window_days),
        pilot=_pilot(cur, prev, scope),
        warnings=warnings,
    )


def report(
    engine: Engine,
    team: str | int | None,
    period_start: date,
    period_end: date,
    *,
    rules: CoachingRules | None = None,
    now: datetime | None = None,
) -> CoachingReport:
    """The coaching report for a team (or the whole organisation when `team` is None) from
    `period_start` to `period_end` (exclusive).

    Checkpoints at 30 and 60 days from the start (those the period reaches) compare the
    window from the start to the checkpoint with the same number of days before the start;
    a period that matches neither is reported as a whole against the period before it.
    """
    rules = rules or CoachingRules()
    now = now or datetime.now(UTC)
    period = Period(period_start, period_end)
    names = criterion_names(engine)
    with Session(engine) as session:
        found = _team(session, team) if team is not None else None
        checkpoints = []
        for days in CHECKPOINT_DAYS:
            if period.days >= days:
                window = Period(period.start, period.start + timedelta(days=days))
                baseline = window.previous()
                checkpoints.append(
                    _checkpoint(session, found, days, window, baseline, names, rules, now)
                )
        if period.days not in CHECKPOINT_DAYS:
            checkpoints.append(
                _checkpoint(
                    session, found, period.days, period, period.previous(), names, rules, now
                )
            )
    warnings = [w for cp in checkpoints for w in cp.warnings]
    return CoachingReport(
        team_slug=found.slug if found else None,
        team_name=found.name if found else "whole organisation",
        period=period,
        checkpoints=checkpoints,
        warnings=list(dict.fromkeys(warnings)),
    )
