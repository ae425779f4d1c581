"""Sign in, sign out, and the front door that sends each person to their own start page."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.requests import Request

from web.context import web_context
from web.routes._common import page, redirect, safe_next
from web.security import end_session, start_session, viewer_or_none
from web.users import authenticate

router = APIRouter()


@router.get("/", response_model=None)
def home(request: Request) -> RedirectResponse:
    viewer = viewer_or_none(request)
    if viewer is None:
        return redirect("/login")
    if viewer.is_manager:
        return redirect("/teams")
    return redirect(f"/reps/{viewer.id}")


@router.get("/login", response_model=None)
def login_form(request: Request, next: str | None = None) -> HTMLResponse | RedirectResponse:
    if viewer_or_none(request) is not None:
        return redirect(safe_next(next))
    return page(request, "login.html", {"next": safe_next(next), "login": ""})


@router.post("/login", response_model=None)
def login(
    request: Request,
    username: Annotated[str, Form()],
    password: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/",
) -> HTMLResponse | RedirectResponse:
    context = web_context(request)
    web = context.settings.web
    result = authenticate(
        context.engine,
        username,
        password,
        now=context.now(),
        max_failures=web.max_failed_logins,
        lockout=timedelta(minutes=web.lockout_minutes),
    )
    if result.person is None:
        return page(
            request,
            "login.html",
            {"next": safe_next(next), "login": username, "error": result.problem},
            status=401,
        )
    start_session(request, result.person, result.password_hash)
    return redirect(safe_next(next))


@router.post("/logout")
def logout(request: Request) -> RedirectResponse:
    end_session(request)
    return redirect("/login")
