"""Score every interaction once per (rubric version, judge), and report the coverage.

`score_pending` finds the interactions that have no evaluation yet for their rep's rubric
version and the given judge, asks the judge in batches, and writes one `Evaluation` and one
`Score` per criterion for each. Each batch is committed on its own, so a crash loses at most
the batch in flight and the next run picks up where this one stopped. The unique constraint
on (interaction, rubric version, judge) keeps a second runner from writing a call twice: a
batch that hits it is re-checked and only the calls still missing are written.

A call whose rep has no role, or whose role has no rubric, is reported as unscored with that
reason and written nothing for: once the rep gets a role with a rubric, the next run scores it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal, cast

from sqlalchemy import ColumnElement, and_, case, delete, literal, or_, select as sql_select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from config.rubric import LEVELS, Rubric, RubricLibrary
from evaluators.base import (
    CriterionVerdict,
    EvaluatorError,
    Judge,
    Transcript,
    TurnView,
    Unscored,
    Verdict,
)
from store.models import (
    Evaluation,
    Interaction,
    Person,
    RubricVersion,
    Score,
    Team,
    Turn,
    utcnow,
)

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
"""Called with (calls done, calls to do) at the start and after every batch."""

Period = Literal["week", "month"]

NO_RUBRIC = ""
NO_ROLE_REASON = "rep has no role, so no rubric applies; set the rep's role"
NO_TURNS_REASON = "interaction has no turns to score"
NO_TEAM = "(no team)"


class ScoringError(EvaluatorError):
    """Scoring cannot go on; the message says what to fix."""


def no_rubric_reason(role: str) -> str:
    return f"no rubric for role `{role}`; add one to the rubric folder"


@dataclass
class ScoringReport:
    """What one scoring run did.

    Attributes:
        pending: Calls found without an evaluation (after `limit`).
        scored: Evaluations written with scores.
        unscored: Calls left unscored this run (written or not), by reason in `reasons`.
        skipped: Calls another runner evaluated while this one was busy.
        retried: Unscored evaluations replaced by this run.
    """

    judge: str
    pending: int = 0
    scored: int = 0
    unscored: int = 0
    skipped: int = 0
    retried: int = 0
    batches: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    unscored_written: int = 0
    """Unscored evaluations stored (calls without a rubric are reported, not stored)."""
    reasons: Counter[str] = field(default_factory=Counter)

    @property
    def written(self) -> int:
        return self.scored + self.unscored_written


@dataclass(frozen=True, slots=True)
class _Pending:
    interaction_id: int
    rep_id: int
    role: str | None
    started_at: datetime
    version: str
    replaces: int | None
    """The unscored evaluation a retry replaces."""


@dataclass(frozen=True, slots=True)
class _Outcome:
    item: _Pending
    verdict: Verdict | None
    reason: str | None


# -- finding the work -----------------------------------------------------------------------


def _versions_by_role(rubrics: RubricLibrary) -> dict[str, str]:
    return {role: rubrics.for_role(role).version for role in rubrics.roles}


def _expected_version(versions: dict[str, str]) -> Any:
    """SQL expression: the rubric version a call should be scored under, from its rep's role."""
    if not versions:
        return literal(NO_RUBRIC)
    return case(versions, value=Person.role, else_=literal(NO_RUBRIC))


def _find_pending(
    engine: Engine,
    judge_name: str,
    versions: dict[str, str],
    *,
    since: datetime | None,
    limit: int | None,
    retry_unscored: bool,
    interaction_ids: Sequence[int] | None = None,
) -> list[_Pending]:
    expected = _expected_version(versions).label("expected")
    missing: ColumnElement[bool] = col(Evaluation.id).is_(None)
    if retry_unscored:
        missing = or_(missing, col(Evaluation.status) == "unscored")
    query = (
        sql_select(
            col(Interaction.id),
            col(Interaction.rep_id),
            col(Person.role),
            col(Interaction.started_at),
            expected,
            col(Evaluation.id),
        )
        .join(Person, col(Person.id) == col(Interaction.rep_id))
        .outerjoin(
            Evaluation,
            and_(
                col(Evaluation.interaction_id) == col(Interaction.id),
                col(Evaluation.judge) == judge_name,
                col(Evaluation.rubric_version) == expected,
            ),
        )
        .where(missing)
        .order_by(expected, col(Interaction.started_at), col(Interaction.id))
    )
    if since is not None:
        query = query.where(col(Interaction.started_at) >= since)
    if interaction_ids is not None:
        query = query.where(col(Interaction.id).in_(list(interaction_ids)))
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return [
        _Pending(
            interaction_id=iid,
            rep_id=rep_id,
            role=role,
            started_at=started_at,
            version=version,
            replaces=eval_id,
        )
        for iid, rep_id, role, started_at, version, eval_id in rows
    ]


def ensure_rubric_versions(engine: Engine, rubrics: Iterable[Rubric]) -> None:
    """Store each rubric's content under its version, once, so old scores stay readable."""
    for rubric in rubrics:
        with Session(engine) as session:
            if session.get(RubricVersion, rubric.version) is not None:
                continue
            session.add(
                RubricVersion(
                    version=rubric.version,
                    role=rubric.role,
                    name=rubric.name,
                    content=rubric.model_dump(mode="json"),
                )
            )
            try:
                session.commit()
            except IntegrityError:
                session.rollback()  # another runner stored it first


def _load_transcripts(engine: Engine, batch: Sequence[_Pending]) -> dict[int, list[TurnView]]:
    ids = [item.interaction_id for item in batch]
    turns: dict[int, list[TurnView]] = {iid: [] for iid in ids}
    query = (
        sql_select(
            col(Turn.interaction_id),
            col(Turn.idx),
            col(Turn.speaker),
            col(Turn.text),
            col(Turn.start_s),
            col(Turn.end_s),
        )
        .where(col(Turn.interaction_id).in_(ids))
        .order_by(col(Turn.interaction_id), col(Turn.idx))
    )
    with engine.connect() as connection:
        for iid, idx, speaker, text, start_s, end_s in connection.execute(query):
            turns[iid].append(TurnView(idx, str(speaker), text, start_s, end_s))
    return turns


# -- checking what the judge said ----------------------------------------------------------


def _check_verdict(verdict: object, rubric: Rubric, role: str | None) -> str | None:
    """The reason a verdict cannot be stored, or None when it is sound."""
    if not isinstance(verdict, Verdict):
        return f"judge returned {type(verdict).__name__} instead of a verdict"
    expected = {c.id for c in rubric.criteria_for(role)}
    given = [c.criterion_id for c in verdict.criteria]
    repeated = sorted({cid for cid in given if given.count(cid) > 1})
    if repeated:
        return f"judge returned criteria more than once: {', '.join(repeated)}"
    missing = sorted(expected - set(given))
    if missing:
        return f"judge gave no verdict for criteria: {', '.join(missing)}"
    for criterion in verdict.criteria:
        if criterion.criterion_id in expected and criterion.level not in (*LEVELS, None):
            return f"judge returned level `{criterion.level}` for `{criterion.criterion_id}`"
    return None


def _kept_criteria(verdict: Verdict, rubric: Rubric, role: str | None) -> list[CriterionVerdict]:
    expected = {c.id for c in rubric.criteria_for(role)}
    extra = [c.criterion_id for c in verdict.criteria if c.criterion_id not in expected]
    if extra:
        logger.warning(
            "judge scored criteria outside the rubric, ignored",
            extra={"judge": verdict.judge, "criteria": extra, "rubric": rubric.role},
        )
    return [c for c in verdict.criteria if c.criterion_id in expected]


async def _judge_batch(
    judge: Judge, rubric: Rubric, batch: Sequence[_Pending], turns: dict[int, list[TurnView]]
) -> list[_Outcome]:
    outcomes: dict[int, _Outcome] = {}
    to_judge: list[_Pending] = []
    for item in batch:
        if turns[item.interaction_id]:
            to_judge.append(item)
        else:
            outcomes[item.interaction_id] = _Outcome(item, None, NO_TURNS_REASON)

    if to_judge:
        transcripts = [
            Transcript(turns=turns[i.interaction_id], interaction_id=i.interaction_id, role=i.role)
            for i in to_judge
        ]
        try:
            results: Sequence[Verdict | Unscored] = await judge.evaluate_many(transcripts, rubric)
        except Unscored as exc:
            results = [exc] * len(to_judge)
        if len(results) != len(to_judge):
            raise ScoringError(
                f"Judge `{judge.name}` returned {len(results)} results for {len(to_judge)} "
                "transcripts; a judge must return one result per transcript, in order"
            )
        for item, result in zip(to_judge, results, strict=True):
            if isinstance(result, Unscored):
                outcomes[item.interaction_id] = _Outcome(item, None, result.reason)
                continue
            problem = _check_verdict(result, rubric, item.role)
            if problem is not None:
                logger.warning(
                    "judge verdict set aside",
                    extra={"interaction_id": item.interaction_id, "problem": problem},
                )
                outcomes[item.interaction_id] = _Outcome(item, None, problem)
                continue
            outcomes[item.interaction_id] = _Outcome(item, result, None)
    return [outcomes[item.interaction_id] for item in batch]


# -- writing --------------------------------------------------------------------------------


def _insert_batch(
    connection: Connection, outcomes: Sequence[_Outcome], rubric: Rubric, judge_name: str
) -> None:
    """Evaluations and scores of a batch as two multi-row inserts (no per-row round trips)."""
    now = utcnow()
    replaced = [o.item.replaces for o in outcomes if o.item.replaces is not None]
    if replaced:
        connection.execute(
            delete(Evaluation).where(
                col(Evaluation.id).in_(replaced), col(Evaluation.status) == "unscored"
            )
        )
    evaluations: list[dict[str, Any]] = []
    kept: list[list[CriterionVerdict]] = []
    for outcome in outcomes:
        item, verdict = outcome.item, outcome.verdict
        row: dict[str, Any] = {
            "interaction_id": item.interaction_id,
            "rubric_version": item.version,
            "judge": judge_name,
            "status": "unscored",
            "reason": outcome.reason,
            "weighted_total": None,
            "flagged": False,
            "compliance_failed": False,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "created_at": now,
        }
        criteria = [] if verdict is None else _kept_criteria(verdict, rubric, item.role)
        if verdict is not None:
            levels = {c.criterion_id: c.level for c in criteria}
            row |= {
                "status": "scored",
                "reason": None,
                "weighted_total": rubric.weighted_total(levels),
                "flagged": any(
                    lvl is not None and lvl < rubric.flag_below for lvl in levels.values()
                ),
                "compliance_failed": rubric.fails_compliance(levels),
                "prompt_tokens": verdict.prompt_tokens,
                "completion_tokens": verdict.completion_tokens,
            }
        evaluations.append(row)
        kept.append(criteria)

    table = Evaluation.__table__  # type: ignore[attr-defined]
    ids = (
        connection.execute(
            table.insert().returning(table.c.id, sort_by_parameter_order=True), evaluations
        )
        .scalars()
        .all()
    )
    scores = [
        {
            "evaluation_id": evaluation_id,
            "interaction_id": outcome.item.interaction_id,
            "rep_id": outcome.item.rep_id,
            "criterion_id": criterion.criterion_id,
            "level": criterion.level,
            "confidence": criterion.confidence,
            "checks": [check.as_dict() for check in criterion.checks],
            "scored_at": outcome.item.started_at,
        }
        for evaluation_id, outcome, criteria in zip(ids, outcomes, kept, strict=True)
        for criterion in criteria
    ]
    if scores:
        connection.execute(Score.__table__.insert(), scores)  # type: ignore[attr-defined]


def _already_evaluated(engine: Engine, outcomes: Sequence[_Outcome], judge_name: str) -> set[int]:
    """Calls of this batch that another runner has evaluated since they were found."""
    if not outcomes:
        return set()
    version = outcomes[0].item.version
    replaced = {o.item.replaces for o in outcomes if o.item.replaces is not None}
    with Session(engine) as session:
        rows = session.exec(
            select(Evaluation.interaction_id, Evaluation.id).where(
                col(Evaluation.interaction_id).in_([o.item.interaction_id for o in outcomes]),
                col(Evaluation.rubric_version) == version,
                col(Evaluation.judge) == judge_name,
            )
        ).all()
    return {iid for iid, eid in rows if eid not in replaced}


def _write_batch(
    engine: Engine, outcomes: Sequence[_Outcome], rubric: Rubric, judge_name: str
) -> tuple[list[_Outcome], int]:
    """Write the batch in one transaction; returns what was written and how many were taken."""
    remaining = list(outcomes)
    taken = 0
    while remaining:
        try:
            with engine.begin() as connection:
                _insert_batch(connection, remaining, rubric, judge_name)
            return remaining, taken
        except IntegrityError:
            done = _already_evaluated(engine, remaining, judge_name)
            if not done:
                raise
            logger.info(
                "calls evaluated by another runner, skipped",
                extra={"judge": judge_name, "calls": sorted(done)},
            )
            taken += len(done)
            remaining = [o for o in remaining if o.item.interaction_id not in done]
    return [], taken


# -- the run --------------------------------------------------------------------------------


def _batches(items: Sequence[_Pending], size: int) -> Iterable[list[_Pending]]:
    """Consecutive batches of at most `size` calls that share one rubric version."""
    batch: list[_Pending] = []
    for item in items:
        if batch and (len(batch) >= size or batch[0].version != item.version):
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch


def _unrubricked_reason(item: _Pending) -> str:
    return NO_ROLE_REASON if not item.role else no_rubric_reason(item.role)


async def score_pending(
    engine: Engine,
    judge: Judge,
    rubrics: RubricLibrary,
    *,
    batch_size: int,
    progress: Progress | None = None,
    limit: int | None = None,
    since: datetime | None = None,
    retry_unscored: bool = False,
    interaction_ids: Sequence[int] | None = None,
) -> ScoringReport:
    """Score every interaction that has no evaluation by `judge` under its rubric version.

    Args:
        engine: The database.
        judge: Any `Judge`; its `name` is stored with each evaluation.
        rubrics: The organisation's rubrics; a rep's role picks the rubric.
        batch_size: Transcripts per `evaluate_many` call and per commit.
        progress: Called with (done, total) at the start and after each batch.
        limit: Score at most this many calls.
        since: Only calls that started at or after this time.
        retry_unscored: Also retry calls this judge left unscored before.
        interaction_ids: Only these calls (those already scored are skipped), as a job does.

    Returns:
        What was scored, left unscored (with reasons) or skipped.

    Raises:
        ValueError: `batch_size` or `limit` below 1.
        ScoringError: The judge broke the batch contract.
        Exception: Whatever the judge raised for a whole batch; batches before it are kept.
    """
    if batch_size < 1:
        raise ValueError(f"Batch size must be at least 1, got `{batch_size}`")
    if limit is not None and limit < 1:
        raise ValueError(f"Limit must be at least 1, got `{limit}`")
    name = judge.name
    report = ScoringReport(judge=name)
    versions = _versions_by_role(rubrics)
    by_version = {rubric.version: rubric for rubric in rubrics.rubrics}
    await asyncio.to_thread(ensure_rubric_versions, engine, rubrics.rubrics)
    pending = await asyncio.to_thread(
        _find_pending,
        engine,
        name,
        versions,
        since=since,
        limit=limit,
        retry_unscored=retry_unscored,
        interaction_ids=interaction_ids,
    )
    report.pending = len(pending)
    logger.info("scoring started", extra={"judge": name, "pending": len(pending)})
    done = 0
    if progress is not None:
        progress(0, len(pending))

    for batch in _batches(pending, batch_size):
        rubric = by_version.get(batch[0].version)
        if rubric is None:
            for item in batch:
                report.unscored += 1
                report.reasons[_unrubricked_reason(item)] += 1
        else:
            turns = await asyncio.to_thread(_load_transcripts, engine, batch)
            outcomes = await _judge_batch(judge, rubric, batch, turns)
            written, taken = await asyncio.to_thread(_write_batch, engine, outcomes, rubric, name)
            report.batches += 1
            report.skipped += taken
            for outcome in written:
                report.retried += outcome.item.replaces is not None
                if outcome.verdict is None:
                    report.unscored += 1
                    report.unscored_written += 1
                    report.reasons[outcome.reason or "unknown"] += 1
                else:
                    report.scored += 1
                    report.prompt_tokens += outcome.verdict.prompt_tokens
                    report.completion_tokens += outcome.verdict.completion_tokens
            logger.debug(
                "batch written",
                extra={"judge": name, "calls": len(batch), "written": len(written)},
            )
        done += len(batch)
        if progress is not None:
            progress(done, len(pending))

    logger.info(
        "scoring finished",
        extra={
            "judge": name,
            "scored": report.scored,
            "unscored": report.unscored,
            "skipped": report.skipped,
        },
    )
    return report


# -- coverage -------------------------------------------------------------------------------


@dataclass
class CoverageRow:
    """One team in one week or month.

    Attributes:
        pending: Calls no judge has evaluated yet (and that could be).
        not_applicable: Per criterion, scored calls where it did not apply.
        unscored_reasons: Unscored calls grouped by reason.
    """

    team: str
    period_start: date | None
    interactions: int = 0
    scored: int = 0
    unscored: int = 0
    pending: int = 0
    flagged: int = 0
    compliance_failed: int = 0
    not_applicable: Counter[str] = field(default_factory=Counter)
    unscored_reasons: Counter[str] = field(default_factory=Counter)

    @property
    def scored_share(self) -> float | None:
        return self.scored / self.interactions if self.interactions else None

    def add(self, other: CoverageRow) -> None:
        self.interactions += other.interactions
        self.scored += other.scored
        self.unscored += other.unscored
        self.pending += other.pending
        self.flagged += other.flagged
        self.compliance_failed += other.compliance_failed
        self.not_applicable.update(other.not_applicable)
        self.unscored_reasons.update(other.unscored_reasons)


@dataclass
class CoverageReport:
    period: Period
    rows: list[CoverageRow]
    total: CoverageRow
    judge: str | None = None


def period_start_of(moment: datetime, period: Period) -> date:
    """The Monday of the week, or the first of the month, of a UTC time."""
    day = moment.date()
    if period == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


@dataclass(frozen=True, slots=True)
class _EvalRow:
    id: int
    interaction_id: int
    version: str
    status: str
    reason: str | None
    flagged: bool
    compliance_failed: bool


def _choose(candidates: list[_EvalRow], expected: str | None) -> _EvalRow | None:
    """The evaluation that speaks for a call: its current rubric version, scored first."""
    if expected is not None:
        candidates = [c for c in candidates if c.version == expected]
    if not candidates:
        return None
    return max(candidates, key=lambda c: (c.status == "scored", c.id))


def coverage(
    engine: Engine,
    *,
    team: str | None = None,
    period_start: datetime | None = None,
    period_end: datetime | None = None,
    judge: str | None = None,
    period: Period = "week",
    rubrics: RubricLibrary | None = None,
) -> CoverageReport:
    """How many calls were scored, by team and week or month.

    Args:
        engine: The database.
        team: Only this team (its slug).
        period_start: Only calls that started at or after this time.
        period_end: Only calls that started before this time.
        judge: Only this judge's evaluations (its stored name); default any judge.
        period: Group by `week` (starting Monday) or `month`.
        rubrics: When given, only evaluations under each rep's current rubric version count,
            and calls whose rep has no rubric are reported as unscored with that reason.

    Raises:
        ValueError: `team` names no team.
    """
    filters: list[Any] = []
    with Session(engine) as session:
        if team is not None:
            team_row = session.exec(select(Team).where(col(Team.slug) == team)).first()
            if team_row is None:
                known = ", ".join(session.exec(select(Team.slug).order_by(col(Team.slug))).all())
                raise ValueError(f"No team `{team}`; teams: {known or 'none'}")
            filters.append(col(Interaction.team_id) == team_row.id)
        if period_start is not None:
            filters.append(col(Interaction.started_at) >= period_start)
        if period_end is not None:
            filters.append(col(Interaction.started_at) < period_end)

        calls = session.exec(
            select(col(Interaction.id), Team.slug, Interaction.started_at, Person.role)
            .join(Person, col(Person.id) == col(Interaction.rep_id))
            .outerjoin(Team, col(Team.id) == col(Interaction.team_id))
            .where(*filters)
        ).all()
        eval_query = (
            sql_select(
                col(Evaluation.id),
                col(Evaluation.interaction_id),
                col(Evaluation.rubric_version),
                col(Evaluation.status),
                col(Evaluation.reason),
                col(Evaluation.flagged),
                col(Evaluation.compliance_failed),
            )
            .join(Interaction, col(Interaction.id) == col(Evaluation.interaction_id))
            .where(*filters)
        )
        na_query = (
            select(Score.evaluation_id, Score.criterion_id)
            .join(Interaction, col(Interaction.id) == col(Score.interaction_id))
            .where(col(Score.level).is_(None), *filters)
        )
        if judge is not None:
            eval_query = eval_query.where(col(Evaluation.judge) == judge)
            na_query = na_query.join(
                Evaluation, col(Evaluation.id) == col(Score.evaluation_id)
            ).where(col(Evaluation.judge) == judge)
        evaluations = [
            _EvalRow(cast(int, eid), iid, version, status, reason, flagged, failed)
            for eid, iid, version, status, reason, flagged, failed in session.connection()
            .execute(eval_query)
            .all()
        ]
        not_applicable = session.exec(na_query).all()

    by_call: dict[int, list[_EvalRow]] = defaultdict(list)
    for evaluation in evaluations:
        by_call[evaluation.interaction_id].append(evaluation)
    na_by_eval: dict[int, list[str]] = defaultdict(list)
    for evaluation_id, criterion_id in not_applicable:
        na_by_eval[evaluation_id].append(criterion_id)
    versions = _versions_by_role(rubrics) if rubrics is not None else None

    rows: dict[tuple[str, date], CoverageRow] = {}
    for iid, slug, started_at, role in calls:
        key = (slug or NO_TEAM, period_start_of(started_at, period))
        row = rows.setdefault(key, CoverageRow(team=key[0], period_start=key[1]))
        row.interactions += 1
        expected = None if versions is None else versions.get(role or "", NO_RUBRIC)
        chosen = _choose(by_call.get(cast(int, iid), []), expected)
        if chosen is None:
            if not role:
                row.unscored += 1
                row.unscored_reasons[NO_ROLE_REASON] += 1
            elif expected == NO_RUBRIC:
                row.unscored += 1
                row.unscored_reasons[no_rubric_reason(role)] += 1
            else:
                row.pending += 1
            continue
        if chosen.status == "scored":
            row.scored += 1
            row.flagged += chosen.flagged
            row.compliance_failed += chosen.compliance_failed
            row.not_applicable.update(na_by_eval.get(chosen.id, []))
        else:
            row.unscored += 1
            row.unscored_reasons[chosen.reason or "no reason given"] += 1

    ordered = [rows[key] for key in sorted(rows)]
    total = CoverageRow(team="all", period_start=None)
    for row in ordered:
        total.add(row)
    return CoverageReport(period=period, rows=ordered, total=total, judge=judge)


def judge_names(engine: Engine) -> list[str]:
    """Every judge that has stored an evaluation."""
    with Session(engine) as session:
        names = session.exec(select(Evaluation.judge).distinct()).all()
    return sorted(names)


def resolve_judge(engine: Engine, given: str) -> str:
    """A stored judge name from its full name or a unique prefix (`offline`, `llm`).

    Raises:
        ValueError: No stored judge, or several, match.
    """
    names = judge_names(engine)
    if given in names:
        return given
    matches = [name for name in names if name.startswith(given)]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(names) or "none yet; run `coachloop score`"
    if matches:
        raise ValueError(f"Judge `{given}` matches several: {', '.join(matches)}; name one")
    raise ValueError(f"No judge `{given}` has scored anything; judges: {known}")
