"""Join tokens for LiveKit practice rooms: one room, the rep's identity, the right grants, a
short life, and the practice agent dispatched with a ticket the worker can read."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from livekit import api as lkapi
from pydantic import SecretStr

from config.settings import LiveKitSettings
from store.db import session_scope
from store.models import Assignment
from tests.web.conftest import make_settings, new_person, signed_in
from tests.web.seed import NOW, PASSWORD, RUBRICS, Seed
from voice.livekit_worker import job_of
from voice.rooms import parse_room_name, parse_ticket
from web import create_app
from web.factory import content_security_policy

API_KEY = "APItestkey"
API_SECRET = "test-livekit-secret-" + "s" * 24
LIVEKIT = LiveKitSettings(
    url="ws://livekit.internal:7880",
    public_url="wss://voice.example.com",
    api_key=API_KEY,
    api_secret=SecretStr(API_SECRET),
    token_ttl_minutes=7,
)
SCENARIO = "support-bill-went-up"


def livekit_app(seed: Seed, livekit: LiveKitSettings | None = LIVEKIT) -> FastAPI:
    settings = make_settings(seed.data_dir)
    if livekit is not None:
        settings = settings.model_copy(update={"livekit": livekit})
    return create_app(engine=seed.engine, settings=settings, rubrics=RUBRICS, clock=lambda: NOW)


def assign(seed: Seed, rep_external_id: str, *, status: str = "open") -> int:
    with session_scope(seed.engine) as session:
        assignment = Assignment(
            rep_id=seed.people[rep_external_id],
            scenario_slug=SCENARIO,
            criterion_id="acknowledge_concern",
            reason="practise acknowledging the concern",
            status=status,
            dedupe_key=f"test-{uuid.uuid4().hex}",
        )
        session.add(assignment)
        session.flush()
        assert assignment.id is not None
        return assignment.id


@pytest.fixture
def rep(sqlite_seed: Seed) -> str:
    external_id = new_person(sqlite_seed, team="north")
    sqlite_seed.people[external_id] = _person_id(sqlite_seed, external_id)
    return external_id


def _person_id(seed: Seed, external_id: str) -> int:
    from sqlmodel import Session, select

    from store.models import Person

    with Session(seed.engine) as session:
        found = session.exec(select(Person.id).where(Person.external_id == external_id)).first()
    assert found is not None
    return found


@pytest.fixture
def rep_client(sqlite_seed: Seed, rep: str) -> Iterator[tuple[TestClient, str]]:
    client, csrf = signed_in(livekit_app(sqlite_seed), rep)
    with client:
        yield client, csrf


def request_token(client: TestClient, csrf: str, assignment_id: int) -> Any:
    return client.post(
        f"/api/practice/assignments/{assignment_id}/livekit-token",
        headers={"X-CSRF-Token": csrf},
    )


def test_token_joins_only_the_assignments_room_as_the_rep(
    sqlite_seed: Seed, rep: str, rep_client: tuple[TestClient, str]
) -> None:
    client, csrf = rep_client
    assignment_id = assign(sqlite_seed, rep)

    response = request_token(client, csrf, assignment_id)

    assert response.status_code == 200, response.text
    body = response.json()
    room = parse_room_name(body["room"], prefix="practice")
    assert room.assignment_id == assignment_id
    assert body["url"] == "wss://voice.example.com"
    assert body["identity"] == rep
    assert body["agent_name"] == "coachloop-practice"
    assert body["expires_in_s"] == 7 * 60
    claims = lkapi.TokenVerifier(API_KEY, API_SECRET).verify(body["token"])
    assert claims.identity == rep
    video = claims.video
    assert video is not None
    assert video.room == body["room"]
    assert video.room_join is True
    assert video.can_publish_sources == ["microphone"]
    assert not video.room_admin and not video.room_create and not video.room_list
    assert not video.room_record and not video.agent and not video.can_update_own_metadata
    assert video.destination_room is None


def test_token_claims_hold_nothing_beyond_the_room(
    sqlite_seed: Seed, rep: str, rep_client: tuple[TestClient, str]
) -> None:
    client, csrf = rep_client
    body = request_token(client, csrf, assign(sqlite_seed, rep)).json()

    raw = jwt.decode(body["token"], API_SECRET, algorithms=["HS256"], issuer=API_KEY)

    assert set(raw) == {
        "sub",
        "iss",
        "nbf",
        "exp",
        "name",
        "kind",
        "metadata",
        "video",
        "roomConfig",
    }
    assert set(raw["video"]) == {
        "room",
        "roomJoin",
        "canPublish",
        "canSubscribe",
        "canPublishData",
        "canPublishSources",
        "canUpdateOwnMetadata",
    }
    assert raw["video"]["canUpdateOwnMetadata"] is False
    assert raw["roomConfig"]["maxParticipants"] == 2
    assert [a["agentName"] for a in raw["roomConfig"]["agents"]] == ["coachloop-practice"]


def test_token_expires_after_the_configured_minutes(
    sqlite_seed: Seed, rep: str, rep_client: tuple[TestClient, str]
) -> None:
    client, csrf = rep_client
    token = request_token(client, csrf, assign(sqlite_seed, rep)).json()["token"]

    raw = jwt.decode(token, API_SECRET, algorithms=["HS256"], options={"require": ["exp"]})

    assert raw["exp"] - raw["nbf"] == 7 * 60
    # read as if the lifetime (and a minute) had passed: the signature no longer counts
    with pytest.raises(jwt.ExpiredSignatureError):
        jwt.decode(
            token,
            API_SECRET,
            algorithms=["HS256"],
            leeway=-(7 * 60 + 60),
            options={"verify_nbf": False},
        )


def test_token_dispatches_the_agent_with_a_ticket_the_worker_accepts(
    sqlite_seed: Seed, rep: str, rep_client: tuple[TestClient, str]
) -> None:
    from livekit.protocol import agent as agent_pb, models

    client, csrf = rep_client
    assignment_id = assign(sqlite_seed, rep)
    body = request_token(client, csrf, assignment_id).json()
    claims = lkapi.TokenVerifier(API_KEY, API_SECRET).verify(body["token"])
    config = claims.room_config
    assert config is not None
    dispatch = config.agents[0]

    # what the LiveKit server builds from the token when the rep's join creates the room
    job = agent_pb.Job(
        id="AJ_1",
        type=agent_pb.JobType.JT_ROOM,
        room=models.Room(sid="RM_1", name=body["room"], metadata=config.metadata),
        agent_name=dispatch.agent_name,
        metadata=dispatch.metadata,
    )
    found = job_of(job, prefix="practice")

    assert found.room.assignment_id == assignment_id
    assert found.ticket.rep == rep == found.rep_identity
    assert found.ticket.scenario == SCENARIO
    assert parse_ticket(claims.metadata) == found.ticket
    assert json.loads(config.metadata) == json.loads(dispatch.metadata)


def test_each_request_is_a_new_room(
    sqlite_seed: Seed, rep: str, rep_client: tuple[TestClient, str]
) -> None:
    client, csrf = rep_client
    assignment_id = assign(sqlite_seed, rep)

    rooms = {request_token(client, csrf, assignment_id).json()["room"] for _ in range(3)}

    assert len(rooms) == 3


def test_another_reps_assignment_is_refused(
    sqlite_seed: Seed, rep: str, rep_client: tuple[TestClient, str]
) -> None:
    client, csrf = rep_client
    someone_else = assign(sqlite_seed, "alice")

    response = request_token(client, csrf, someone_else)

    assert response.status_code == 403
    assert "not yours" in response.json()["detail"]


def test_a_manager_cannot_join_as_their_rep(sqlite_seed: Seed) -> None:
    assignment_id = assign(sqlite_seed, "alice")
    client, csrf = signed_in(livekit_app(sqlite_seed), "mgr-north")

    response = request_token(client, csrf, assignment_id)

    assert response.status_code == 403


def test_unknown_and_closed_assignments(
    sqlite_seed: Seed, rep: str, rep_client: tuple[TestClient, str]
) -> None:
    client, csrf = rep_client

    missing = request_token(client, csrf, 987_654)
    closed = request_token(client, csrf, assign(sqlite_seed, rep, status="completed"))

    assert missing.status_code == 404
    assert "No assignment 987654" in missing.json()["detail"]
    assert closed.status_code == 409
    assert "completed" in closed.json()["detail"]


def test_not_configured_is_a_clear_503(sqlite_seed: Seed, rep: str) -> None:
    partial = LiveKitSettings(url="wss://livekit.example.com")
    client, csrf = signed_in(livekit_app(sqlite_seed, partial), rep)

    response = request_token(client, csrf, assign(sqlite_seed, rep))

    assert response.status_code == 503
    detail = response.json()["detail"]
    assert "LIVEKIT_API_KEY" in detail and "LIVEKIT_API_SECRET" in detail
    assert "LIVEKIT_URL" not in detail


def test_basic_credentials_and_refusals_without_them(sqlite_seed: Seed, rep: str) -> None:
    app = livekit_app(sqlite_seed)
    assignment_id = assign(sqlite_seed, rep)
    url = f"/api/practice/assignments/{assignment_id}/livekit-token"
    anonymous = TestClient(app)
    cookie_only, _ = signed_in(app, rep)

    with_basic = anonymous.post(url, auth=(rep, PASSWORD))
    wrong_password = anonymous.post(url, auth=(rep, "not-the-password"))
    without_csrf = cookie_only.post(url)

    assert with_basic.status_code == 200
    assert with_basic.json()["identity"] == rep
    assert wrong_password.status_code == 401
    assert without_csrf.status_code == 403
    assert "token" not in without_csrf.json()


def test_documented_in_openapi(sqlite_seed: Seed) -> None:
    client, _ = signed_in(livekit_app(sqlite_seed), "admin")

    spec = client.get("/api/openapi.json").json()

    operation = spec["paths"]["/api/practice/assignments/{assignment_id}/livekit-token"]["post"]
    assert {"200", "403", "404", "503"} <= set(operation["responses"])
    assert "LiveKitJoin" in spec["components"]["schemas"]


def test_pages_may_connect_to_the_livekit_server(sqlite_seed: Seed) -> None:
    settings = make_settings(sqlite_seed.data_dir)

    plain = content_security_policy(settings)
    with_livekit = content_security_policy(settings.model_copy(update={"livekit": LIVEKIT}))

    assert "connect-src 'self';" in plain
    assert "connect-src 'self' wss://voice.example.com https://voice.example.com;" in with_livekit
