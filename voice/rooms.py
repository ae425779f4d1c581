"""Practice rooms on a LiveKit server: how a room is named, and what its join token carries.

Every practice attempt gets a room of its own, named after the assignment:
`{prefix}-a{assignment id}-{attempt}`, e.g. `practice-a42-3f9c01d2ab7e`. The web app signs
a :class:`PracticeTicket` (assignment, rep, scenario, attempt) into the rep's join token, as
the agent dispatch metadata, the room's metadata and the rep's participant metadata; the
worker reads it back with :func:`practice_job` and checks it against the room name.

Only the LiveKit server can mint dispatches, and only a holder of the API secret can sign
the token that created them, so the ticket is trusted as far as naming goes; whether the
assignment really belongs to the rep is checked again by the practice driver.

Nothing here imports livekit: both the web app and the worker use it.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError

ATTEMPT_HEX = 12
_ROOM = re.compile(
    r"^(?P<prefix>[a-z][a-z0-9-]*)-a(?P<assignment>[1-9][0-9]*)-(?P<attempt>[0-9a-f]{12})$"
)

EVENTS_TOPIC = "coachloop.practice"
"""Text streams from the agent to the rep: JSON events shaped as on the WebSocket transport
(`voice.ws_transport`): `ready` when the session starts, `feedback` with the scored result,
`error` when it cannot start or be scored."""
CONTROL_TOPIC = "coachloop.control"
"""Data messages from the rep to the agent: `{"type": "end"}` ends the session."""


class RoomError(ValueError):
    """A room or its metadata is not a practice room this deployment made."""


@dataclass(frozen=True, slots=True)
class PracticeRoom:
    """A practice room's name and what the name says."""

    name: str
    prefix: str
    assignment_id: int
    attempt: str
    """Random hex that makes each attempt's room (and practice session) new."""

    @property
    def session_id(self) -> str:
        """The practice session the room runs; a restarted job carries on the same one."""
        return f"room-{self.attempt}"


class PracticeTicket(BaseModel):
    """What the join token tells the worker about the practice in its room."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: int = 1
    assignment_id: int = Field(ge=1)
    rep: str = Field(min_length=1, max_length=128)
    """The rep's external id; also their participant identity in the room."""
    scenario: str = Field(min_length=1, max_length=128)
    attempt: str = Field(pattern=r"^[0-9a-f]{12}$")

    def to_json(self) -> str:
        return self.model_dump_json()


@dataclass(frozen=True, slots=True)
class PracticeJob:
    """The room a worker was sent to, and the practice to run in it."""

    room: PracticeRoom
    ticket: PracticeTicket

    @property
    def rep_identity(self) -> str:
        return self.ticket.rep


def new_room(prefix: str, assignment_id: int) -> PracticeRoom:
    """A fresh room for one attempt at an assignment."""
    if assignment_id < 1:
        raise RoomError(f"assignment id must be positive, got {assignment_id}")
    attempt = secrets.token_hex(ATTEMPT_HEX // 2)
    return parse_room_name(f"{prefix}-a{assignment_id}-{attempt}", prefix=prefix)


def parse_room_name(name: str, *, prefix: str) -> PracticeRoom:
    """Read a practice room's name.

    Raises:
        RoomError: The name is not `{prefix}-a{assignment}-{attempt}` with this prefix.
    """
    found = _ROOM.match(name)
    if found is None or found["prefix"] != prefix:
        raise RoomError(
            f"room `{name[:80]}` is not a practice room: expected `{prefix}-a<assignment id>-"
            f"<{ATTEMPT_HEX} hex digits>` (COACHLOOP_LIVEKIT__ROOM_PREFIX is `{prefix}`)"
        )
    return PracticeRoom(
        name=name,
        prefix=prefix,
        assignment_id=int(found["assignment"]),
        attempt=found["attempt"],
    )


def is_practice_room(name: str, *, prefix: str) -> bool:
    try:
        parse_room_name(name, prefix=prefix)
    except RoomError:
        return False
    return True


def ticket_for(room: PracticeRoom, *, rep: str, scenario: str) -> PracticeTicket:
    return PracticeTicket(
        assignment_id=room.assignment_id, rep=rep, scenario=scenario, attempt=room.attempt
    )


def parse_ticket(text: str) -> PracticeTicket:
    """Read a ticket from metadata JSON.

    Raises:
        RoomError: Not JSON, or not a ticket (the message names the field).
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise RoomError("practice metadata is not JSON") from None
    try:
        return PracticeTicket.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'metadata'}: {e['msg']}" for e in exc.errors()
        )
        raise RoomError(f"practice metadata is not a ticket ({problems})") from None


def practice_job(
    room_name: str,
    *,
    prefix: str,
    job_metadata: str = "",
    room_metadata: str = "",
    participant_metadata: str = "",
) -> PracticeJob:
    """The practice a job is for, from its room name and the first metadata that is set.

    The dispatch (job) metadata comes first, then the room's, then the rep's participant
    metadata; all three are written from the same join token. The room name is the authority
    on the assignment and attempt: a ticket for another room is refused.

    Raises:
        RoomError: Not a practice room, no ticket in any metadata, or a ticket that names
            another assignment or attempt.
    """
    room = parse_room_name(room_name, prefix=prefix)
    text = next((m for m in (job_metadata, room_metadata, participant_metadata) if m.strip()), "")
    if not text:
        raise RoomError(
            f"room `{room_name}` carries no practice metadata; join tokens from the web app's "
            "`/api/practice/assignments/{id}/livekit-token` set it"
        )
    ticket = parse_ticket(text)
    if ticket.assignment_id != room.assignment_id or ticket.attempt != room.attempt:
        raise RoomError(
            f"practice metadata names assignment {ticket.assignment_id} (attempt "
            f"{ticket.attempt}) but the room is `{room_name}`"
        )
    return PracticeJob(room=room, ticket=ticket)
