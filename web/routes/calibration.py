"""The calibration page: raters score a set of calls in the browser, blind to the judge and
to each other until they submit; then the agreement report, the diverging calls and the
go-live gate. Admins draw sets and record the gate."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlmodel import Session, col, select
from starlette.requests import Request

from evaluators.calibration import CalibrationError, calibration_report, parse_level
from store.models import Interaction, Turn
from web import calibration as sets
from web.context import BadRequest, Forbidden, NotFound, WebContext, web_context
from web.permissions import Viewer
from web.routes._common import flash, page, redirect
from web.security import require_admin, require_manager

router = APIRouter()


def _set_name(name: str) -> str:
    try:
        return sets.valid_name(name)
    except sets.CalibrationSetError as exc:
        raise BadRequest(str(exc)) from None


def may_see_report(session: Session, viewer: Viewer, name: str) -> bool:
    """After submitting; or an admin who is not rating this set."""
    if sets.submitted(session, name, viewer.external_id):
        return True
    return viewer.is_admin and viewer.external_id not in sets.raters_of(session, name)


@router.get("/calibration")
def calibration_home(request: Request) -> HTMLResponse:
    viewer = require_manager(request)
    context = web_context(request)
    with Session(context.engine) as session:
        found = sets.list_sets(session)
    return page(
        request,
        "calibration_sets.html",
        {"sets": found, "roles": context.rubrics.roles, "me": viewer.external_id},
    )


@router.post("/calibration/sets")
def draw_set(
    request: Request,
    name: Annotated[str, Form()],
    role: Annotated[str, Form()],
    size: Annotated[int, Form()] = 10,
) -> RedirectResponse:
    viewer = require_admin(request)
    context = web_context(request)
    try:
        added = sets.draw_set(
            context.engine, name, role=role, size=size, by=viewer.id, now=context.now()
        )
    except sets.CalibrationSetError as exc:
        flash(request, str(exc), "error")
        return redirect("/calibration")
    flash(request, f"Added {added} calls to `{name.strip()}`")
    return redirect(f"/calibration/{name.strip()}")


@router.get("/calibration/{name}")
def calibration_set(request: Request, name: str) -> HTMLResponse:
    viewer = require_manager(request)
    context = web_context(request)
    name = _set_name(name)
    with Session(context.engine) as session:
        items = sets.rater_items(session, context.rubrics, name, viewer.external_id)
        if not items:
            raise NotFound(f"No calibration set `{name}`")
        done = sets.submitted(session, name, viewer.external_id)
        report_open = may_see_report(session, viewer, name)
    return page(
        request,
        "calibration_set.html",
        {
            "name": name,
            "items": items,
            "submitted": done,
            "report_open": report_open,
            "complete": all(i.done for i in items),
            "rated": sum(1 for i in items if i.done),
        },
    )


@router.get("/calibration/{name}/calls/{interaction_id}")
def rate_call(request: Request, name: str, interaction_id: int) -> HTMLResponse:
    viewer = require_manager(request)
    context = web_context(request)
    name = _set_name(name)
    with Session(context.engine) as session:
        items = sets.rater_items(session, context.rubrics, name, viewer.external_id)
        index = next((k for k, i in enumerate(items) if i.interaction_id == interaction_id), None)
        if index is None:
            raise NotFound(f"Call `{interaction_id}` is not in set `{name}`")
        turns = list(
            session.exec(
                select(Turn).where(Turn.interaction_id == interaction_id).order_by(col(Turn.idx))
            )
        )
        interaction = session.get(Interaction, interaction_id)
        done = sets.submitted(session, name, viewer.external_id)
    item = items[index]
    return page(
        request,
        "calibration_rate.html",
        {
            "name": name,
            "item": item,
            "interaction": interaction,
            "turns": turns,
            "position": index + 1,
            "total": len(items),
            "previous": items[index - 1].interaction_id if index > 0 else None,
            "following": items[index + 1].interaction_id if index + 1 < len(items) else None,
            "submitted": done,
        },
    )


@router.post("/calibration/{name}/calls/{interaction_id}")
async def save_call(request: Request, name: str, interaction_id: int) -> RedirectResponse:
    viewer = require_manager(request)
    context = web_context(request)
    name = _set_name(name)
    form = await request.form()
    levels: dict[str, int | None] = {}
    for key, value in form.multi_items():
        if not key.startswith("level-") or not isinstance(value, str) or not value:
            continue
        try:
            levels[key[len("level-") :]] = parse_level(value)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
    try:
        stored = await _in_thread(
            sets.save_levels,
            context.engine,
            context.rubrics,
            name,
            viewer.external_id,
            interaction_id,
            levels,
        )
    except sets.CalibrationSetError as exc:
        flash(request, str(exc), "error")
        return redirect(f"/calibration/{name}/calls/{interaction_id}")
    flash(request, f"Saved {stored} levels")
    with Session(context.engine) as session:
        items = sets.rater_items(session, context.rubrics, name, viewer.external_id)
    next_item = next((i for i in items if not i.done), None)
    if next_item is None:
        return redirect(f"/calibration/{name}#submit")
    return redirect(f"/calibration/{name}/calls/{next_item.interaction_id}")


@router.post("/calibration/{name}/submit")
def submit_set(request: Request, name: str) -> RedirectResponse:
    viewer = require_manager(request)
    context = web_context(request)
    name = _set_name(name)
    try:
        sets.submit(context.engine, context.rubrics, name, viewer.external_id, now=context.now())
    except sets.CalibrationSetError as exc:
        flash(request, str(exc), "error")
        return redirect(f"/calibration/{name}")
    flash(request, "Submitted: the agreement report is open to you now")
    return redirect(f"/calibration/{name}/report")


def _report(context: WebContext, name: str, *, record: bool) -> Any:
    try:
        return calibration_report(
            context.engine,
            context.rubrics,
            context.settings.calibration,
            set_name=name,
            record=record,
            now=context.now(),
        )
    except CalibrationError as exc:
        raise BadRequest(str(exc)) from None


@router.get("/calibration/{name}/report")
def set_report(request: Request, name: str) -> HTMLResponse:
    viewer = require_manager(request)
    context = web_context(request)
    name = _set_name(name)
    with Session(context.engine) as session:
        if not sets.rater_items(session, context.rubrics, name, viewer.external_id):
            raise NotFound(f"No calibration set `{name}`")
        if not may_see_report(session, viewer, name):
            raise Forbidden(
                "Submit your own levels for this set first; until then you see only yours"
            )
        submitted = [s for s in sets.list_sets(session) if s.name == name]
    result = _report(context, name, record=False)
    shown = [r for r in result.rubrics if any(c.calls for c in r.criteria)]
    return page(
        request,
        "calibration_report.html",
        {
            "name": name,
            "report": result,
            "rubrics": shown,
            "settings": context.settings.calibration,
            "submitted_by": submitted[0].submitted if submitted else [],
        },
    )


@router.post("/calibration/{name}/gate")
def record_gate(request: Request, name: str) -> RedirectResponse:
    require_admin(request)
    context = web_context(request)
    name = _set_name(name)
    result = _report(context, name, record=True)
    recorded = [r for r in result.rubrics if r.recorded]
    live = [c.criterion.id for r in recorded for c in r.criteria if c.live]
    if recorded:
        flash(request, f"Gate recorded; live criteria: {', '.join(live) or 'none'}")
    else:
        flash(request, "Nothing recorded: no judge has scored these calls yet", "error")
    return redirect(f"/calibration/{name}/report")


async def _in_thread(function: Any, *args: Any) -> Any:
    import anyio

    return await anyio.to_thread.run_sync(function, *args)
