"""Helpers the page routers share: rendering, flash messages, periods, safe redirects."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.requests import Request

from coaching.reports import Period, parse_period
from web.context import BadRequest, web_context

PERIOD_CHOICES = ("7d", "30d", "60d", "90d")


def page(
    request: Request, template: str, values: dict[str, Any], *, status: int = 200
) -> HTMLResponse:
    """Render a page; the signed-in viewer, CSRF token and flash messages come along."""
    flashes = request.session.pop("flash", []) if "flash" in request.session else []
    context = web_context(request)
    return context.templates.TemplateResponse(
        request, template, {**values, "flashes": flashes}, status_code=status
    )


def flash(request: Request, text: str, kind: str = "info") -> None:
    """A message shown once on the next page (after a redirect)."""
    messages = list(request.session.get("flash", []))
    messages.append({"kind": kind, "text": text})
    request.session["flash"] = messages[-5:]


def redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def safe_next(target: str | None) -> str:
    """Only a path on this site: never another host (`//evil`, `https://...`)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def period_of(text: str | None, today: date, default: str = "30d") -> Period:
    try:
        return parse_period(text or default, today)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
