"""What a person sees first: a rep's criterion trends, open practice and recent feedback; a
manager's teams at a glance. Slack's App Home and the web app's start page read these."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from coaching.access import managed_teams
from coaching.reports import Period, RepCriterion, TeamGaps, rep_progress, team_gaps
from coaching.rubrics import criterion_names
from config.coaching import CoachingRules
from store.models import Access, Assignment, CohortDecision, Dispute, OutboxMessage, Person


@dataclass(frozen=True, slots=True)
class AssignmentItem:
    id: int
    scenario: str
    criterion_id: str
    criterion: str
    difficulty: str | None
    reason: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class FeedbackItem:
    message_id: int
    interaction_id: int | None
    kind: str
    """`call` or `practice`."""
    at: datetime | None
    headline: str
    levels: list[tuple[str, int | None]]
    """(criterion name, level) in rubric order."""


@dataclass(frozen=True, slots=True)
class TeamGlance:
    gaps: TeamGaps
    pending_decisions: int
    open_disputes: int


@dataclass(frozen=True)
class Home:
    person_id: int
    access: str
    period: Period
    criterion_names: dict[str, str]
    progress: list[RepCriterion] = field(default_factory=list)
    assignments: list[AssignmentItem] = field(default_factory=list)
    feedback: list[FeedbackItem] = field(default_factory=list)
    teams: list[TeamGlance] = field(default_factory=list)


def open_assignments(engine: Engine, rep_id: int) -> list[AssignmentItem]:
    """The rep's open practice assignments, oldest first."""
    names = criterion_names(engine)
    with Session(engine) as session:
        rows = session.exec(
            select(Assignment)
            .where(Assignment.rep_id == rep_id, Assignment.status == "open")
            .order_by(col(Assignment.created_at), col(Assignment.id))
        ).all()
    return [
        AssignmentItem(
            id=a.id or 0,
            scenario=a.scenario_slug,
            criterion_id=a.criterion_id,
            criterion=names.get(a.criterion_id, a.criterion_id),
            difficulty=a.difficulty,
            reason=a.reason,
            created_at=a.created_at,
        )
        for a in rows
    ]


def recent_feedback(engine: Engine, rep_id: int, *, limit: int = 5) -> list[FeedbackItem]:
    """The rep's latest feedback messages (delivered or waiting), newest first."""
    with Session(engine) as session:
        rows = session.exec(
            select(OutboxMessage)
            .where(
                OutboxMessage.recipient_id == rep_id,
                OutboxMessage.kind == "rep_feedback",
                OutboxMessage.status != "cancelled",
            )
            .order_by(col(OutboxMessage.id).desc())
            .limit(limit)
        ).all()
    items = []
    for m in rows:
        interaction = m.payload.get("interaction") or {}
        items.append(
            FeedbackItem(
                message_id=m.id or 0,
                interaction_id=m.interaction_id,
                kind=str(interaction.get("kind") or "call"),
                at=m.interaction_started_at,
                headline=str(m.payload.get("headline", "")),
                levels=[
                    (str(c.get("name")), c.get("level")) for c in m.payload.get("criteria", [])
                ],
            )
        )
    return items


def _team_counts(engine: Engine, team_id: int) -> tuple[int, int]:
    with Session(engine) as session:
        pending = session.exec(
            select(func.count())
            .select_from(CohortDecision)
            .where(CohortDecision.team_id == team_id, CohortDecision.status == "pending")
        ).one()
        disputes = session.exec(
            select(func.count())
            .select_from(Dispute)
            .join(Person, col(Person.id) == col(Dispute.rep_id))
            .where(Person.team_id == team_id, Dispute.status == "open")
        ).one()
    return int(pending), int(disputes)


def home_for(
    engine: Engine,
    person: Person,
    today: date,
    *,
    rules: CoachingRules | None = None,
    days: int = 30,
    max_teams: int = 10,
) -> Home:
    """The start page for `person`: their own trends and practice, and for managers and
    admins their teams (at most `max_teams`) over the last `days` days."""
    assert person.id is not None
    period = Period.last_days(days, today)
    home = Home(
        person_id=person.id,
        access=str(person.access),
        period=period,
        criterion_names=criterion_names(engine),
    )
    if person.access == Access.rep:
        home.progress.extend(rep_progress(engine, person.id, period, rules=rules))
        home.assignments.extend(open_assignments(engine, person.id))
        home.feedback.extend(recent_feedback(engine, person.id))
        return home
    for team in managed_teams(engine, person)[:max_teams]:
        assert team.id is not None
        pending, disputes = _team_counts(engine, team.id)
        gaps = team_gaps(engine, team.id, period, rules=rules, largest=3)
        home.teams.append(TeamGlance(gaps, pending, disputes))
    return home
