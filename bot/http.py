"""HTTP mode: Slack's requests (events, commands, interactivity) arrive at one URL.

`create_asgi_app` gives an ASGI app of its own; `mount` adds the same route to an existing
FastAPI app (the web app), so one server can answer both. The web app never imports `bot/`:
`app.py` composes the two.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

EVENTS_PATH = "/slack/events"


def _endpoint(bolt_app: AsyncApp) -> Any:
    handler = AsyncSlackRequestHandler(bolt_app)

    async def slack_events(request: Request) -> Response:
        return await handler.handle(request)

    return slack_events


async def _healthz(_: Request) -> Response:
    return PlainTextResponse("ok")


def create_asgi_app(bolt_app: AsyncApp, *, path: str = EVENTS_PATH) -> Starlette:
    """An ASGI app answering Slack at `path` (POST) and `/healthz` (GET)."""
    return Starlette(
        routes=[
            Route(path, _endpoint(bolt_app), methods=["POST"]),
            Route("/healthz", _healthz, methods=["GET"]),
        ]
    )


def mount(asgi_app: Any, bolt_app: AsyncApp, *, path: str = EVENTS_PATH) -> None:
    """Add the Slack route to a FastAPI (or Starlette) app."""
    asgi_app.router.add_route(path, _endpoint(bolt_app), methods=["POST"])
