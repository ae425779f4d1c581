"""One scored interaction, as the pipeline carries it from step to step."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select as sa_select
from sqlmodel import Session, col, select

from coaching._sql import table_of
from store.models import Evaluation, Interaction, Person, Score


@dataclass(frozen=True, slots=True)
class CriterionScore:
    score_id: int
    criterion_id: str
    level: int | None
    checks: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ScoredInteraction:
    interaction_id: int
    evaluation_id: int
    rubric_version: str
    rep_id: int
    team_id: int | None
    role: str | None
    kind: str
    """`call` or `practice`."""
    started_at: datetime
    scores: list[CriterionScore]
    weighted_total: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def is_call(self) -> bool:
        return self.kind == "call"

    def levels(self) -> dict[str, int | None]:
        return {s.criterion_id: s.level for s in self.scores}

    def to_state(self) -> dict[str, Any]:
        data = asdict(self)
        data["started_at"] = self.started_at.isoformat()
        return data

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> ScoredInteraction:
        values = dict(data)
        values["started_at"] = datetime.fromisoformat(values["started_at"])
        values["scores"] = [CriterionScore(**s) for s in values["scores"]]
        return cls(**values)


class NotScoredError(LookupError):
    """The interaction has no scored evaluation yet."""


def latest_evaluation_id(session: Session, interaction_id: int) -> int | None:
    stmt = (
        select(Evaluation.id)
        .where(Evaluation.interaction_id == interaction_id, Evaluation.status == "scored")
        .order_by(col(Evaluation.id).desc())
        .limit(1)
    )
    return session.exec(stmt).first()


def load_scored(
    session: Session, interaction_id: int, evaluation_id: int | None = None
) -> ScoredInteraction:
    """Read the interaction, its rep and the scores of one evaluation (the newest by default)."""
    if evaluation_id is None:
        evaluation_id = latest_evaluation_id(session, interaction_id)
    ti, te, tp = table_of(Interaction), table_of(Evaluation), table_of(Person)
    i, e, p = ti.c, te.c, tp.c
    head = (
        session.connection()
        .execute(
            sa_select(
                i.rep_id,
                i.team_id,
                i.kind,
                i.started_at,
                i.meta,
                p.role,
                p.team_id.label("rep_team_id"),
                e.id.label("evaluation_id"),
                e.rubric_version,
                e.status,
                e.weighted_total,
            )
            .select_from(ti)
            .join(te, and_(e.interaction_id == i.id, e.id == evaluation_id))
            .outerjoin(tp, p.id == i.rep_id)
            .where(i.id == interaction_id)
        )
        .first()
    )
    if head is None or head.status != "scored":
        raise NotScoredError(
            f"Interaction `{interaction_id}` has no scored evaluation; run the scorer first"
        )
    sc = table_of(Score).c
    scores = session.connection().execute(
        sa_select(sc.id, sc.criterion_id, sc.level, sc.checks)
        .where(sc.evaluation_id == head.evaluation_id)
        .order_by(sc.id)
    )
    kind = head.kind.value if hasattr(head.kind, "value") else str(head.kind)
    meta = head.meta or {}
    return ScoredInteraction(
        interaction_id=interaction_id,
        evaluation_id=int(head.evaluation_id),
        rubric_version=head.rubric_version,
        rep_id=int(head.rep_id),
        team_id=head.team_id if head.team_id is not None else head.rep_team_id,
        role=head.role,
        kind=kind,
        started_at=head.started_at,
        scores=[
            CriterionScore(
                score_id=int(row.id),
                criterion_id=row.criterion_id,
                level=row.level,
                checks=list(row.checks or []),
            )
            for row in scores
        ],
        weighted_total=head.weighted_total,
        meta={k: v for k, v in meta.items() if k in _META_KEYS},
    )


_META_KEYS = ("scenario", "scenario_slug", "assignment_id")
"""What the pipeline reads from an interaction's metadata: the practice it belongs to."""
