"""What a finished practice session becomes: a stored, scored interaction and feedback.

`PracticeRecorder.record` takes the finished conversation and

1. scores it with the judge, under the rubric of the scenario's role (the rep's role: an
   assignment always matches the two);
2. stores it as an `Interaction` of kind `practice` (source `practice`, external id = the
   session id; the rep is the `agent` speaker, the persona the `customer`), with its
   `Evaluation` and one `Score` per criterion, so coaching tracks practice like calls;
3. closes the rep's open assignment for the scenario;
4. returns feedback per criterion (level, the moment, what good looks like: the level-3
   anchor) and, for each targeted criterion, the rep's real-call level to compare with.

Every write is idempotent: running it again for the same session finds what is stored.
Practice is stored here rather than through `ingest.save_calls` because `scenarios/` may not
import `ingest/`; the content hash includes the session id, so two sessions with the same
words stay two sessions.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from config.rubric import LEVELS, Criterion, Rubric, RubricError, RubricLibrary
from evaluators.base import CriterionVerdict, Judge, Transcript, TurnView, Unscored, Verdict
from scenarios.schema import Scenario
from store.models import (
    Assignment,
    Evaluation,
    Interaction,
    InteractionKind,
    Person,
    RubricVersion,
    Score,
    Speaker,
    Turn,
)

logger = logging.getLogger(__name__)

PRACTICE_SOURCE = "practice"
Outcome = Literal["resolved", "unresolved", "walked_out"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Moment(_Frozen):
    turn: int
    """Index of the turn in the session transcript."""
    quote: str
    start_s: float | None = None


class CriterionFeedback(_Frozen):
    criterion_id: str
    name: str
    level: int | None
    """1-3, or None when the criterion did not apply to this session."""
    targeted: bool
    """Whether the scenario was built to practise this criterion."""
    anchor: str | None
    """The rubric's description of the level reached."""
    moment: Moment | None
    """Where in the session the level was decided, when there is evidence."""
    good_looks_like: str
    """The level-3 anchor."""
    good_example: str | None
    """A level-3 example from real calls, or the scenario's good anchor example."""
    next_step: str | None
    """The first level-2 or level-3 check not observed, as a question to aim for."""


class Comparison(_Frozen):
    criterion_id: str
    practice_level: int | None
    real_mean: float | None
    """Mean level of the rep's scored real calls on the criterion; None when there are none."""
    real_sessions: int

    @property
    def delta(self) -> float | None:
        if self.practice_level is None or self.real_mean is None:
            return None
        return self.practice_level - self.real_mean


class PracticeResult(_Frozen):
    """The outcome of one practice session, as every surface shows it."""

    session_id: str
    scenario: str
    title: str
    role: str
    rep: str | None
    outcome: Outcome
    end_reason: str
    rep_turns: int
    duration_s: float
    engine: str
    judge: str | None = None
    rubric_version: str | None = None
    weighted_total: float | None = None
    flagged: bool = False
    compliance_failed: bool = False
    feedback: list[CriterionFeedback] = []
    comparison: list[Comparison] = []
    interaction_id: int | None = None
    assignment_id: int | None = None
    """The assignment this session completed."""
    unscored_reason: str | None = None
    note: str | None = None
    """Why the session was not stored, when it was not."""

    @property
    def scored(self) -> bool:
        return self.unscored_reason is None and bool(self.feedback)

    def level(self, criterion_id: str) -> int | None:
        for item in self.feedback:
            if item.criterion_id == criterion_id:
                return item.level
        return None


@dataclass(frozen=True, slots=True)
class FinishedSession:
    """A conversation that has ended, as the roleplay hands it over."""

    session_id: str
    scenario: Scenario
    turns: Sequence[tuple[str, str, float]]
    """(speaker `rep` or `persona`, text, seconds from the start)."""
    started_at: datetime
    duration_s: float
    outcome: Outcome
    end_reason: str
    engine: str
    channel: str = "chat"
    rep_id: int | None = None
    rep_external_id: str | None = None
    assignment_id: int | None = None
    meta: dict[str, Any] | None = None

    @property
    def rep_turns(self) -> int:
        return sum(1 for speaker, _, _ in self.turns if speaker == "rep")

    def transcript(self) -> Transcript:
        views = [
            TurnView(
                idx=i,
                speaker=Speaker.agent.value if speaker == "rep" else Speaker.customer.value,
                text=text,
                start_s=at,
            )
            for i, (speaker, text, at) in enumerate(self.turns)
        ]
        return Transcript(turns=views, role=self.scenario.role)

    def content_hash(self) -> str:
        digest = hashlib.sha256(f"{PRACTICE_SOURCE}\x1f{self.session_id}\x1e".encode())
        for speaker, text, _ in self.turns:
            code = Speaker.agent.value if speaker == "rep" else Speaker.customer.value
            normal = " ".join(unicodedata.normalize("NFC", text).split())
            digest.update(f"{code}\x1f{normal}\x1e".encode())
        return digest.hexdigest()


# -- feedback -------------------------------------------------------------------------------


def _moment(criterion: Criterion, verdict: CriterionVerdict) -> Moment | None:
    by_id = {c.check_id: c for c in verdict.checks}
    level = verdict.level or 1
    # the evidence for the level reached first, then the strongest evidence there is
    wanted = sorted(LEVELS, key=lambda lvl: (lvl != level, -lvl))
    for lvl in wanted:
        for check in criterion.levels[lvl].checks:
            result = by_id.get(check.id)
            if result and result.observed and result.turn is not None and result.quote:
                return Moment(turn=result.turn, quote=result.quote, start_s=result.start_s)
    return None


def _next_step(criterion: Criterion, verdict: CriterionVerdict) -> str | None:
    observed = {c.check_id for c in verdict.checks if c.observed}
    for lvl in (2, 3):
        for check in criterion.levels[lvl].checks:
            if check.id not in observed:
                return check.question
    return None


def build_feedback(verdict: Verdict, rubric: Rubric, scenario: Scenario) -> list[CriterionFeedback]:
    """Feedback per criterion of the verdict: the scenario's criteria first, in its order."""
    by_id = {c.criterion_id: c for c in verdict.criteria}
    targeted = set(scenario.criterion_ids)
    items: list[CriterionFeedback] = []
    for criterion in rubric.criteria_for(scenario.role):
        cv = by_id.get(criterion.id)
        if cv is None:
            continue
        top = criterion.levels[3]
        example = top.examples[0] if top.examples else None
        if example is None and criterion.id in scenario.anchors:
            example = scenario.anchors[criterion.id].good.examples[0].text
        level = cv.level
        items.append(
            CriterionFeedback(
                criterion_id=criterion.id,
                name=criterion.name,
                level=level,
                targeted=criterion.id in targeted,
                anchor=criterion.levels[level].anchor.strip() if level in LEVELS else None,
                moment=_moment(criterion, cv),
                good_looks_like=top.anchor.strip(),
                good_example=" ".join(example.split()) if example else None,
                next_step=_next_step(criterion, cv) if level != 3 else None,
            )
        )
    order = {cid: i for i, cid in enumerate(scenario.criterion_ids)}
    items.sort(key=lambda f: order.get(f.criterion_id, len(order)))
    return items


# -- storage --------------------------------------------------------------------------------


def _ensure_rubric_version(session: Session, rubric: Rubric) -> None:
    if session.get(RubricVersion, rubric.version) is not None:
        return
    try:
        with session.begin_nested():
            session.add(
                RubricVersion(
                    version=rubric.version,
                    role=rubric.role,
                    name=rubric.name,
                    content=rubric.model_dump(mode="json"),
                )
            )
    except IntegrityError:
        pass  # another writer stored the same version meanwhile


def _store_interaction(session: Session, finished: FinishedSession, rep: Person) -> int:
    existing = session.exec(
        select(Interaction.id).where(
            Interaction.source == PRACTICE_SOURCE,
            Interaction.external_id == finished.session_id,
        )
    ).first()
    if existing is not None:
        return existing
    meta = {
        "scenario": finished.scenario.slug,
        "scenario_title": finished.scenario.title,
        "difficulty": finished.scenario.difficulty,
        "persona": finished.scenario.persona,
        "criteria": list(finished.scenario.criterion_ids),
        "engine": finished.engine,
        "outcome": finished.outcome,
        "end_reason": finished.end_reason,
        "assignment_id": finished.assignment_id,
        **(finished.meta or {}),
    }
    interaction = Interaction(
        external_id=finished.session_id,
        source=PRACTICE_SOURCE,
        kind=InteractionKind.practice,
        channel=finished.channel,
        rep_id=rep.id or 0,
        team_id=rep.team_id,
        started_at=finished.started_at,
        duration_s=finished.duration_s,
        content_hash=finished.content_hash(),
        turn_count=len(finished.turns),
        meta=meta,
    )
    session.add(interaction)
    session.flush()
    assert interaction.id is not None
    for idx, (speaker, text, at) in enumerate(finished.turns):
        session.add(
            Turn(
                interaction_id=interaction.id,
                idx=idx,
                speaker=Speaker.agent if speaker == "rep" else Speaker.customer,
                start_s=at,
                text=text,
            )
        )
    return interaction.id


def _store_evaluation(
    session: Session,
    interaction_id: int,
    rep_id: int,
    started_at: datetime,
    verdict: Verdict,
    rubric: Rubric,
) -> None:
    exists = session.exec(
        select(Evaluation.id).where(
            Evaluation.interaction_id == interaction_id,
            Evaluation.rubric_version == rubric.version,
            Evaluation.judge == verdict.judge,
        )
    ).first()
    if exists is not None:
        return
    levels = verdict.levels()
    evaluation = Evaluation(
        interaction_id=interaction_id,
        rubric_version=rubric.version,
        judge=verdict.judge,
        status="scored",
        weighted_total=rubric.weighted_total(levels),
        flagged=any(lvl is not None and lvl < rubric.flag_below for lvl in levels.values()),
        compliance_failed=rubric.fails_compliance(levels),
        prompt_tokens=verdict.prompt_tokens,
        completion_tokens=verdict.completion_tokens,
    )
    session.add(evaluation)
    session.flush()
    assert evaluation.id is not None
    for cv in verdict.criteria:
        session.add(
            Score(
                evaluation_id=evaluation.id,
                interaction_id=interaction_id,
                rep_id=rep_id,
                criterion_id=cv.criterion_id,
                level=cv.level,
                confidence=cv.confidence,
                checks=[c.as_dict() for c in cv.checks],
                scored_at=started_at,
            )
        )


def _store_unscored(
    session: Session, interaction_id: int, rubric: Rubric, judge: str, reason: str
) -> None:
    exists = session.exec(
        select(Evaluation.id).where(
            Evaluation.interaction_id == interaction_id,
            Evaluation.rubric_version == rubric.version,
            Evaluation.judge == judge,
        )
    ).first()
    if exists is None:
        session.add(
            Evaluation(
                interaction_id=interaction_id,
                rubric_version=rubric.version,
                judge=judge,
                status="unscored",
                reason=reason,
            )
        )


def close_assignment(
    session: Session,
    *,
    rep_id: int,
    scenario_slug: str,
    interaction_id: int,
    assignment_id: int | None,
    now: datetime,
) -> int | None:
    """Complete the assignment this session belongs to; its id, or None if none was open.

    With no assignment id, the rep's oldest open assignment for the scenario is closed.
    A session that already closed its assignment finds it again.
    """
    done = session.exec(
        select(Assignment.id).where(Assignment.practice_interaction_id == interaction_id)
    ).first()
    if done is not None:
        return done
    if assignment_id is None:
        assignment_id = session.exec(
            select(func.min(Assignment.id)).where(
                Assignment.rep_id == rep_id,
                Assignment.scenario_slug == scenario_slug,
                Assignment.status == "open",
            )
        ).first()
        if assignment_id is None:
            return None
    result = session.connection().execute(
        update(Assignment)
        .where(
            col(Assignment.id) == assignment_id,
            col(Assignment.rep_id) == rep_id,
            col(Assignment.status) == "open",
        )
        .values(status="completed", completed_at=now, practice_interaction_id=interaction_id)
    )
    return assignment_id if result.rowcount else None


def real_call_levels(
    session: Session, rep_id: int, criterion_ids: Sequence[str]
) -> dict[str, tuple[float | None, int]]:
    """Per criterion: the mean level of the rep's scored real calls and how many there are."""
    rows = session.exec(
        select(Score.criterion_id, func.avg(Score.level), func.count(col(Score.id)))
        .join(Interaction, col(Interaction.id) == col(Score.interaction_id))
        .join(Evaluation, col(Evaluation.id) == col(Score.evaluation_id))
        .where(
            Score.rep_id == rep_id,
            col(Score.criterion_id).in_(list(criterion_ids)),
            col(Score.level).is_not(None),
            Interaction.kind == InteractionKind.call,
            Evaluation.status == "scored",
        )
        .group_by(col(Score.criterion_id))
    ).all()
    found = {cid: (float(mean) if mean is not None else None, int(n)) for cid, mean, n in rows}
    return {cid: found.get(cid, (None, 0)) for cid in criterion_ids}


# -- the recorder ---------------------------------------------------------------------------


class PracticeRecorder:
    """Scores, stores and explains finished practice sessions.

    Args:
        judge: Any `Judge`; the offline judge in the embedded default.
        rubrics: The organisation's rubrics; the scenario's role picks one.
        engine: The database; None keeps results in memory only (nothing is stored).
    """

    def __init__(self, judge: Judge, rubrics: RubricLibrary, engine: Engine | None) -> None:
        self.judge = judge
        self.rubrics = rubrics
        self.engine = engine

    async def record(self, finished: FinishedSession) -> PracticeResult:
        scenario = finished.scenario
        base: dict[str, Any] = {
            "session_id": finished.session_id,
            "scenario": scenario.slug,
            "title": scenario.title,
            "role": scenario.role,
            "rep": finished.rep_external_id,
            "outcome": finished.outcome,
            "end_reason": finished.end_reason,
            "rep_turns": finished.rep_turns,
            "duration_s": round(finished.duration_s, 1),
            "engine": finished.engine,
        }
        try:
            rubric = self.rubrics.for_role(scenario.role)
        except RubricError as exc:
            return PracticeResult(**base, unscored_reason=str(exc), note="not scored")

        verdict: Verdict | None = None
        unscored: str | None = None
        if finished.rep_turns == 0:
            unscored = "the rep said nothing, so there is nothing to score"
        else:
            try:
                verdict = await self.judge.evaluate(finished.transcript(), rubric)
            except Unscored as exc:
                unscored = exc.reason
        feedback = build_feedback(verdict, rubric, scenario) if verdict is not None else []

        note: str | None = None
        interaction_id: int | None = None
        assignment_id: int | None = None
        comparison: list[Comparison] = []
        if self.engine is None:
            note = "not saved: practice without a database"
        elif finished.rep_id is None:
            note = "not saved: no rep given (use --rep to keep the result)"
        else:
            interaction_id, assignment_id, real = await asyncio.to_thread(
                self._store, finished, rubric, verdict, unscored
            )
            levels = {f.criterion_id: f.level for f in feedback}
            comparison = [
                Comparison(
                    criterion_id=cid,
                    practice_level=levels.get(cid),
                    real_mean=real[cid][0],
                    real_sessions=real[cid][1],
                )
                for cid in scenario.criterion_ids
            ]
        levels_all = verdict.levels() if verdict is not None else {}
        result = PracticeResult(
            **base,
            judge=self.judge.name,
            rubric_version=rubric.version,
            weighted_total=rubric.weighted_total(levels_all) if verdict is not None else None,
            flagged=any(v is not None and v < rubric.flag_below for v in levels_all.values()),
            compliance_failed=rubric.fails_compliance(levels_all),
            feedback=feedback,
            comparison=comparison,
            interaction_id=interaction_id,
            assignment_id=assignment_id,
            unscored_reason=unscored,
            note=note,
        )
        logger.info(
            "practice session recorded",
            extra={
                "session_id": finished.session_id,
                "scenario": scenario.slug,
                "interaction_id": interaction_id,
                "assignment_id": assignment_id,
                "outcome": finished.outcome,
                "scored": verdict is not None,
            },
        )
        return result

    def _store(
        self,
        finished: FinishedSession,
        rubric: Rubric,
        verdict: Verdict | None,
        unscored: str | None,
    ) -> tuple[int, int | None, dict[str, tuple[float | None, int]]]:
        assert self.engine is not None and finished.rep_id is not None
        with Session(self.engine, expire_on_commit=False) as session:
            rep = session.get(Person, finished.rep_id)
            if rep is None:
                raise LookupError(f"rep {finished.rep_id} no longer exists")
            _ensure_rubric_version(session, rubric)
            interaction_id = _store_interaction(session, finished, rep)
            if verdict is not None:
                _store_evaluation(
                    session, interaction_id, rep.id or 0, finished.started_at, verdict, rubric
                )
            else:
                _store_unscored(
                    session, interaction_id, rubric, self.judge.name, unscored or "unscored"
                )
            assignment_id = close_assignment(
                session,
                rep_id=rep.id or 0,
                scenario_slug=finished.scenario.slug,
                interaction_id=interaction_id,
                assignment_id=finished.assignment_id,
                now=datetime.now(UTC),
            )
            real = real_call_levels(session, rep.id or 0, finished.scenario.criterion_ids)
            session.commit()
        return interaction_id, assignment_id, real
