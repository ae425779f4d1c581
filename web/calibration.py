"""Calibration in the browser: sets of calls that raters score, and their submissions.

The levels themselves go through `evaluators.calibration.import_ratings` (the same checks,
rubric pinning and idempotent storage as a CSV import); the agreement report and the go-live
gate are `evaluators.calibration.calibration_report`. This module keeps only which calls
are in a set and who has finished it: until a rater submits, they see only their own levels.
"""

from __future__ import annotations

import csv
import logging
import random
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from config.rubric import Criterion, RubricError, RubricLibrary
from evaluators.calibration import CalibrationError, import_ratings
from store.db import session_scope
from store.models import (
    CalibrationItem,
    CalibrationSubmission,
    Evaluation,
    HumanRating,
    Interaction,
    InteractionKind,
    Person,
)

logger = logging.getLogger(__name__)

MAX_SET_SIZE = 200
_CANDIDATES = 5000
"""Draw from at most this many of the most recent scored calls."""


class CalibrationSetError(Exception):
    """A calibration set action that cannot be done; the message says what to do."""


@dataclass
class SetSummary:
    name: str
    calls: int
    submitted: list[str]


@dataclass
class RaterItem:
    interaction_id: int
    external_id: str
    role: str | None
    started_at: datetime
    criteria: list[Criterion]
    levels: dict[str, int | None] = field(default_factory=dict)
    """The rater's own levels so far (N/A is a stored None)."""

    @property
    def done(self) -> bool:
        return all(c.id in self.levels for c in self.criteria)


def valid_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 64 or not all(ch.isalnum() or ch in "-_." for ch in name):
        raise CalibrationSetError(
            "A set name is 1-64 letters, digits, dots, dashes or underscores, e.g. `calibration`"
        )
    return name


def list_sets(session: Session) -> list[SetSummary]:
    counts = session.exec(
        select(CalibrationItem.set_name, func.count())
        .group_by(col(CalibrationItem.set_name))
        .order_by(col(CalibrationItem.set_name))
    ).all()
    submitted: dict[str, list[str]] = {}
    for set_name, rater in session.exec(
        select(CalibrationSubmission.set_name, CalibrationSubmission.rater)
    ).all():
        submitted.setdefault(set_name, []).append(rater)
    return [SetSummary(name, int(n), sorted(submitted.get(name, []))) for name, n in counts]


def draw_set(
    engine: Engine,
    name: str,
    *,
    role: str,
    size: int,
    by: int | None,
    now: datetime,
    seed: int | None = None,
) -> int:
    """Add `size` scored calls of reps with `role` to the set, drawn at random from the most
    recent ones not in it yet; returns how many were added."""
    name = valid_name(name)
    if not 1 <= size <= MAX_SET_SIZE:
        raise CalibrationSetError(f"Draw between 1 and {MAX_SET_SIZE} calls, not {size}")
    with session_scope(engine) as session:
        present = select(CalibrationItem.interaction_id).where(CalibrationItem.set_name == name)
        candidates = session.exec(
            select(Interaction.id)
            .join(Person, col(Person.id) == col(Interaction.rep_id))
            .where(
                Person.role == role,
                Interaction.kind == InteractionKind.call,
                col(Interaction.id).in_(
                    select(Evaluation.interaction_id).where(Evaluation.status == "scored")
                ),
                col(Interaction.id).not_in(present),
            )
            .order_by(col(Interaction.started_at).desc())
            .limit(_CANDIDATES)
        ).all()
        ids = [i for i in candidates if i is not None]
        if not ids:
            raise CalibrationSetError(
                f"No scored calls of `{role}` reps left to draw; score calls first "
                "(`coachloop score`) or choose another role"
            )
        picked = random.Random(seed).sample(ids, min(size, len(ids)))
        for interaction_id in picked:
            session.add(
                CalibrationItem(
                    set_name=name, interaction_id=interaction_id, added_by=by, added_at=now
                )
            )
    logger.info("calibration calls drawn", extra={"set": name, "calls": len(picked)})
    return len(picked)


def _criteria(rubrics: RubricLibrary, role: str | None) -> list[Criterion]:
    if role is None:
        return []
    try:
        return rubrics.for_role(role).criteria_for(role)
    except RubricError:
        return []


def rater_items(session: Session, rubrics: RubricLibrary, name: str, rater: str) -> list[RaterItem]:
    """The set's calls with the criteria to rate and this rater's own levels (no one else's)."""
    rows = session.exec(
        select(Interaction.id, Interaction.external_id, Interaction.started_at, Person.role)
        .join(CalibrationItem, col(CalibrationItem.interaction_id) == col(Interaction.id))
        .join(Person, col(Person.id) == col(Interaction.rep_id))
        .where(CalibrationItem.set_name == name)
        .order_by(col(Interaction.started_at), col(Interaction.id))
    ).all()
    mine: dict[int, dict[str, int | None]] = {}
    for rated_id, cid, level in session.exec(
        select(HumanRating.interaction_id, HumanRating.criterion_id, HumanRating.level).where(
            HumanRating.set_name == name, HumanRating.rater == rater
        )
    ).all():
        mine.setdefault(rated_id, {})[cid] = level
    items = []
    for iid, external_id, started_at, role in rows:
        assert iid is not None
        items.append(
            RaterItem(
                interaction_id=iid,
                external_id=external_id,
                role=role,
                started_at=started_at,
                criteria=_criteria(rubrics, role),
                levels=mine.get(iid, {}),
            )
        )
    return items


def in_set(session: Session, name: str, interaction_id: int) -> bool:
    return session.get(CalibrationItem, (name, interaction_id)) is not None


def submitted(session: Session, name: str, rater: str) -> bool:
    return session.get(CalibrationSubmission, (name, rater)) is not None


def raters_of(session: Session, name: str) -> set[str]:
    return set(
        session.exec(select(HumanRating.rater).where(HumanRating.set_name == name).distinct())
    )


def save_levels(
    engine: Engine,
    rubrics: RubricLibrary,
    name: str,
    rater: str,
    interaction_id: int,
    levels: dict[str, int | None],
) -> int:
    """Store one rater's levels for one call of the set; returns how many were stored.

    Raises:
        CalibrationSetError: The call is not in the set, the rater already submitted, or a
            level was refused by the import's checks.
    """
    with Session(engine) as session:
        if not in_set(session, name, interaction_id):
            raise CalibrationSetError(f"Call `{interaction_id}` is not in set `{name}`")
        if submitted(session, name, rater):
            raise CalibrationSetError(
                f"You have submitted set `{name}`; its levels are final for you"
            )
        interaction = session.get(Interaction, interaction_id)
        assert interaction is not None
        rows = [
            [rater, interaction.external_id, interaction.source, cid, "N/A" if lvl is None else lvl]
            for cid, lvl in levels.items()
        ]
    if not rows:
        return 0
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ratings.csv"
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["rater", "interaction", "source", "criterion", "level"])
            writer.writerows(rows)
        try:
            result = import_ratings(engine, path, rubrics, set_name=name)
        except CalibrationError as exc:
            raise CalibrationSetError(str(exc)) from None
    if result.bad:
        raise CalibrationSetError("; ".join(b.problem for b in result.bad))
    return result.accepted


def submit(engine: Engine, rubrics: RubricLibrary, name: str, rater: str, *, now: datetime) -> None:
    """Mark the set finished for this rater once every call has a level for every criterion.

    Raises:
        CalibrationSetError: Calls or criteria are still unrated, or it is already submitted.
    """
    with session_scope(engine) as session:
        if submitted(session, name, rater):
            raise CalibrationSetError(f"You have already submitted set `{name}`")
        items = rater_items(session, rubrics, name, rater)
        if not items:
            raise CalibrationSetError(f"Set `{name}` has no calls")
        left = [i.external_id for i in items if not i.done]
        if left:
            raise CalibrationSetError(
                f"{len(left)} calls still need a level for every criterion "
                f"({', '.join(left[:3])}{'...' if len(left) > 3 else ''})"
            )
        session.add(CalibrationSubmission(set_name=name, rater=rater, submitted_at=now))
    logger.info("calibration set submitted", extra={"set": name})
