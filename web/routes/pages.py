"""The team dashboard, the rep page, the interaction page, and the actions taken from them:
approving a cohort response, disputing a score, resolving a dispute."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlmodel import Session
from starlette.requests import Request

from coaching.disputes import open_dispute, resolve_dispute
from coaching.errors import ApprovalError, CoachingError
from coaching.rubrics import criterion_names
from store.models import CohortDecision, Dispute, Interaction, Person, Score
from web import queries, views
from web.context import BadRequest, Forbidden, NotFound, web_context
from web.permissions import Viewer, visible_teams
from web.routes._common import PERIOD_CHOICES, flash, page, period_of, redirect
from web.security import require_manager, require_viewer

router = APIRouter()


def can_see_interaction(viewer: Viewer, interaction: Interaction, rep: Person) -> bool:
    if viewer.can_view_person(rep):
        return True
    return interaction.team_id is not None and viewer.can_view_team(interaction.team_id)


@router.get("/teams", response_model=None)
def teams(request: Request) -> HTMLResponse | RedirectResponse:
    viewer = require_viewer(request)
    if not viewer.is_manager:
        return redirect(f"/reps/{viewer.id}")
    with Session(web_context(request).engine) as session:
        found = visible_teams(session, viewer)
    if len(found) == 1:
        return redirect(f"/teams/{found[0].slug}")
    return page(request, "teams.html", {"teams": found})


@router.get("/teams/{slug}")
def team_dashboard(
    request: Request,
    slug: str,
    period: str | None = None,
    rep: int | None = None,
    since: str | None = None,
) -> HTMLResponse:
    viewer = require_manager(request)
    context = web_context(request)
    chosen = period_of(period, context.today())
    start = _since(since)
    with Session(context.engine) as session:
        team = queries.team_by_slug(session, slug)
        assert team.id is not None
        if not viewer.can_view_team(team.id):
            raise Forbidden("This team is not one of yours")
        board = views.dashboard(context, session, team, chosen, rep_id=rep, since=start)
        others = visible_teams(session, viewer)
    return page(
        request,
        "dashboard.html",
        {
            "d": board,
            "teams": others,
            "period_text": period or "30d",
            "period_choices": PERIOD_CHOICES,
        },
    )


@router.get("/teams/{slug}/checkpoints")
def team_checkpoints(
    request: Request, slug: str, since: str | None = None, fragment: bool = False
) -> HTMLResponse:
    """The 30- and 60-day checkpoints: a page of their own, or (`fragment`) the part the
    dashboard loads after the rest of the page."""
    viewer = require_manager(request)
    context = web_context(request)
    start = _since(since)
    with Session(context.engine) as session:
        team = queries.team_by_slug(session, slug)
        assert team.id is not None
        if not viewer.can_view_team(team.id):
            raise Forbidden("This team is not one of yours")
    found, start = views.checkpoints(context, team, start)
    values = {
        "team": team,
        "report": found,
        "since": start,
        "names": criterion_names(context.engine),
    }
    if fragment:
        return context.templates.TemplateResponse(request, "_checkpoints.html", values)
    return page(request, "checkpoints.html", values)


def _since(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        raise BadRequest(f"`since` is `{text}`; write the date as YYYY-MM-DD") from None


@router.post("/teams/{slug}/cohort-decisions/{decision_id}")
def decide_cohort(
    request: Request,
    slug: str,
    decision_id: int,
    action: Annotated[str, Form()],
) -> RedirectResponse:
    viewer = require_manager(request)
    context = web_context(request)
    if action not in ("approve", "decline"):
        raise BadRequest(f"Action `{action}` is not approve or decline")
    with Session(context.engine) as session:
        team = queries.team_by_slug(session, slug)
        assert team.id is not None
        if not viewer.can_view_team(team.id):
            raise Forbidden("This team is not one of yours")
        decision = session.get(CohortDecision, decision_id)
        if decision is None or decision.team_id != team.id:
            raise NotFound(f"No cohort decision `{decision_id}` for this team")
    try:
        with context.pipeline() as pipeline:
            result = pipeline.decide_cohort(decision_id, approved=action == "approve", by=viewer.id)
    except ApprovalError as exc:
        flash(request, str(exc), "error")
    else:
        flash(request, f"Cohort response {decision_id}: {result.get('status')}")
    return redirect(f"/teams/{slug}#cohort")


@router.get("/reps/{rep_id}")
def rep_detail(request: Request, rep_id: int, period: str | None = None) -> HTMLResponse:
    viewer = require_viewer(request)
    context = web_context(request)
    chosen = period_of(period, context.today())
    with Session(context.engine) as session:
        rep = queries.person_by_id(session, rep_id)
        if not viewer.can_view_person(rep):
            raise Forbidden("You can only see your own scores" if not viewer.is_manager else
                            "This rep is not in one of your teams")  # fmt: skip
        view = views.rep_page(context, session, rep, chosen)
    return page(
        request,
        "rep.html",
        {"r": view, "period_text": period or "30d", "period_choices": PERIOD_CHOICES},
    )


def _interaction_and_rep(
    session: Session, viewer: Viewer, interaction_id: int
) -> tuple[Interaction, Person]:
    interaction = session.get(Interaction, interaction_id)
    if interaction is None:
        raise NotFound(f"No interaction `{interaction_id}`")
    rep = queries.person_by_id(session, interaction.rep_id)
    if not can_see_interaction(viewer, interaction, rep):
        raise Forbidden("This conversation is not yours to see")
    return interaction, rep


@router.get("/interactions/{interaction_id}")
def interaction_detail(request: Request, interaction_id: int) -> HTMLResponse:
    viewer = require_viewer(request)
    context = web_context(request)
    with Session(context.engine) as session:
        interaction, rep = _interaction_and_rep(session, viewer, interaction_id)
        view = views.interaction_page(context, session, interaction, rep)
    open_disputes = {d.score_id for d in view.disputes if d.status == "open"}
    return page(
        request,
        "interaction.html",
        {
            "v": view,
            "is_rep": viewer.id == rep.id,
            "can_resolve": viewer.is_manager and viewer.id != rep.id,
            "disputable": [c for c in view.criteria if c.score_id not in open_disputes],
        },
    )


@router.post("/interactions/{interaction_id}/disputes")
def dispute_score(
    request: Request,
    interaction_id: int,
    score_id: Annotated[int, Form()],
    reason: Annotated[str, Form()],
) -> RedirectResponse:
    viewer = require_viewer(request)
    context = web_context(request)
    with Session(context.engine) as session:
        interaction, rep = _interaction_and_rep(session, viewer, interaction_id)
        if viewer.id != rep.id:
            raise Forbidden("Only the rep whose conversation this is can dispute its scores")
        score = session.get(Score, score_id)
        if score is None or score.interaction_id != interaction.id:
            raise NotFound(f"No score `{score_id}` on this conversation")
    if not reason.strip():
        flash(request, "Say what the score missed, so your manager can look at it", "error")
        return redirect(f"/interactions/{interaction_id}#dispute")
    try:
        dispute = open_dispute(context.engine, score_id, reason[:2000], context.now())
    except CoachingError as exc:
        flash(request, str(exc), "error")
    else:
        flash(request, f"Dispute {dispute.id} sent to your manager")
    return redirect(f"/interactions/{interaction_id}#dispute")


@router.post("/disputes/{dispute_id}/resolve")
def resolve(
    request: Request,
    dispute_id: int,
    outcome: Annotated[str, Form()],
    resolution: Annotated[str, Form()] = "",
) -> RedirectResponse:
    viewer = require_manager(request)
    context = web_context(request)
    if outcome not in ("upheld", "changed"):
        raise BadRequest(f"Outcome `{outcome}` is not upheld or changed")
    with Session(context.engine) as session:
        dispute = session.get(Dispute, dispute_id)
        if dispute is None:
            raise NotFound(f"No dispute `{dispute_id}`")
        interaction, rep = _interaction_and_rep(session, viewer, dispute.interaction_id)
        if viewer.id == rep.id:
            raise Forbidden("A dispute of your own score goes to your manager")
    try:
        resolve_dispute(
            context.engine,
            dispute_id,
            by=viewer.id,
            upheld=outcome == "upheld",
            resolution=resolution.strip()[:2000],
            now=context.now(),
        )
    except CoachingError as exc:
        flash(request, str(exc), "error")
    else:
        flash(request, f"Dispute {dispute_id}: {outcome}")
    return redirect(f"/interactions/{interaction.id}#dispute")
