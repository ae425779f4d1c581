"""The JSON API behind the pages, for integrations: teams, reps, scores, triggers, reports,
cohort decisions and the outbox, under the same permission rules as the pages.

Authenticate with the session cookie (state-changing calls then send `X-CSRF-Token`), through
the trusted proxy header, or with HTTP Basic credentials (external id or e-mail, password).
The OpenAPI description is at `/api/openapi.json`, readable at `/api/docs`.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel
from sqlmodel import Session, col, select
from starlette.requests import Request

from coaching.errors import ApprovalError
from coaching.feedback import render_text
from coaching.reports import CoachingReport, TeamGaps, report, team_gaps, team_trend
from coaching.rubrics import criterion_names
from store.models import CoachingTrigger, CohortDecision, Interaction, Person, Team
from web import queries, views
from web.context import BadRequest, Conflict, Forbidden, NotFound, web_context
from web.permissions import Viewer, visible_teams
from web.routes._common import period_of
from web.routes.outbox import visible_messages
from web.routes.pages import can_see_interaction
from web.security import require_manager, require_viewer

router = APIRouter(tags=["coachloop"])
PERIOD_HELP = "`30d` (the last 30 days), `2026-11` (a month) or `2026-11-01..2026-11-30`."


class Me(BaseModel):
    id: int
    external_id: str
    name: str
    access: str
    team_ids: list[int]


class TeamOut(BaseModel):
    id: int
    slug: str
    name: str


class RepOut(BaseModel):
    id: int
    external_id: str
    name: str
    role: str | None
    team_id: int | None
    pilot: bool
    active: bool


class CheckOut(BaseModel):
    id: str
    observed: bool
    turn: int | None = None
    start_s: float | None = None
    quote: str | None = None


class ScoreOut(BaseModel):
    score_id: int
    interaction_id: int
    kind: str
    started_at: datetime
    criterion_id: str
    level: int | None
    evidence_turn: int | None
    """The transcript turn behind the level; the page anchor is `#turn-N`."""
    url: str
    checks: list[CheckOut]


class TrendPoint(BaseModel):
    bucket_start: date
    criterion_id: str
    mean: float | None
    n: int


class TriggerOut(BaseModel):
    id: int
    kind: str
    rep_id: int | None
    team_id: int | None
    criterion_id: str | None
    interaction_id: int | None
    observed_at: datetime
    value: float | None
    threshold: float | None
    status: str
    summary: str


class DecisionOut(BaseModel):
    id: int
    team_id: int
    criterion_id: str
    scenario_slug: str | None
    rep_ids: list[int]
    status: str
    expires_at: datetime
    decided_at: datetime | None
    decided_by: int | None


class DecisionIn(BaseModel):
    approved: bool


class MessageOut(BaseModel):
    id: int
    kind: str
    recipient_id: int
    recipient: str
    status: str
    created_at: datetime
    sent_at: datetime | None
    interaction_id: int | None
    text: str
    """A plain-text rendering of the payload."""
    payload: dict[str, Any]


def _team(session: Session, viewer: Viewer, slug: str) -> Team:
    team = queries.team_by_slug(session, slug)
    assert team.id is not None
    if not viewer.can_view_team(team.id):
        raise Forbidden("This team is not one of yours")
    return team


def _rep(session: Session, viewer: Viewer, rep_id: int) -> Person:
    rep = queries.person_by_id(session, rep_id)
    if not viewer.can_view_person(rep):
        raise Forbidden("This person's data is not yours to see")
    return rep


def _aware(moment: datetime) -> datetime:
    found = queries.aware(moment)
    assert found is not None
    return found


@router.get("/me", response_model=Me, summary="The signed-in person")
def me(request: Request) -> Me:
    viewer = require_viewer(request)
    return Me(
        id=viewer.id,
        external_id=viewer.external_id,
        name=viewer.name,
        access=str(viewer.access),
        team_ids=sorted(viewer.team_ids),
    )


@router.get("/teams", response_model=list[TeamOut], summary="Teams you may see")
def teams(request: Request) -> list[TeamOut]:
    viewer = require_viewer(request)
    with Session(web_context(request).engine) as session:
        found = visible_teams(session, viewer)
    return [TeamOut(id=t.id or 0, slug=t.slug, name=t.name) for t in found]


@router.get("/teams/{slug}/reps", response_model=list[RepOut], summary="A team's reps")
def team_reps(request: Request, slug: str) -> list[RepOut]:
    viewer = require_manager(request)
    with Session(web_context(request).engine) as session:
        team = _team(session, viewer, slug)
        assert team.id is not None
        reps = queries.team_reps(session, team.id)
    return [_rep_out(p) for p in reps]


def _rep_out(p: Person) -> RepOut:
    return RepOut(
        id=p.id or 0,
        external_id=p.external_id,
        name=p.name,
        role=p.role,
        team_id=p.team_id,
        pilot=p.pilot,
        active=p.active,
    )


@router.get(
    "/teams/{slug}/gaps",
    response_model=TeamGaps,
    summary="Per criterion and per rep: mean, distribution, share below threshold, trend",
)
def gaps(
    request: Request, slug: str, period: str = Query("30d", description=PERIOD_HELP)
) -> TeamGaps:
    viewer = require_manager(request)
    context = web_context(request)
    with Session(context.engine) as session:
        team = _team(session, viewer, slug)
    assert team.id is not None
    return team_gaps(
        context.engine, team.id, period_of(period, context.today()), rules=context.rules
    )


@router.get(
    "/teams/{slug}/trend",
    response_model=list[TrendPoint],
    summary="Criterion means per bucket of days, for trend charts",
)
def trend(
    request: Request,
    slug: str,
    period: str = Query("30d", description=PERIOD_HELP),
    bucket_days: int = Query(7, ge=1, le=92),
) -> list[dict[str, Any]]:
    viewer = require_manager(request)
    context = web_context(request)
    with Session(context.engine) as session:
        team = _team(session, viewer, slug)
    assert team.id is not None
    return team_trend(
        context.engine, team.id, period_of(period, context.today()), bucket_days=bucket_days
    )


@router.get(
    "/teams/{slug}/report",
    response_model=CoachingReport,
    summary="The coaching report with its 30- and 60-day checkpoints",
    description="Leading (criterion), process (coverage, time to feedback, notes) and lagging "
    "(imported outcomes) indicators, with practice transfer and pilot comparison. The "
    "checkpoints count from `since` (default: 59 days ago, so the 60-day window ends today).",
)
def team_report(request: Request, slug: str, since: date | None = None) -> CoachingReport:
    viewer = require_manager(request)
    context = web_context(request)
    with Session(context.engine) as session:
        team = _team(session, viewer, slug)
    assert team.id is not None
    today = context.today()
    start = since or today - timedelta(days=59)
    if start > today:
        raise BadRequest(f"`since` is {start}, after today; give a past date")
    return report(
        context.engine,
        team.id,
        start,
        today + timedelta(days=1),
        rules=context.rules,
        now=context.now(),
    )


@router.get("/reps/{rep_id}", response_model=RepOut, summary="One rep")
def rep(request: Request, rep_id: int) -> RepOut:
    viewer = require_viewer(request)
    with Session(web_context(request).engine) as session:
        return _rep_out(_rep(session, viewer, rep_id))


@router.get(
    "/reps/{rep_id}/scores",
    response_model=list[ScoreOut],
    summary="A rep's scores per session (calls and practice), each with its evidence",
)
def rep_scores(
    request: Request,
    rep_id: int,
    period: str = Query("30d", description=PERIOD_HELP),
    limit: int = Query(200, ge=1, le=1000),
) -> list[ScoreOut]:
    viewer = require_viewer(request)
    context = web_context(request)
    chosen = period_of(period, context.today())
    with Session(context.engine) as session:
        _rep(session, viewer, rep_id)
    sessions = queries.rep_sessions(
        context.engine, rep_id, chosen.start_at, chosen.end_at, limit=limit
    )
    result = []
    for s in sessions:
        for cid, score in s.scores.items():
            turn = queries.evidence_turn(score.checks)
            result.append(
                ScoreOut(
                    score_id=score.score_id,
                    interaction_id=s.interaction_id,
                    kind=s.kind,
                    started_at=s.started_at,
                    criterion_id=cid,
                    level=score.level,
                    evidence_turn=turn,
                    url=f"/interactions/{s.interaction_id}"
                    + (f"#turn-{turn}" if turn is not None else ""),
                    checks=[
                        CheckOut(
                            id=str(c.get("id", "")),
                            observed=bool(c.get("observed")),
                            turn=c.get("turn"),
                            start_s=c.get("start_s"),
                            quote=c.get("quote"),
                        )
                        for c in score.checks
                        if isinstance(c, dict)
                    ],
                )
            )
    return result


@router.get(
    "/interactions/{interaction_id}",
    summary="A conversation: its turns and its scores with evidence",
)
def interaction(request: Request, interaction_id: int) -> dict[str, Any]:
    viewer = require_viewer(request)
    context = web_context(request)
    with Session(context.engine) as session:
        found = session.get(Interaction, interaction_id)
        if found is None:
            raise NotFound(f"No interaction `{interaction_id}`")
        person = queries.person_by_id(session, found.rep_id)
        if not can_see_interaction(viewer, found, person):
            raise Forbidden("This conversation is not yours to see")
        view = views.interaction_page(context, session, found, person)
    return {
        "id": found.id,
        "external_id": found.external_id,
        "kind": str(found.kind),
        "channel": found.channel,
        "rep_id": found.rep_id,
        "team_id": found.team_id,
        "started_at": _aware(found.started_at).isoformat(),
        "turns": [
            {
                "idx": t.idx,
                "speaker": t.speaker,
                "start_s": t.start_s,
                "text": "".join(p.text for p in t.pieces),
            }  # fmt: skip
            for t in view.turns
        ],
        "scores": [
            {
                "score_id": c.score_id,
                "criterion_id": c.criterion_id,
                "name": c.name,
                "level": c.level,
                "moment": c.moment,
                "checks": [
                    {
                        "id": e.check_id,
                        "observed": e.observed,
                        "turn": e.turn,
                        "start_s": e.start_s,
                        "quote": e.quote,
                    }  # fmt: skip
                    for e in c.evidence
                ],
            }
            for c in view.criteria
        ],
        "unscored_reason": view.unscored_reason,
    }


@router.get("/triggers", response_model=list[TriggerOut], summary="Coaching triggers you may see")
def triggers(
    request: Request,
    team: str | None = None,
    rep_id: int | None = None,
    status: Literal["open", "merged", "resolved"] = "open",
    limit: int = Query(100, ge=1, le=1000),
) -> list[TriggerOut]:
    viewer = require_viewer(request)
    context = web_context(request)
    t = CoachingTrigger
    with Session(context.engine) as session:
        stmt: Any = select(t).where(t.status == status)
        if team is not None:
            found = _team(session, viewer, team)
            stmt = stmt.where(t.team_id == found.id)
        elif rep_id is not None:
            _rep(session, viewer, rep_id)
            stmt = stmt.where(t.rep_id == rep_id)
        elif not viewer.is_admin:
            people = [viewer.id, *viewer.report_ids]
            if viewer.is_manager:
                people += [
                    p
                    for p in session.exec(
                        select(Person.id).where(col(Person.team_id).in_(sorted(viewer.team_ids)))
                    )
                    if p is not None
                ]
            stmt = stmt.where(
                col(t.rep_id).in_(people) | col(t.team_id).in_(sorted(viewer.team_ids))
            )
        rows = session.exec(stmt.order_by(col(t.observed_at).desc()).limit(limit)).all()
    return [
        TriggerOut(
            id=r.id or 0,
            kind=r.kind,
            rep_id=r.rep_id,
            team_id=r.team_id,
            criterion_id=r.criterion_id,
            interaction_id=r.interaction_id,
            observed_at=_aware(r.observed_at),
            value=r.value,
            threshold=r.threshold,
            status=r.status,
            summary=str(r.why.get("summary", "")),
        )
        for r in rows
    ]


def _decision_out(d: CohortDecision) -> DecisionOut:
    return DecisionOut(
        id=d.id or 0,
        team_id=d.team_id,
        criterion_id=d.criterion_id,
        scenario_slug=d.scenario_slug,
        rep_ids=list(d.rep_ids),
        status=d.status,
        expires_at=_aware(d.expires_at),
        decided_at=queries.aware(d.decided_at),
        decided_by=d.decided_by,
    )


@router.get(
    "/teams/{slug}/cohort-decisions",
    response_model=list[DecisionOut],
    summary="Cohort responses: pending first, then recent decisions",
)
def decisions(request: Request, slug: str) -> list[DecisionOut]:
    viewer = require_manager(request)
    with Session(web_context(request).engine) as session:
        team = _team(session, viewer, slug)
        assert team.id is not None
        return [_decision_out(d) for d in queries.cohort_decisions(session, team.id)]


@router.post(
    "/cohort-decisions/{decision_id}",
    response_model=DecisionOut,
    summary="Approve or decline a pending cohort response",
)
def decide(request: Request, decision_id: int, body: DecisionIn) -> DecisionOut:
    viewer = require_manager(request)
    context = web_context(request)
    with Session(context.engine) as session:
        decision = session.get(CohortDecision, decision_id)
        if decision is None or not viewer.can_view_team(decision.team_id):
            raise NotFound(f"No cohort decision `{decision_id}` in your teams")
    try:
        with context.pipeline() as pipeline:
            pipeline.decide_cohort(decision_id, approved=body.approved, by=viewer.id)
    except ApprovalError as exc:
        raise Conflict(str(exc)) from None
    with Session(context.engine) as session:
        decided = session.get(CohortDecision, decision_id)
        assert decided is not None
        return _decision_out(decided)


@router.get("/outbox", response_model=list[MessageOut], summary="Messages you may read")
def outbox(
    request: Request,
    status: str | None = None,
    kind: str | None = None,
    before: int | None = None,
    limit: int = Query(50, ge=1, le=500),
) -> list[MessageOut]:
    viewer = require_viewer(request)
    with Session(web_context(request).engine) as session:
        rows = visible_messages(
            session, viewer, status=status, kind=kind, before=before, limit=limit
        )
    return [
        MessageOut(
            id=m.id or 0,
            kind=m.kind,
            recipient_id=m.recipient_id,
            recipient=name,
            status=m.status,
            created_at=_aware(m.created_at),
            sent_at=queries.aware(m.sent_at),
            interaction_id=m.interaction_id,
            text=render_text(m.kind, m.payload),
            payload=m.payload,
        )
        for m, name in rows
    ]


@router.get("/criteria", summary="Criterion ids and names across the stored rubrics")
def criteria(request: Request) -> dict[str, str]:
    require_viewer(request)
    return criterion_names(web_context(request).engine)


@router.get("/docs", include_in_schema=False)
def docs(request: Request) -> HTMLResponse:
    """The API's endpoints, read from the OpenAPI description (no scripts, no CDN)."""
    from web.routes._common import page

    schema = request.app.openapi()
    operations = []
    for path, methods in schema.get("paths", {}).items():
        for method, spec in methods.items():
            operations.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "summary": spec.get("summary", ""),
                    "description": spec.get("description", ""),
                    "parameters": [
                        {
                            "name": p.get("name"),
                            "where": p.get("in"),
                            "required": p.get("required", False),
                            "description": p.get("description", ""),
                        }
                        for p in spec.get("parameters", [])
                    ],
                }
            )
    return page(request, "api_docs.html", {"operations": operations})
