"""The trigger rules: individual coaching, decline, cohort and session flag.

Each rule that fires is recorded once, as a `CoachingTrigger` with why it fired: the sessions,
the scores and the transcript moments behind it. Re-evaluating the same interaction finds the
trigger by its dedupe key instead of recording a second one, and a rule that fired for a rep
(or a team) and criterion stays quiet for its cool-down.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlmodel import Session, col, select

from coaching._sql import insert_ignore
from coaching.rubrics import moment_for
from coaching.scored import ScoredInteraction
from coaching.trends import Counts, recent_by_criterion, rep_window, team_window, window_days
from config.coaching import TriggerRules
from config.rubric import Criterion, Rubric
from store.models import (
    CoachingRun,
    CoachingTrigger,
    CohortDecision,
    Interaction,
    InteractionKind,
    Score,
)

logger = logging.getLogger(__name__)

MAX_SESSIONS_IN_WHY = 10
MAX_MOMENTS_IN_WHY = 3


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def _criterion(rubric: Rubric | None, criterion_id: str) -> Criterion | None:
    if rubric is None:
        return None
    for criterion in rubric.criteria:
        if criterion.id == criterion_id:
            return criterion
    return None


def _existing(session: Session, dedupe_key: str) -> int | None:
    stmt = select(CoachingTrigger.id).where(CoachingTrigger.dedupe_key == dedupe_key)
    return session.exec(stmt).first()


def _cooling_down(
    session: Session,
    *,
    kind: str,
    criterion_id: str,
    at: datetime,
    days: int,
    rep_id: int | None = None,
    team_id: int | None = None,
) -> bool:
    if days <= 0:
        return False
    t = CoachingTrigger
    stmt = select(t.id).where(
        t.kind == kind,
        t.criterion_id == criterion_id,
        col(t.observed_at) > at - timedelta(days=days),
        col(t.observed_at) <= at,
    )
    if rep_id is not None:
        stmt = stmt.where(t.rep_id == rep_id)
    if team_id is not None:
        stmt = stmt.where(t.team_id == team_id)
    return session.exec(stmt.limit(1)).first() is not None


def _record(session: Session, *, dedupe_key: str, now: datetime, **fields: Any) -> int:
    row = {"dedupe_key": dedupe_key, "status": "open", "created_at": now, **fields}
    for key in ("rep_id", "team_id", "criterion_id", "interaction_id", "value", "threshold"):
        row.setdefault(key, None)
    row.setdefault("window_start", None)
    row.setdefault("window_end", None)
    row.setdefault("cohort_decision_id", None)
    insert_ignore(session, CoachingTrigger, [row], keys=["dedupe_key"])
    trigger_id = _existing(session, dedupe_key)
    assert trigger_id is not None
    logger.debug(
        "trigger recorded",
        extra={
            "trigger_id": trigger_id,
            "kind": fields["kind"],
            "criterion": fields.get("criterion_id"),
            "rep_id": fields.get("rep_id"),
            "team_id": fields.get("team_id"),
        },
    )
    return trigger_id


def recent_sessions(
    session: Session,
    rep_id: int,
    criterion_id: str,
    start: datetime,
    end: datetime,
    *,
    limit: int = MAX_SESSIONS_IN_WHY,
    level: int | None = None,
) -> list[tuple[int, datetime, int, list[dict[str, Any]]]]:
    """A rep's coached real-call scores on a criterion in [start, end), newest first."""
    stmt = (
        select(Score.interaction_id, Score.scored_at, Score.level, Score.checks)
        .join(CoachingRun, col(CoachingRun.evaluation_id) == col(Score.evaluation_id))
        .join(Interaction, col(Interaction.id) == col(Score.interaction_id))
        .where(
            Score.rep_id == rep_id,
            Score.criterion_id == criterion_id,
            col(Score.scored_at) >= start,
            col(Score.scored_at) < end,
            col(Score.level).is_not(None),
            Interaction.kind == InteractionKind.call,
        )
        .order_by(col(Score.scored_at).desc())
        .limit(limit)
    )
    if level is not None:
        stmt = stmt.where(Score.level == level)
    return [(int(i), at, int(lvl or 0), list(checks)) for i, at, lvl, checks in session.exec(stmt)]


def _moments(
    sessions: list[tuple[int, datetime, int, list[dict[str, Any]]]],
    criterion: Criterion | None,
    *,
    limit: int = MAX_MOMENTS_IN_WHY,
) -> list[dict[str, Any]]:
    moments = []
    for interaction_id, at, level, checks in sorted(
        sessions, key=lambda s: (s[2], -s[1].timestamp())
    ):
        moment = moment_for(criterion, level, checks)
        if moment is None:
            continue
        moments.append(
            {"interaction_id": interaction_id, "at": at.isoformat(), "level": level, **moment}
        )
        if len(moments) >= limit:
            break
    return moments


def _window_why(counts: Counts, rules: TriggerRules) -> dict[str, Any]:
    return {
        "mean": round(counts.mean or 0.0, 3),
        "n": counts.n,
        "distribution": {str(k): v for k, v in counts.distribution().items()},
        "threshold": rules.individual_below,
        "window_days": rules.window_days,
    }


def evaluate_triggers(
    session: Session,
    scored: ScoredInteraction,
    rules: TriggerRules,
    rubric: Rubric | None,
    now: datetime,
) -> list[int]:
    """Apply every trigger rule to one scored real call; returns the ids of the triggers
    that fired (or had fired for this interaction before)."""
    if not scored.is_call:
        return []
    at = scored.started_at
    first, last = window_days(at, rules.window_days)
    start, end = _start_of(first), _start_of(last + timedelta(days=1))
    window = rep_window(session, scored.rep_id, first, last)
    recent: dict[str, list[dict[str, Any]]] | None = None
    fired: list[int] = []

    flag = _session_flag(session, scored, rules, rubric, now)
    if flag is not None:
        fired.append(flag)

    for score in scored.scores:
        if score.level is None:
            continue
        counts = window.get(score.criterion_id, Counts())
        if counts.n < rules.min_sessions:
            continue
        criterion = _criterion(rubric, score.criterion_id)
        if counts.below(rules.individual_below):
            individual = _individual(
                session, scored, score.criterion_id, counts, rules, criterion, start, end, now
            )
            if individual is not None:
                fired.append(individual)
            if scored.team_id is not None:
                cohort = _cohort(session, scored, score.criterion_id, rules, criterion, now)
                if cohort is not None:
                    fired.append(cohort)
        if recent is None:
            recent = recent_by_criterion(session, scored.rep_id)
        decline = _decline(
            session,
            scored,
            score.criterion_id,
            recent.get(score.criterion_id, []),
            rules,
            criterion,
            start,
            end,
            now,
        )
        if decline is not None:
            fired.append(decline)
    return fired


def _session_flag(
    session: Session,
    scored: ScoredInteraction,
    rules: TriggerRules,
    rubric: Rubric | None,
    now: datetime,
) -> int | None:
    low = [
        s
        for s in scored.scores
        if s.level is not None and s.level < rules.session_flag_below - 1e-9
    ]
    if not low:
        return None
    key = f"session_flag:{scored.interaction_id}"
    existing = _existing(session, key)
    if existing is not None:
        return existing
    criteria = [
        {
            "criterion_id": s.criterion_id,
            "level": s.level,
            "moment": moment_for(_criterion(rubric, s.criterion_id), s.level, s.checks),
        }
        for s in low
    ]
    return _record(
        session,
        dedupe_key=key,
        now=now,
        kind="session_flag",
        rep_id=scored.rep_id,
        team_id=scored.team_id,
        criterion_id=low[0].criterion_id,
        interaction_id=scored.interaction_id,
        observed_at=scored.started_at,
        value=float(min(s.level or 0 for s in low)),
        threshold=rules.session_flag_below,
        why={
            "rule": "session_flag",
            "summary": f"{len(low)} criteria below {rules.session_flag_below:g} on this interaction",
            "criteria": criteria,
            "threshold": rules.session_flag_below,
        },
    )


def _individual(
    session: Session,
    scored: ScoredInteraction,
    criterion_id: str,
    counts: Counts,
    rules: TriggerRules,
    criterion: Criterion | None,
    start: datetime,
    end: datetime,
    now: datetime,
) -> int | None:
    key = f"individual:{scored.rep_id}:{criterion_id}:{scored.interaction_id}"
    existing = _existing(session, key)
    if existing is not None:
        return existing
    if _cooling_down(
        session,
        kind="individual",
        criterion_id=criterion_id,
        at=scored.started_at,
        days=rules.individual_cooldown_days,
        rep_id=scored.rep_id,
    ):
        return None
    sessions = recent_sessions(session, scored.rep_id, criterion_id, start, end)
    mean = counts.mean or 0.0
    why = {
        "rule": "individual",
        "summary": (
            f"mean {mean:.2f} over {counts.n} sessions in {rules.window_days} days "
            f"(below {rules.individual_below:g})"
        ),
        **_window_why(counts, rules),
        "sessions": [
            {"interaction_id": i, "at": a.isoformat(), "level": lvl} for i, a, lvl, _ in sessions
        ],
        "moments": _moments(sessions, criterion),
    }
    return _record(
        session,
        dedupe_key=key,
        now=now,
        kind="individual",
        rep_id=scored.rep_id,
        team_id=scored.team_id,
        criterion_id=criterion_id,
        interaction_id=scored.interaction_id,
        observed_at=scored.started_at,
        window_start=start,
        window_end=end,
        value=mean,
        threshold=rules.individual_below,
        why=why,
    )


def is_decline(levels: list[int], *, strict: bool) -> bool:
    """Whether the levels (oldest first) fall across the sessions."""
    if len(levels) < 2:
        return False
    pairs = list(zip(levels, levels[1:], strict=False))
    if strict:
        return all(a > b for a, b in pairs)
    return all(a >= b for a, b in pairs) and levels[0] > levels[-1]


def _decline(
    session: Session,
    scored: ScoredInteraction,
    criterion_id: str,
    recent: list[dict[str, Any]],
    rules: TriggerRules,
    criterion: Criterion | None,
    start: datetime,
    end: datetime,
    now: datetime,
) -> int | None:
    tail = recent[-rules.decline_sessions :]
    if len(tail) < rules.decline_sessions or tail[-1]["interaction_id"] != scored.interaction_id:
        return None
    if not is_decline([int(e["level"]) for e in tail], strict=rules.decline_strict):
        return None
    key = f"decline:{scored.rep_id}:{criterion_id}:{scored.interaction_id}"
    existing = _existing(session, key)
    if existing is not None:
        return existing
    if _cooling_down(
        session,
        kind="decline",
        criterion_id=criterion_id,
        at=scored.started_at,
        days=rules.decline_cooldown_days,
        rep_id=scored.rep_id,
    ):
        return None
    ids = {int(e["interaction_id"]) for e in tail}
    sessions = [
        s
        for s in recent_sessions(session, scored.rep_id, criterion_id, start, end, limit=50)
        if s[0] in ids
    ]
    levels = " -> ".join(str(e["level"]) for e in tail)
    return _record(
        session,
        dedupe_key=key,
        now=now,
        kind="decline",
        rep_id=scored.rep_id,
        team_id=scored.team_id,
        criterion_id=criterion_id,
        interaction_id=scored.interaction_id,
        observed_at=scored.started_at,
        value=float(tail[-1]["level"]),
        threshold=None,
        why={
            "rule": "decline",
            "summary": f"fell across {len(tail)} consecutive sessions ({levels})",
            "sessions": [
                {"interaction_id": e["interaction_id"], "at": e["at"], "level": e["level"]}
                for e in tail
            ],
            "moments": _moments(sessions, criterion),
        },
    )


def _cohort(
    session: Session,
    scored: ScoredInteraction,
    criterion_id: str,
    rules: TriggerRules,
    criterion: Criterion | None,
    now: datetime,
) -> int | None:
    assert scored.team_id is not None
    key = f"cohort:{scored.team_id}:{criterion_id}:{scored.interaction_id}"
    existing = _existing(session, key)
    if existing is not None:
        return existing
    if _cooling_down(
        session,
        kind="cohort",
        criterion_id=criterion_id,
        at=scored.started_at,
        days=rules.cohort_cooldown_days,
        team_id=scored.team_id,
    ):
        return None
    pending = session.exec(
        select(CohortDecision.id).where(
            CohortDecision.team_id == scored.team_id,
            CohortDecision.criterion_id == criterion_id,
            CohortDecision.status == "pending",
        )
    ).first()
    if pending is not None:
        return None  # the team's manager has not answered the last one yet
    first, last = window_days(scored.started_at, rules.window_days)
    reps = team_window(session, scored.team_id, criterion_id, first, last)
    eligible = {rep: c for rep, c in reps.items() if c.n >= rules.min_sessions}
    below = {rep: c for rep, c in eligible.items() if c.below(rules.individual_below)}
    if len(eligible) < rules.cohort_min_reps:
        return None
    share = len(below) / len(eligible)
    if share < rules.cohort_share - 1e-9:
        return None
    start, end = _start_of(first), _start_of(last + timedelta(days=1))
    moments: list[dict[str, Any]] = []
    for rep_id in sorted(below, key=lambda r: below[r].total / below[r].n)[:MAX_MOMENTS_IN_WHY]:
        worst = recent_sessions(session, rep_id, criterion_id, start, end, limit=1, level=1)
        moments.extend({"rep_id": rep_id, **m} for m in _moments(worst, criterion, limit=1))
    team_counts = sum(eligible.values(), Counts())
    return _record(
        session,
        dedupe_key=key,
        now=now,
        kind="cohort",
        rep_id=None,
        team_id=scored.team_id,
        criterion_id=criterion_id,
        interaction_id=scored.interaction_id,
        observed_at=scored.started_at,
        window_start=start,
        window_end=end,
        value=share,
        threshold=rules.cohort_share,
        why={
            "rule": "cohort",
            "summary": (
                f"{len(below)} of {len(eligible)} reps ({share:.0%}) average below "
                f"{rules.individual_below:g} in {rules.window_days} days"
            ),
            "share": round(share, 3),
            "below": len(below),
            "eligible": len(eligible),
            "threshold": rules.individual_below,
            "window_days": rules.window_days,
            "team_mean": round(team_counts.mean or 0.0, 3),
            "reps": [
                {"rep_id": rep, "mean": round(c.mean or 0.0, 3), "n": c.n, "below": rep in below}
                for rep, c in sorted(eligible.items())
            ],
            "moments": moments,
        },
    )
