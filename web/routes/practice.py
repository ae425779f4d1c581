"""Practice pages. The text chat lives here: pick a scenario (or an assignment), talk to the
persona turn by turn, end the session and read the scored feedback.

The voice practice page belongs in this router too (`/practice/voice/...`), next to the chat;
the "Practice" link in the navigation leads here.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlmodel import Session, col, select
from starlette.requests import Request

from scenarios import PracticeDriver, ScenarioError, SessionNotFoundError
from store.models import Assignment, Person
from web.context import Forbidden, NotFound, Unavailable, web_context
from web.permissions import Viewer
from web.routes._common import flash, page, redirect
from web.security import require_viewer

router = APIRouter()
KEPT_SESSIONS = 20


def _driver(request: Request) -> PracticeDriver:
    service = web_context(request).practice
    if service is None or service.driver is None:
        raise Unavailable("Practice is not running on this server; start it with `coachloop serve`")
    return service.driver


def _own(request: Request, session_id: str) -> None:
    """A practice session is only ever reachable by the person who started it."""
    if session_id not in request.session.get("practice", []):
        raise Forbidden("This practice session is not yours")


def _remember(request: Request, session_id: str) -> None:
    kept = [s for s in request.session.get("practice", []) if s != session_id]
    request.session["practice"] = (kept + [session_id])[-KEPT_SESSIONS:]


def _role(request: Request, viewer: Viewer) -> str | None:
    with Session(web_context(request).engine) as session:
        person = session.get(Person, viewer.id)
    return person.role if person else None


@router.get("/practice")
def practice_home(request: Request) -> HTMLResponse:
    viewer = require_viewer(request)
    context = web_context(request)
    service = context.practice
    role = _role(request, viewer)
    scenarios: list[Any] = []
    if service is not None:
        scenarios = service.library.find(role=role) if role else service.library.all()
        if not scenarios:
            scenarios = service.library.all()
    with Session(context.engine) as session:
        assignments = list(
            session.exec(
                select(Assignment)
                .where(Assignment.rep_id == viewer.id, Assignment.status == "open")
                .order_by(col(Assignment.created_at))
            )
        )
    return page(
        request,
        "practice.html",
        {"scenarios": scenarios, "assignments": assignments, "available": service is not None},
    )


@router.post("/practice/start")
async def start(
    request: Request,
    scenario: Annotated[str, Form()],
    assignment_id: Annotated[int | None, Form()] = None,
) -> RedirectResponse:
    viewer = require_viewer(request)
    driver = _driver(request)
    try:
        started = await driver.start_session(
            scenario,
            rep_external_id=viewer.external_id,
            assignment_id=assignment_id,
            channel="chat",
        )
    except ScenarioError as exc:
        flash(request, str(exc), "error")
        return redirect("/practice")
    _remember(request, started.session_id)
    return redirect(f"/practice/sessions/{started.session_id}")


@router.get("/practice/sessions/{session_id}")
async def session_page(request: Request, session_id: str) -> HTMLResponse:
    require_viewer(request)
    _own(request, session_id)
    driver = _driver(request)
    try:
        view = await driver.get_session(session_id)
    except SessionNotFoundError:
        raise NotFound(f"No practice session `{session_id}`") from None
    scenario = driver.library.get(view.scenario)
    persona = driver.library.persona_for(scenario)
    return page(
        request,
        "practice_session.html",
        {"view": view, "scenario": scenario, "persona": persona, "session_id": session_id},
    )


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


@router.post("/practice/sessions/{session_id}/turn", response_model=None)
async def send_turn(
    request: Request, session_id: str, text: Annotated[str, Form()] = ""
) -> Response:
    require_viewer(request)
    _own(request, session_id)
    driver = _driver(request)
    try:
        turn = await driver.send_rep_turn(session_id, text[:2000])
    except SessionNotFoundError:
        raise NotFound(f"No practice session `{session_id}`") from None
    if _wants_json(request):
        return JSONResponse(
            {
                "persona": turn.text,
                "ended": turn.ended,
                "turns_left": turn.turns_left,
                "emotion": str(turn.emotion),
            }
        )
    return redirect(f"/practice/sessions/{session_id}#latest")


@router.post("/practice/sessions/{session_id}/end")
async def end(request: Request, session_id: str) -> RedirectResponse:
    require_viewer(request)
    _own(request, session_id)
    driver = _driver(request)
    try:
        await driver.end_session(session_id)
    except SessionNotFoundError:
        raise NotFound(f"No practice session `{session_id}`") from None
    return redirect(f"/practice/sessions/{session_id}#feedback")
