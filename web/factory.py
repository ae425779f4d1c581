"""`create_app`: the FastAPI application behind `coachloop serve`.

Other edges mount onto the returned app (the Slack bot's HTTP handler takes `/slack/*`, which
this app leaves free); nothing here imports them.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.engine import Engine
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coaching.catalogue import ScenarioCatalogue, StaticCatalogue
from coaching.rubrics import RubricCache
from config.coaching import CoachingRules
from config.rubric import RubricLibrary
from config.settings import Settings
from store.models import utcnow
from web import render
from web.context import NotSignedIn, WebContext, WebError
from web.practice_service import PracticeService
from web.security import check_csrf, csrf_token, viewer_or_none

if TYPE_CHECKING:
    from voice.practice import VoicePractice

logger = logging.getLogger(__name__)

WEB_DIR = Path(__file__).parent
SECRET_FILE = "web-secret"
SESSION_COOKIE = "coachloop_session"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; "
    "form-action 'self'"
)


def resolve_secret(settings: Settings) -> str:
    """The session signing key: from settings, else generated once and kept under data_dir."""
    if settings.web.secret_key is not None:
        value = settings.web.secret_key.get_secret_value()
        if len(value) < 32:
            raise ValueError(
                "COACHLOOP_WEB__SECRET_KEY is shorter than 32 characters; use a long random "
                "value, or unset it to let coachloop generate one"
            )
        return value
    path = settings.data_dir / SECRET_FILE
    if path.is_file():
        value = path.read_text(encoding="ascii").strip()
        if len(value) >= 32:
            return value
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(value + "\n")
    logger.info("session secret generated", extra={"path": str(path)})
    return value


def content_security_policy(settings: Settings) -> str:
    """The page policy; with LiveKit configured, pages may also connect to its server."""
    origin = _livekit_origin(settings.livekit.client_url) if settings.livekit.enabled else None
    if origin is None:
        return CONTENT_SECURITY_POLICY
    return CONTENT_SECURITY_POLICY.replace("connect-src 'self'", f"connect-src 'self' {origin}")


def _livekit_origin(url: str | None) -> str | None:
    from urllib.parse import urlsplit

    if not url:
        return None
    parts = urlsplit(url)
    secure = parts.scheme in ("wss", "https")
    if not parts.netloc or parts.scheme not in ("ws", "wss", "http", "https"):
        return None
    # the client signals over a WebSocket and checks the server over HTTP on failure
    ws, http = ("wss", "https") if secure else ("ws", "http")
    return f"{ws}://{parts.netloc} {http}://{parts.netloc}"


class ResponseHeaders:
    """Adds security headers and a `Server-Timing` entry with the time spent in the app."""

    def __init__(self, app: ASGIApp, policy: str = CONTENT_SECURITY_POLICY) -> None:
        self.app = app
        self.policy = policy.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                elapsed = (time.perf_counter() - started) * 1000
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                extra = [
                    (b"server-timing", f"app;dur={elapsed:.1f}".encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                    (b"x-frame-options", b"DENY"),
                ]
                if b"content-security-policy" not in present:
                    extra.append((b"content-security-policy", self.policy))
                message["headers"] = headers + [(k, v) for k, v in extra if k not in present]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(WEB_DIR / "templates"))
    env = templates.env
    env.filters.update(
        fmt=render.fmt,
        pct=render.pct,
        signed=render.signed,
        when=render.when,
        clock=render.clock_time,
        level_style=render.level_style,
    )

    def context_processor(request: Request) -> dict[str, Any]:
        viewer = getattr(request.state, "viewer", None)
        practice = request.app.state.web.practice
        return {
            "viewer": viewer,
            "csrf_token": csrf_token(request),
            "practice_enabled": practice is not None,
        }

    templates.context_processors.append(context_processor)
    return templates


def create_app(
    *,
    engine: Engine,
    settings: Settings,
    rubrics: RubricLibrary,
    rules: CoachingRules | None = None,
    catalogue: ScenarioCatalogue | None = None,
    practice: PracticeService | None = None,
    voice: VoicePractice | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> FastAPI:
    """The web app: dashboard, rep, interaction, calibration, outbox and practice pages, and
    the JSON API under `/api`.

    Args:
        engine: A migrated database.
        settings: Process settings; `settings.web` configures sessions and sign-in.
        rubrics: The organisation's rubrics.
        rules: Coaching rules (thresholds, the feedback target); default the shipped ones.
        catalogue: Practice scenarios that cohort decisions may assign.
        practice: The practice driver for the text chat; None hides practice.
        voice: Voice practice over the WebSocket (its models load at start-up, unless
            already loaded); None leaves voice practice out.
        clock: Now, in UTC; tests fix it.
    """
    from web.routes import (
        api,
        auth,
        calibration,
        livekit as livekit_routes,
        outbox,
        pages,
        practice as practice_routes,
        voice as voice_routes,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if practice is not None:
            await practice.start()
        if voice is not None and not voice.loaded:
            await _load_voice(app, voice)
        try:
            yield
        finally:
            if practice is not None:
                await practice.stop()

    app = FastAPI(
        title="coachloop",
        summary="Criteria-based coaching: teams, reps, scores, triggers, reports and messages.",
        version="1",
        docs_url=None,  # the interactive docs load scripts from a CDN; /api/docs is offline
        redoc_url=None,
        openapi_url="/api/openapi.json",
        lifespan=lifespan,
    )
    app.state.web = WebContext(
        engine=engine,
        settings=settings,
        rubrics=rubrics,
        rules=rules or CoachingRules(),
        catalogue=catalogue or StaticCatalogue(),
        clock=clock,
        templates=_templates(),
        rubric_cache=RubricCache(engine, list(rubrics.rubrics)),
        practice=practice,
    )
    app.add_middleware(
        SessionMiddleware,
        secret_key=resolve_secret(settings),
        session_cookie=SESSION_COOKIE,
        max_age=int(settings.web.session_hours * 3600),
        same_site="lax",
        https_only=settings.web.https_only,
    )
    app.add_middleware(ResponseHeaders, policy=content_security_policy(settings))
    app.mount("/static", StaticFiles(directory=WEB_DIR / "static"), name="static")

    protected = [Depends(check_csrf)]
    for module in (auth, pages, calibration, outbox, practice_routes):
        app.include_router(module.router, dependencies=protected, include_in_schema=False)
    app.include_router(api.router, prefix="/api", dependencies=protected)
    app.include_router(livekit_routes.router, prefix="/api", dependencies=protected)
    # a page and a WebSocket only: nothing here takes a form, and the socket checks its origin
    app.include_router(voice_routes.router, include_in_schema=False)
    app.state.voice = voice

    @app.exception_handler(WebError)
    async def web_error(request: Request, exc: WebError) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": exc.message}, status_code=exc.status_code)
        if isinstance(exc, NotSignedIn):
            target = request.url.path
            if request.url.query:
                target += "?" + request.url.query
            return RedirectResponse(f"/login?next={_quote(target)}", status_code=303)
        viewer_or_none(request)
        templates: Jinja2Templates = request.app.state.web.templates
        return templates.TemplateResponse(
            request,
            "error.html",
            {"status": exc.status_code, "message": exc.message},
            status_code=exc.status_code,
        )

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


async def _load_voice(app: FastAPI, voice: VoicePractice) -> None:
    """Load the speech models once; without them the rest of the app still serves."""
    import asyncio

    from voice.errors import VoiceError

    started = time.perf_counter()
    try:
        await asyncio.to_thread(voice.load)
    except VoiceError as exc:
        logger.error("voice practice off: speech models did not load", extra={"error": str(exc)})
        app.state.voice = None
        return
    logger.info("voice practice ready", extra={"seconds": round(time.perf_counter() - started, 2)})


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/?=&")
