"""Voice practice: the page and the WebSocket the browser talks to the persona over.

`GET /practice/voice/{scenario}` (optionally `?assignment=ID`) shows the briefing, a talk
button and open-mic mode, the live transcript and then the feedback; its script opens
`/practice/voice/{scenario}/socket` with the same query, which starts the practice session and
serves it with `voice.ws_transport` (the wire protocol is documented there). The socket is
signed in by the same session cookie as the pages, only accepted from this site's own pages
(the `Origin` header), and a rep can only practise their own assignments.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlmodel import Session
from starlette.requests import Request

from scenarios import PracticeDriver, ScenarioError, ScenarioNotFoundError
from store.models import Assignment
from web.context import Forbidden, NotFound, Unavailable, WebError, web_context
from web.permissions import Viewer
from web.routes._common import page
from web.security import require_viewer, viewer_or_none

if TYPE_CHECKING:
    from voice.practice import VoicePractice

logger = logging.getLogger(__name__)

router = APIRouter()

POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013


def voice_practice(app_state: Any) -> VoicePractice | None:
    """The app's voice practice, when it is enabled and its models are loaded."""
    voice = getattr(app_state, "voice", None)
    if voice is not None and voice.loaded:
        return cast("VoicePractice", voice)
    return None


def _assignment(request: Request, viewer: Viewer, assignment_id: int, scenario: str) -> None:
    with Session(web_context(request).engine) as session:
        assignment = session.get(Assignment, assignment_id)
    if assignment is None or assignment.rep_id != viewer.id:
        raise Forbidden("This practice assignment is not yours")
    if assignment.scenario_slug != scenario:
        raise NotFound(f"Assignment {assignment_id} is for another scenario")
    if assignment.status != "open":
        raise WebError(f"Assignment {assignment_id} is already {assignment.status}")


def _driver(request: Request) -> PracticeDriver:
    service = web_context(request).practice
    if service is None or service.driver is None:
        raise Unavailable("Practice is not running on this server; start it with `coachloop serve`")
    return service.driver


@router.get("/practice/voice")
def choose(request: Request, scenario: str = "") -> RedirectResponse:
    """The scenario picker's target (a plain GET form)."""
    require_viewer(request)
    if not scenario or not all(c.isalnum() or c in "-_" for c in scenario):
        raise NotFound("Choose a scenario to practise by voice")
    return RedirectResponse(f"/practice/voice/{scenario}", status_code=303)


@router.get("/practice/voice/{scenario}")
def voice_page(request: Request, scenario: str, assignment: int | None = None) -> HTMLResponse:
    viewer = require_viewer(request)
    driver = _driver(request)
    try:
        chosen = driver.library.get(scenario)
    except ScenarioNotFoundError:
        raise NotFound(f"No practice scenario `{scenario}`") from None
    if assignment is not None:
        _assignment(request, viewer, assignment, chosen.slug)
    socket = f"/practice/voice/{chosen.slug}/socket"
    if assignment is not None:
        socket += f"?assignment={assignment}"
    # with LiveKit configured, an assignment is practised in a LiveKit room instead
    livekit = None
    if assignment is not None and web_context(request).settings.livekit.enabled:
        livekit = f"/api/practice/assignments/{assignment}/livekit-token"
    return page(
        request,
        "practice_voice.html",
        {
            "scenario": chosen,
            "persona": driver.library.persona_for(chosen),
            "assignment_id": assignment,
            "socket_path": socket,
            "voice_available": voice_practice(request.app.state) is not None,
            "livekit_token_url": livekit,
        },
    )


def _same_origin(websocket: WebSocket) -> bool:
    origin = websocket.headers.get("origin")
    if origin is None:
        return True  # not a browser; the cookie still has to be valid
    host = websocket.headers.get("host", "")
    return urlsplit(origin).netloc.lower() == host.lower()


class _Socket:
    """Starlette's WebSocket as the transport's `Connection`."""

    def __init__(self, websocket: WebSocket) -> None:
        self._websocket = websocket

    async def receive(self) -> str | bytes | None:
        try:
            message = await self._websocket.receive()
        except (WebSocketDisconnect, RuntimeError):
            return None
        if message["type"] == "websocket.disconnect":
            return None
        if message.get("bytes") is not None:
            return cast(bytes, message["bytes"])
        return cast(str, message.get("text") or "")

    async def send_text(self, text: str) -> None:
        await self._websocket.send_text(text)

    async def send_bytes(self, data: bytes) -> None:
        await self._websocket.send_bytes(data)

    async def close(self, code: int = 1000) -> None:
        await self._websocket.close(code)


async def _refuse(websocket: WebSocket, code: int, reason: str) -> None:
    """Close with a reason the page can show (a refused handshake would only say 403)."""
    await websocket.accept()
    await websocket.close(code, reason=reason[:120])


@router.websocket("/practice/voice/{scenario}/socket")
async def voice_socket(websocket: WebSocket, scenario: str, assignment: int | None = None) -> None:
    # the pages' sign-in reads only what an HTTP request and a WebSocket handshake share
    request = cast(Request, websocket)
    if not _same_origin(websocket):
        logger.warning("voice socket from another origin", extra={"path": websocket.url.path})
        await _refuse(websocket, POLICY_VIOLATION, "This page is not from coachloop")
        return
    try:
        viewer = viewer_or_none(request)
        if viewer is None:
            raise Forbidden("Sign in to practise")
        driver = _driver(request)
        if assignment is not None:
            _assignment(request, viewer, assignment, scenario)
    except WebError as exc:
        await _refuse(websocket, POLICY_VIOLATION, exc.message)
        return
    voice = voice_practice(websocket.app.state)
    if voice is None:
        await _refuse(websocket, TRY_AGAIN_LATER, "Voice practice is not enabled on this server")
        return
    await websocket.accept()
    try:
        call = await voice.open_call(
            driver,
            scenario=scenario,
            rep_external_id=viewer.external_id,
            assignment_id=assignment,
        )
    except ScenarioError as exc:
        await websocket.send_json({"type": "error", "message": str(exc)})
        await websocket.close(POLICY_VIOLATION, reason=str(exc)[:120])
        return
    logger.info(
        "voice practice connected",
        extra={"session_id": call.session_id, "scenario": scenario, "person_id": viewer.id},
    )
    from voice.ws_transport import serve_practice_call

    await serve_practice_call(_Socket(websocket), call)
