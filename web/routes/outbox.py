"""The outbox page: every message coachloop has sent or would send, so the product works
without Slack. Reps see their own; managers also those to their reps; admins all."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from sqlmodel import Session, col, select
from starlette.requests import Request

from coaching.outbox import KINDS, STATUSES
from store.models import OutboxMessage, Person
from web.context import BadRequest, web_context
from web.permissions import Viewer, visible_people_clause
from web.routes._common import page
from web.security import require_viewer

router = APIRouter()
PAGE_SIZE = 50


def visible_messages(
    session: Session,
    viewer: Viewer,
    *,
    status: str | None = None,
    kind: str | None = None,
    before: int | None = None,
    limit: int = PAGE_SIZE,
) -> list[tuple[OutboxMessage, str]]:
    """Messages the viewer may read, newest first, with the recipient's name."""
    if status and status not in STATUSES:
        raise BadRequest(f"Status `{status}` is not one of {', '.join(STATUSES)}")
    if kind and kind not in KINDS:
        raise BadRequest(f"Kind `{kind}` is not one of {', '.join(KINDS)}")
    stmt: Any = select(OutboxMessage, Person.name).join(
        Person, col(Person.id) == col(OutboxMessage.recipient_id)
    )
    if not viewer.is_admin:
        stmt = stmt.where(visible_people_clause(viewer))
    if status:
        stmt = stmt.where(OutboxMessage.status == status)
    if kind:
        stmt = stmt.where(OutboxMessage.kind == kind)
    if before is not None:
        stmt = stmt.where(col(OutboxMessage.id) < before)
    stmt = stmt.order_by(col(OutboxMessage.id).desc()).limit(limit)
    return [(m, name) for m, name in session.exec(stmt)]


@router.get("/outbox")
def outbox_page(
    request: Request,
    status: str | None = None,
    kind: str | None = None,
    before: int | None = None,
) -> HTMLResponse:
    viewer = require_viewer(request)
    with Session(web_context(request).engine) as session:
        messages = visible_messages(
            session, viewer, status=status or None, kind=kind or None, before=before
        )
    older = messages[-1][0].id if len(messages) == PAGE_SIZE else None
    return page(
        request,
        "outbox.html",
        {
            "messages": messages,
            "status": status or "",
            "kind": kind or "",
            "statuses": STATUSES,
            "kinds": KINDS,
            "older": older,
        },
    )
