"""A rep's dispute of a score: recorded, and sent to the manager to resolve."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from coaching.errors import CoachingError
from coaching.feedback import person_ref
from coaching.outbox import enqueue
from coaching.rubrics import criterion_names
from coaching.scored import latest_evaluation_id
from coaching.steps import managers_for_rep
from store.db import session_scope
from store.models import Dispute, Person, Score


def open_dispute(
    engine: Engine, score_id: int, reason: str, now: datetime, *, rep_id: int | None = None
) -> Dispute:
    """Record the rep's reason and queue it to their manager; one open dispute per score.

    With `rep_id`, only that rep's own score can be disputed.
    """
    if not reason.strip():
        raise CoachingError("A dispute needs a reason; say what the score missed")
    with session_scope(engine) as session:
        score = session.get(Score, score_id)
        if score is None or (rep_id is not None and score.rep_id != rep_id):
            raise CoachingError(f"No score `{score_id}` to dispute")
        dispute = Dispute(
            score_id=score_id,
            interaction_id=score.interaction_id,
            rep_id=score.rep_id,
            criterion_id=score.criterion_id,
            reason=reason.strip(),
            created_at=now,
        )
        session.add(dispute)
        session.flush()
        rep = session.get(Person, score.rep_id)
        payload = {
            "type": "dispute",
            "dispute_id": dispute.id,
            "rep": person_ref(rep),
            "interaction_id": score.interaction_id,
            "criterion_id": score.criterion_id,
            "level": score.level,
            "checks": score.checks,
            "reason": dispute.reason,
            "actions": ["uphold", "change"],
        }
        for manager_id in managers_for_rep(session, rep):
            enqueue(
                session,
                kind="dispute",
                recipient_id=manager_id,
                payload=payload,
                dedupe_key=f"dispute:{dispute.id}:{manager_id}",
                now=now,
            )
        return dispute


@dataclass(frozen=True, slots=True)
class DisputableScore:
    score_id: int
    criterion_id: str
    name: str
    level: int | None
    open_dispute: bool
    """A dispute on this score is already waiting for the manager."""


def disputable_scores(engine: Engine, interaction_id: int, rep_id: int) -> list[DisputableScore]:
    """The rep's scores on one interaction (the newest scored evaluation), for a dispute form."""
    names = criterion_names(engine)
    with Session(engine) as session:
        evaluation_id = latest_evaluation_id(session, interaction_id)
        if evaluation_id is None:
            return []
        scores = session.exec(
            select(Score)
            .where(Score.evaluation_id == evaluation_id, Score.rep_id == rep_id)
            .order_by(col(Score.id))
        ).all()
        disputed = set(
            session.exec(
                select(Dispute.score_id).where(
                    col(Dispute.score_id).in_([s.id for s in scores]), Dispute.status == "open"
                )
            ).all()
        )
    return [
        DisputableScore(
            score_id=s.id or 0,
            criterion_id=s.criterion_id,
            name=names.get(s.criterion_id, s.criterion_id),
            level=s.level,
            open_dispute=s.id in disputed,
        )
        for s in scores
    ]


def resolve_dispute(
    engine: Engine,
    dispute_id: int,
    *,
    by: int,
    upheld: bool,
    resolution: str,
    now: datetime,
) -> Dispute:
    """Close a dispute: the score stands (`upheld`) or is to be changed by a re-score."""
    with session_scope(engine) as session:
        dispute = session.get(Dispute, dispute_id)
        if dispute is None:
            raise CoachingError(f"No dispute `{dispute_id}`")
        if dispute.status != "open":
            raise CoachingError(f"Dispute `{dispute_id}` is already {dispute.status}")
        dispute.status = "upheld" if upheld else "changed"
        dispute.resolution = resolution
        dispute.resolved_by = by
        dispute.resolved_at = now
        session.add(dispute)
        return dispute
