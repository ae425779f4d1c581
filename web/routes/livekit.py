"""Join tokens for voice practice in LiveKit rooms.

A signed-in rep asks for a token for one of their open assignments; the app names a fresh
room for the attempt and signs a short-lived token that lets the rep join that room only
(no room creation, listing or admin rights, microphone only), and that dispatches the
practice agent (`coachloop voice worker`) to the room when the rep's join creates it.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from fastapi import APIRouter
from livekit import api as lkapi
from livekit.protocol.agent_dispatch import RoomAgentDispatch
from livekit.protocol.room import RoomConfiguration
from pydantic import BaseModel
from sqlmodel import Session
from starlette.requests import Request

from config.settings import LiveKitSettings
from store.models import Assignment
from voice.rooms import PracticeRoom, PracticeTicket, new_room, ticket_for
from web.context import Conflict, Forbidden, NotFound, Unavailable, web_context
from web.security import require_viewer

logger = logging.getLogger(__name__)

router = APIRouter(tags=["voice practice"])

ROOM_PARTICIPANTS = 2
"""The rep and the practice agent."""
DEPARTURE_TIMEOUT_S = 30
"""How long a room stays open after the rep leaves, for a dropped phone to come back."""


class LiveKitJoin(BaseModel):
    """What a browser needs to join its practice room."""

    url: str
    """The LiveKit server to connect to."""
    token: str
    """The join token: this room only, for `expires_in_s` seconds."""
    room: str
    identity: str
    """The rep's identity in the room (their external id)."""
    agent_name: str
    """The practice agent dispatched to the room."""
    assignment_id: int
    scenario: str
    expires_in_s: int


def livekit_or_unavailable(settings: LiveKitSettings) -> tuple[str, str, str]:
    """The client URL, API key and secret, or a 503 naming what is missing."""
    missing = settings.missing()
    if missing or settings.url is None or settings.api_key is None or settings.api_secret is None:
        raise Unavailable(
            "Voice practice in LiveKit rooms is not configured on this server: set "
            + ", ".join(missing)
            + " (or the COACHLOOP_LIVEKIT__ names) and restart it"
        )
    return (
        settings.client_url or settings.url,
        settings.api_key,
        settings.api_secret.get_secret_value(),
    )


def join_token(
    settings: LiveKitSettings,
    *,
    room: PracticeRoom,
    ticket: PracticeTicket,
    display_name: str,
) -> str:
    """A token for the rep to join `room`, and to dispatch the practice agent into it."""
    _, key, secret = livekit_or_unavailable(settings)
    metadata = ticket.to_json()
    grants = lkapi.VideoGrants(
        room_join=True,
        room=room.name,
        can_publish=True,
        can_subscribe=True,
        can_publish_data=True,
        can_publish_sources=["microphone"],
        can_update_own_metadata=False,
    )
    config = RoomConfiguration(
        max_participants=ROOM_PARTICIPANTS,
        departure_timeout=DEPARTURE_TIMEOUT_S,
        metadata=metadata,
        agents=[RoomAgentDispatch(agent_name=settings.agent_name, metadata=metadata)],
    )
    return (
        lkapi.AccessToken(key, secret)
        .with_identity(ticket.rep)
        .with_name(display_name)
        .with_kind("standard")
        .with_metadata(metadata)
        .with_grants(grants)
        .with_room_config(config)
        .with_ttl(timedelta(minutes=settings.token_ttl_minutes))
        .to_jwt()
    )


@router.post(
    "/practice/assignments/{assignment_id}/livekit-token",
    response_model=LiveKitJoin,
    summary="A short-lived token to practise an assignment by voice in a LiveKit room",
    responses={
        403: {"description": "The assignment is another rep's"},
        404: {"description": "No such assignment"},
        409: {"description": "The assignment is no longer open"},
        503: {"description": "LiveKit is not configured on this server"},
    },
)
def livekit_token(request: Request, assignment_id: int) -> LiveKitJoin:
    """Name a fresh room for this attempt at the assignment and return a token that joins it.

    The token lets the signed-in rep join that one room (microphone only) and dispatches the
    practice agent there; it expires after `COACHLOOP_LIVEKIT__TOKEN_TTL_MINUTES`. Each call
    starts a new attempt in a new room.
    """
    viewer = require_viewer(request)
    context = web_context(request)
    settings = context.settings.livekit
    url, _, _ = livekit_or_unavailable(settings)
    with Session(context.engine) as session:
        assignment = session.get(Assignment, assignment_id)
    if assignment is None:
        raise NotFound(f"No assignment {assignment_id}")
    if assignment.rep_id != viewer.id:
        raise Forbidden(f"Assignment {assignment_id} is not yours; only its rep can practise it")
    if assignment.status != "open":
        raise Conflict(
            f"Assignment {assignment_id} is {assignment.status}; practise an open assignment "
            "or a scenario of your choice"
        )
    room = new_room(settings.room_prefix, assignment_id)
    ticket = ticket_for(room, rep=viewer.external_id, scenario=assignment.scenario_slug)
    token = join_token(settings, room=room, ticket=ticket, display_name=viewer.name)
    logger.info(
        "livekit join token issued",
        extra={"assignment_id": assignment_id, "room": room.name, "rep_id": viewer.id},
    )
    return LiveKitJoin(
        url=url,
        token=token,
        room=room.name,
        identity=ticket.rep,
        agent_name=settings.agent_name,
        assignment_id=assignment_id,
        scenario=assignment.scenario_slug,
        expires_in_s=round(settings.token_ttl_minutes * 60),
    )
