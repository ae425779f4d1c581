"""Gap-driven practice assignment.

For a rep's weakest criterion in their role, pick the scenario that targets it at a suitable
difficulty (harder as the rep improves and completes practice), avoiding scenarios the rep
has already had, and record the assignment with its reason.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from coaching._sql import insert_ignore
from coaching.catalogue import DIFFICULTIES, Difficulty, ScenarioCatalogue, ScenarioSummary
from coaching.trends import Counts
from store.models import Assignment

logger = logging.getLogger(__name__)


def target_difficulty(mean: float | None, completed: int = 0) -> Difficulty:
    """Easy for a rep far below the bar, harder as the mean rises and practice is completed."""
    if mean is None or mean < 1.5:
        rank = 0
    elif mean < 2.2:
        rank = 1
    else:
        rank = 2
    return DIFFICULTIES[min(rank + completed, len(DIFFICULTIES) - 1)]


def choose_scenario(
    scenarios: Sequence[ScenarioSummary],
    *,
    role: str | None,
    criterion_id: str,
    difficulty: Difficulty,
    had: Sequence[str] = (),
) -> ScenarioSummary | None:
    """The best scenario for a criterion: one the rep has not had, closest in difficulty
    (the easier one on a tie), most focused on the criterion; `had` lists what the rep was
    given before, oldest first, and a repeat goes to the one had longest ago."""
    target = DIFFICULTIES.index(difficulty)
    candidates = [
        s for s in scenarios if criterion_id in s.criteria and (role is None or s.role == role)
    ]
    if not candidates:
        return None
    last_had = {slug: i for i, slug in enumerate(had)}

    def key(s: ScenarioSummary) -> tuple[int, int, int, int, int, str]:
        repeat = s.slug in last_had
        return (
            int(repeat),
            last_had.get(s.slug, -1),
            abs(s.rank - target),
            int(s.rank > target),
            len(s.criteria),
            s.slug,
        )

    return min(candidates, key=key)


def weakest_criterion(
    window: dict[str, Counts], criteria: Sequence[str], *, min_sessions: int = 1
) -> tuple[str, Counts] | None:
    """The criterion with the lowest mean among those with enough sessions (first listed
    wins a tie, so pass the triggered criteria first)."""
    scored = [(cid, window[cid]) for cid in criteria if cid in window]
    scored = [(cid, c) for cid, c in scored if c.n >= min_sessions]
    if not scored:
        return None
    return min(scored, key=lambda item: item[1].total / item[1].n)


@dataclass(frozen=True, slots=True)
class AssignmentResult:
    assignment_id: int | None
    reason: str
    created: bool


def _history(session: Session, rep_id: int, criterion_id: str) -> tuple[list[str], int, bool]:
    rows = session.exec(
        select(Assignment.scenario_slug, Assignment.status)
        .where(Assignment.rep_id == rep_id, Assignment.criterion_id == criterion_id)
        .order_by(col(Assignment.created_at), col(Assignment.id))
    ).all()
    had = [slug for slug, _ in rows]
    completed = sum(1 for _, status in rows if status == "completed")
    open_now = any(status == "open" for _, status in rows)
    return had, completed, open_now


def open_assignment(session: Session, rep_id: int, criterion_id: str) -> Assignment | None:
    return session.exec(
        select(Assignment).where(
            Assignment.rep_id == rep_id,
            Assignment.criterion_id == criterion_id,
            Assignment.status == "open",
        )
    ).first()


def assign_practice(
    session: Session,
    catalogue: ScenarioCatalogue,
    *,
    rep_id: int,
    role: str | None,
    criterion_id: str,
    counts: Counts | None,
    dedupe_key: str,
    why: str,
    now: datetime,
    trigger_id: int | None = None,
    cohort_decision_id: int | None = None,
    scenario: ScenarioSummary | None = None,
) -> AssignmentResult:
    """Assign a scenario for `criterion_id` unless the rep already has open practice on it.

    Idempotent by `dedupe_key`: a second call returns the assignment the first one made.
    """
    existing = session.exec(select(Assignment).where(Assignment.dedupe_key == dedupe_key)).first()
    if existing is not None:
        return AssignmentResult(existing.id, existing.reason, created=False)
    current = open_assignment(session, rep_id, criterion_id)
    if current is not None:
        return AssignmentResult(
            current.id, f"already practising `{current.scenario_slug}` for it", created=False
        )
    had, completed, _ = _history(session, rep_id, criterion_id)
    mean = counts.mean if counts is not None else None
    difficulty = target_difficulty(mean, completed)
    if scenario is None:
        scenario = choose_scenario(
            catalogue.scenarios(),
            role=role,
            criterion_id=criterion_id,
            difficulty=difficulty,
            had=had,
        )
    if scenario is None:
        reason = f"no scenario for role `{role}` targets `{criterion_id}`; add one to the library"
        logger.warning(
            "no scenario for gap", extra={"rep_id": rep_id, "criterion": criterion_id, "role": role}
        )
        return AssignmentResult(None, reason, created=False)
    parts = [why]
    if counts is not None and counts.n:
        parts.append(f"mean {counts.mean or 0:.2f} over {counts.n} calls")
    parts.append(f"{scenario.difficulty} difficulty (target {difficulty})")
    parts.append(
        "a repeat: every matching scenario was had before"
        if scenario.slug in had
        else "new to the rep"
    )
    reason = "; ".join(parts)
    row: dict[str, Any] = {
        "rep_id": rep_id,
        "scenario_slug": scenario.slug,
        "criterion_id": criterion_id,
        "difficulty": scenario.difficulty,
        "reason": reason,
        "status": "open",
        "trigger_id": trigger_id,
        "cohort_decision_id": cohort_decision_id,
        "dedupe_key": dedupe_key,
        "practice_interaction_id": None,
        "created_at": now,
        "completed_at": None,
    }
    created = insert_ignore(session, Assignment, [row], keys=["dedupe_key"]) > 0
    assignment_id = session.exec(
        select(Assignment.id).where(Assignment.dedupe_key == dedupe_key)
    ).one()
    if created:
        logger.debug(
            "practice assigned",
            extra={
                "assignment_id": assignment_id,
                "rep_id": rep_id,
                "criterion": criterion_id,
                "scenario": scenario.slug,
            },
        )
    return AssignmentResult(assignment_id, reason, created=created)


def complete_assignment(
    session: Session, assignment_id: int, practice_interaction_id: int | None, now: datetime
) -> bool:
    """Mark an open assignment completed by a practice session; False if it was not open."""
    result = session.connection().execute(
        update(Assignment)
        .where(col(Assignment.id) == assignment_id, col(Assignment.status) == "open")
        .values(
            status="completed", completed_at=now, practice_interaction_id=practice_interaction_id
        )
    )
    return bool(result.rowcount)


def complete_from_practice(
    session: Session,
    *,
    rep_id: int,
    practice_interaction_id: int,
    meta: dict[str, Any],
    now: datetime,
) -> int | None:
    """Close the open assignment a practice session belongs to (by id or scenario slug)."""
    assignment_id = meta.get("assignment_id")
    if assignment_id is None:
        slug = meta.get("scenario") or meta.get("scenario_slug")
        if not slug:
            return None
        assignment_id = session.exec(
            select(func.min(Assignment.id)).where(
                Assignment.rep_id == rep_id,
                Assignment.scenario_slug == slug,
                Assignment.status == "open",
            )
        ).first()
        if assignment_id is None:
            return None
    assignment = session.get(Assignment, int(assignment_id))
    if assignment is None or assignment.rep_id != rep_id:
        return None
    complete_assignment(session, int(assignment_id), practice_interaction_id, now)
    return int(assignment_id)
