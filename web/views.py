"""What each page shows, gathered from the coaching core and the store for one viewer.

The pages render these; the JSON API returns parts of them. Every builder takes a viewer
whose right to see the team or rep has already been checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from coaching.reports import (
    CoachingReport,
    Period,
    RepCriterion,
    TeamGaps,
    rep_progress,
    report,
    team_gaps,
    team_trend,
)
from coaching.rubrics import criterion_names, good_looks_like, moment_for
from coaching.scored import NotScoredError, ScoredInteraction, load_scored
from config.rubric import Criterion, Rubric, RubricError
from store.models import (
    Assignment,
    CoachingTrigger,
    CohortDecision,
    Dispute,
    Evaluation,
    Interaction,
    Person,
    Team,
    Turn,
)
from web import queries, render
from web.context import WebContext

# criterion colours for evidence highlights; the same order as the charts' palette
HIGHLIGHTS = 6


# -- team dashboard -------------------------------------------------------------------------


@dataclass
class HeatCell:
    criterion_id: str
    mean: float | None
    sessions: int
    below: bool
    trend: float | None


@dataclass
class HeatRow:
    rep_id: int
    name: str
    pilot: bool
    cells: list[HeatCell]
    weakest: str | None


@dataclass
class HeatGroup:
    """The reps of one job role, against the criteria of that role's rubric."""

    role: str | None
    criteria: list[tuple[str, str]]
    rows: list[HeatRow]


@dataclass
class Dashboard:
    team: Team
    period: Period
    gaps: TeamGaps
    names: dict[str, str]
    heatmaps: list[HeatGroup]
    team_chart: dict[str, Any]
    rep_chart: dict[str, Any] | None
    chart_rep: Person | None
    reps: list[Person]
    period_report: CoachingReport
    since: date
    """Where the checkpoint report counts from; the page loads it after the rest."""
    triggers: list[CoachingTrigger]
    decisions: list[CohortDecision]
    late: list[queries.LateFeedback]
    session_flags: int
    people: dict[int, str]
    sla_hours: float
    threshold: float


def _bucket(period: Period) -> int:
    return 1 if period.days <= 14 else 7


def dashboard(
    context: WebContext,
    session: Session,
    team: Team,
    period: Period,
    *,
    rep_id: int | None = None,
    since: date | None = None,
) -> Dashboard:
    assert team.id is not None
    engine, rules = context.engine, context.rules
    now = context.now()
    gaps = team_gaps(engine, team.id, period, rules=rules)
    names = criterion_names(engine)
    reps = queries.team_reps(session, team.id)
    by_rep = {r.rep_id: r for r in gaps.reps}
    roles: dict[str | None, list[Person]] = {}
    for person in reps:
        roles.setdefault(person.role, []).append(person)
    heatmaps: list[HeatGroup] = []
    for role, members in sorted(roles.items(), key=lambda item: (-len(item[1]), item[0] or "")):
        rubric = _rubric_for(context, role)
        present = {c.criterion_id for p in members if p.id in by_rep for c in by_rep[p.id].criteria}
        if rubric is not None:
            criteria = [(c.id, c.name) for c in rubric.criteria_for(role)]
        else:
            criteria = []
        listed = {cid for cid, _ in criteria}
        criteria += [(cid, names.get(cid, cid)) for cid in sorted(present - listed)]
        rows = []
        for person in members:
            assert person.id is not None
            found = by_rep.get(person.id)
            cells_by_id: dict[str, RepCriterion] = (
                {c.criterion_id: c for c in found.criteria} if found else {}
            )
            cells = []
            for cid, _ in criteria:
                got = cells_by_id.get(cid)
                cells.append(
                    HeatCell(
                        cid,
                        got.mean if got else None,
                        got.sessions if got else 0,
                        got.below if got else False,
                        got.trend if got else None,
                    )
                )
            rows.append(
                HeatRow(
                    person.id, person.name, person.pilot, cells, found.weakest if found else None
                )
            )
        heatmaps.append(HeatGroup(role, criteria, rows))
    main_role = heatmaps[0].role if heatmaps else None
    main_criteria = {cid for cid, _ in heatmaps[0].criteria} if heatmaps else set()
    bucket = _bucket(period)
    trend_rows = team_trend(engine, team.id, period, bucket_days=bucket)
    if main_criteria:
        trend_rows = [r for r in trend_rows if r["criterion_id"] in main_criteria]
    who = f"{team.name} ({main_role} reps)" if main_role and len(heatmaps) > 1 else team.name
    team_chart = render.trend_chart(
        trend_rows,
        names,
        threshold=gaps.threshold,
        title=f"{who}: criterion means per {'day' if bucket == 1 else 'week'}",
    )
    chart_rep: Person | None = None
    ids = {p.id for p in reps}
    if rep_id is not None and rep_id in ids:
        chart_rep = next(p for p in reps if p.id == rep_id)
    elif gaps.largest_gaps:
        weakest = gaps.largest_gaps[0]["rep_id"]
        chart_rep = next((p for p in reps if p.id == weakest), None)
    if chart_rep is None and reps:
        chart_rep = reps[0]
    rep_chart = None
    if chart_rep is not None:
        assert chart_rep.id is not None
        rep_chart = render.trend_chart(
            queries.rep_weekly(engine, chart_rep.id, period, bucket_days=bucket),
            names,
            threshold=gaps.threshold,
            title=f"{chart_rep.name}: criterion means per {'day' if bucket == 1 else 'week'}",
        )
    start = checkpoint_start(context, since)
    period_report = report(engine, team.id, period.start, period.end, rules=rules, now=now)
    rep_ids = [p.id for p in reps if p.id is not None]
    triggers = queries.open_triggers(session, team_id=team.id, rep_ids=rep_ids)
    decisions = queries.cohort_decisions(session, team.id)
    late = queries.late_feedback(
        session, rep_ids, period, now=now, sla_hours=rules.feedback.sla_hours
    )
    people = {p.id: p.name for p in reps if p.id is not None}
    missing = {t.rep_id for t in triggers if t.rep_id and t.rep_id not in people}
    people.update(queries.names_of(session, {m for m in missing if m is not None}))
    return Dashboard(
        team=team,
        period=period,
        gaps=gaps,
        names=names,
        heatmaps=heatmaps,
        team_chart=team_chart,
        rep_chart=rep_chart,
        chart_rep=chart_rep,
        reps=reps,
        period_report=period_report,
        since=start,
        triggers=triggers,
        decisions=decisions,
        late=late,
        session_flags=queries.session_flag_count(session, team.id, period.start_at),
        people=people,
        sla_hours=rules.feedback.sla_hours,
        threshold=gaps.threshold,
    )


def checkpoint_start(context: WebContext, since: date | None) -> date:
    """The checkpoint report's start: as asked, else 59 days ago, so the 60-day window ends
    today."""
    return since or context.now().date() - timedelta(days=59)


def checkpoints(context: WebContext, team: Team, since: date | None) -> tuple[CoachingReport, date]:
    """A team's coaching report with its 30- and 60-day checkpoints from `since`; the
    dashboard loads it as a separate request, being the most expensive part of the page."""
    assert team.id is not None
    now = context.now()
    start = checkpoint_start(context, since)
    found = report(
        context.engine,
        team.id,
        start,
        now.date() + timedelta(days=1),
        rules=context.rules,
        now=now,
    )
    return found, start


# -- rep page -------------------------------------------------------------------------------


@dataclass
class AssignmentRow:
    assignment: Assignment
    title: str
    result: dict[str, int | None] | None


@dataclass
class RepPage:
    rep: Person
    team: Team | None
    period: Period
    progress: list[RepCriterion]
    criteria: list[tuple[str, str]]
    sessions: list[queries.SessionRow]
    chart: dict[str, Any]
    assignments: list[AssignmentRow]
    triggers: list[CoachingTrigger]
    threshold: float
    evidence: dict[tuple[int, str], int | None] = field(default_factory=dict)


def _rubric_for(context: WebContext, role: str | None) -> Rubric | None:
    if role is None:
        return None
    try:
        return context.rubrics.for_role(role)
    except RubricError:
        return None


def rep_page(context: WebContext, session: Session, rep: Person, period: Period) -> RepPage:
    assert rep.id is not None
    engine = context.engine
    names = criterion_names(engine)
    progress = rep_progress(engine, rep.id, period, rules=context.rules)
    sessions = queries.rep_sessions(engine, rep.id, period.start_at, period.end_at)
    rubric = _rubric_for(context, rep.role)
    if rubric is not None:
        criteria = [(c.id, c.name) for c in rubric.criteria_for(rep.role)]
    else:
        seen = list(dict.fromkeys(cid for s in sessions for cid in s.scores))
        criteria = [(cid, names.get(cid, cid)) for cid in seen]
    known = {cid for cid, _ in criteria}
    for s in sessions:
        for cid in s.scores:
            if cid not in known:
                criteria.append((cid, names.get(cid, cid)))
                known.add(cid)
    rules = context.rules.for_role(rep.role)
    chart = render.sessions_chart(
        sessions,
        criteria,
        threshold=rules.individual_below,
        title=f"{rep.name}: levels per session (calls and practice)",
    )
    assignments = queries.rep_assignments(session, rep.id)
    practice_ids = [a.practice_interaction_id for a in assignments if a.practice_interaction_id]
    results = queries.practice_levels(session, [i for i in practice_ids if i is not None])
    titles = {s.slug: s.title for s in context.catalogue.scenarios()}
    evidence = {
        (s.interaction_id, cid): queries.evidence_turn(score.checks)
        for s in sessions
        for cid, score in s.scores.items()
    }
    return RepPage(
        rep=rep,
        team=session.get(Team, rep.team_id) if rep.team_id else None,
        period=period,
        progress=progress,
        criteria=criteria,
        sessions=sessions,
        chart=chart,
        assignments=[
            AssignmentRow(
                a,
                titles.get(a.scenario_slug, a.scenario_slug),
                results.get(a.practice_interaction_id) if a.practice_interaction_id else None,
            )
            for a in assignments
        ],
        triggers=queries.open_triggers(session, team_id=None, rep_ids=[rep.id]),
        threshold=rules.individual_below,
        evidence=evidence,
    )


# -- interaction page -----------------------------------------------------------------------


@dataclass
class Evidence:
    criterion_id: str
    name: str
    colour: int
    check_id: str
    question: str
    observed: bool
    quote: str | None
    turn: int | None
    start_s: float | None


@dataclass
class CriterionView:
    score_id: int
    criterion_id: str
    name: str
    behaviour: str
    level: int | None
    anchor: str | None
    colour: int
    moment: dict[str, Any] | None
    evidence: list[Evidence]
    good: dict[str, Any] | None
    gap: bool


@dataclass
class TurnPiece:
    text: str
    colour: int | None = None
    label: str | None = None


@dataclass
class TurnView:
    idx: int
    speaker: str
    start_s: float | None
    pieces: list[TurnPiece]
    evidence: list[Evidence]


@dataclass
class InteractionPage:
    interaction: Interaction
    rep: Person
    team: Team | None
    turns: list[TurnView]
    scored: ScoredInteraction | None
    evaluation: Evaluation | None
    unscored_reason: str | None
    criteria: list[CriterionView]
    disputes: list[Dispute]
    rubric: Rubric | None


def _split(text: str, marks: list[tuple[str, int, str]]) -> list[TurnPiece]:
    """Cut a turn's text so each evidence quote found in it is its own highlighted piece."""
    spans: list[tuple[int, int, int, str]] = []
    lowered = text.lower()
    for quote, colour, label in marks:
        at = lowered.find(quote.lower().strip()) if quote.strip() else -1
        if at < 0:
            continue
        end = at + len(quote.strip())
        if any(not (end <= s or at >= e) for s, e, _, _ in spans):
            continue  # overlapping quotes: the first one keeps the highlight
        spans.append((at, end, colour, label))
    spans.sort()
    pieces: list[TurnPiece] = []
    cursor = 0
    for start, end, colour, label in spans:
        if start > cursor:
            pieces.append(TurnPiece(text[cursor:start]))
        pieces.append(TurnPiece(text[start:end], colour, label))
        cursor = end
    if cursor < len(text):
        pieces.append(TurnPiece(text[cursor:]))
    return pieces or [TurnPiece(text)]


def _criterion(rubric: Rubric | None, criterion_id: str) -> Criterion | None:
    if rubric is None:
        return None
    return next((c for c in rubric.criteria if c.id == criterion_id), None)


def interaction_page(
    context: WebContext, session: Session, interaction: Interaction, rep: Person
) -> InteractionPage:
    assert interaction.id is not None
    turns = list(
        session.exec(
            select(Turn).where(Turn.interaction_id == interaction.id).order_by(col(Turn.idx))
        )
    )
    scored: ScoredInteraction | None
    try:
        scored = load_scored(session, interaction.id)
    except NotScoredError:
        scored = None
    evaluation = session.get(Evaluation, scored.evaluation_id) if scored else None
    unscored_reason = None
    if scored is None:
        last = session.exec(
            select(Evaluation)
            .where(Evaluation.interaction_id == interaction.id)
            .order_by(col(Evaluation.id).desc())
        ).first()
        unscored_reason = last.reason if last is not None else None
    rubric = context.rubric_cache.get(scored.rubric_version) if scored else None
    flag_below = context.rules.for_role(rep.role).session_flag_below
    criteria: list[CriterionView] = []
    by_turn: dict[int, list[Evidence]] = {}
    for index, score in enumerate(scored.scores if scored else []):
        criterion = _criterion(rubric, score.criterion_id)
        questions = {c.id: c.question for c in criterion.checks} if criterion else {}
        colour = index % HIGHLIGHTS
        name = criterion.name if criterion else score.criterion_id
        evidence = []
        for check in score.checks:
            if not isinstance(check, dict):
                continue
            item = Evidence(
                criterion_id=score.criterion_id,
                name=name,
                colour=colour,
                check_id=str(check.get("id", "")),
                question=questions.get(str(check.get("id", "")), str(check.get("id", ""))),
                observed=bool(check.get("observed")),
                quote=check.get("quote"),
                turn=check.get("turn"),
                start_s=check.get("start_s"),
            )
            evidence.append(item)
            if item.turn is not None and (item.quote or item.observed):
                by_turn.setdefault(int(item.turn), []).append(item)
        level = score.level
        criteria.append(
            CriterionView(
                score_id=score.score_id,
                criterion_id=score.criterion_id,
                name=name,
                behaviour=criterion.behaviour if criterion else "",
                level=level,
                anchor=criterion.levels[level].anchor.strip()  # type: ignore[index]
                if criterion is not None and level in (1, 2, 3)
                else None,
                colour=colour,
                moment=moment_for(criterion, level, score.checks),
                evidence=evidence,
                good=good_looks_like(criterion),
                gap=level is not None and level < flag_below,
            )
        )
    views = []
    for turn in turns:
        found = by_turn.get(turn.idx, [])
        marks = [(e.quote, e.colour, e.name) for e in found if e.quote]
        views.append(
            TurnView(
                idx=turn.idx,
                speaker=turn.speaker.value if hasattr(turn.speaker, "value") else str(turn.speaker),
                start_s=turn.start_s,
                pieces=_split(turn.text, marks),
                evidence=found,
            )
        )
    return InteractionPage(
        interaction=interaction,
        rep=rep,
        team=session.get(Team, interaction.team_id or rep.team_id)
        if (interaction.team_id or rep.team_id)
        else None,
        turns=views,
        scored=scored,
        evaluation=evaluation,
        unscored_reason=unscored_reason,
        criteria=criteria,
        disputes=queries.disputes_for(session, interaction.id),
        rubric=rubric,
    )


def started(interaction: Interaction) -> datetime:
    moment = queries.aware(interaction.started_at)
    assert moment is not None
    return moment
