"""The LiveKit room worker against a fake LiveKit server that speaks the agent protocol:
registration and its auth, which rooms it takes, draining on stop, and which practice a
room's job is for.

No job joins a room here (that needs a LiveKit server's WebRTC side), so no speech model is
loaded: the worker keeps no idle job processes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
from livekit.agents import worker as lk_worker
from livekit.protocol import agent as agent_pb, models
from pydantic import SecretStr

from config.settings import LiveKitSettings, Settings, VoiceSettings
from scenarios import PracticeDriver
from tests.fakes.livekit_server import ConnectedWorker, FakeLiveKitServer
from voice.livekit_worker import (
    WorkerConfigError,
    WorkerSetup,
    build_server,
    check_settings,
    job_of,
    serve,
)
from voice.rooms import RoomError, new_room, ticket_for

API_KEY = "APIworkertest"
API_SECRET = "worker-test-secret-" + "w" * 24
AGENT = "coachloop-practice"


class UnusedPractice:
    """No job runs in these tests; a driver asked for is a test failure."""

    def prewarm(self) -> None:
        raise AssertionError("no job process should start")

    def open_driver(self) -> AbstractAsyncContextManager[PracticeDriver]:
        raise AssertionError("no job should run")


def setup_for(url: str, *, secret: str = API_SECRET, tmp: Path) -> WorkerSetup:
    return WorkerSetup(
        livekit=LiveKitSettings(
            url=url,
            api_key=API_KEY,
            api_secret=SecretStr(secret),
            idle_processes=0,
            health_port=0,
        ),
        voice=VoiceSettings(),
        data_dir=tmp,
        practice=UnusedPractice(),
    )


@pytest.fixture
async def livekit() -> AsyncIterator[FakeLiveKitServer]:
    async with FakeLiveKitServer(api_key=API_KEY, api_secret=API_SECRET) as server:
        yield server


@pytest.fixture
def quick_assignment_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    # an accepted job waits this long for the server's assignment, and stopping waits for it
    monkeypatch.setattr(lk_worker, "ASSIGNMENT_TIMEOUT", 0.5)


@pytest.fixture
async def connected(
    livekit: FakeLiveKitServer, tmp_path: Path, quick_assignment_timeout: None
) -> AsyncIterator[tuple[ConnectedWorker, asyncio.Event, asyncio.Task[None]]]:
    stop = asyncio.Event()
    # an idle worker: the machine's own CPU load (other tests) must not decide the answers
    server = build_server(setup_for(livekit.url, tmp=tmp_path), load=lambda: 0.0)
    running = asyncio.create_task(serve(server, stop))
    worker = await livekit.next_worker()
    yield worker, stop, running
    stop.set()
    await asyncio.wait_for(running, 30)


def practice_job(livekit: FakeLiveKitServer, assignment_id: int, **overrides: str) -> agent_pb.Job:
    room = new_room("practice", assignment_id)
    ticket = ticket_for(room, rep="e-1042", scenario="support-bill-went-up").to_json()
    return livekit.room_job(
        overrides.get("room", room.name),
        agent_name=AGENT,
        dispatch_metadata=overrides.get("metadata", ticket),
        room_metadata=ticket,
    )


async def test_registers_with_the_agent_name_and_a_token_signed_by_the_secret(
    livekit: FakeLiveKitServer,
    connected: tuple[ConnectedWorker, asyncio.Event, asyncio.Task[None]],
) -> None:
    worker, _, _ = connected

    assert worker.register is not None
    assert worker.register.agent_name == AGENT
    assert worker.register.type == agent_pb.JobType.JT_ROOM
    assert worker.register.allowed_permissions.agent
    assert worker.claims["iss"] == API_KEY
    assert worker.claims["video"]["agent"] is True
    assert not {"room", "roomJoin", "roomAdmin"} & set(worker.claims["video"])
    assert livekit.refusals == []


async def test_a_wrong_secret_is_refused(
    livekit: FakeLiveKitServer, tmp_path: Path, quick_assignment_timeout: None
) -> None:
    stop = asyncio.Event()
    setup = setup_for(livekit.url, secret="not-the-secret-" + "x" * 24, tmp=tmp_path)
    running = asyncio.create_task(serve(build_server(setup), stop))

    refusal = await livekit.next_refusal()
    stop.set()
    await asyncio.wait_for(running, 30)

    assert refusal.reason == "invalid token: InvalidSignatureError"
    assert livekit.workers == []


async def test_accepts_a_practice_room(
    livekit: FakeLiveKitServer,
    connected: tuple[ConnectedWorker, asyncio.Event, asyncio.Task[None]],
) -> None:
    worker, _, _ = connected
    job = practice_job(livekit, 42)

    answer = await livekit.offer_job(worker, job)

    assert answer.job_id == job.id
    assert answer.available
    attempt = job.room.name.rsplit("-", 1)[1]
    assert answer.participant_identity == f"practice-agent-{attempt}"
    assert answer.participant_attributes["coachloop.assignment_id"] == "42"
    assert answer.participant_attributes["coachloop.scenario"] == "support-bill-went-up"
    assert answer.participant_attributes["lk.agent.name"] == AGENT


@pytest.mark.parametrize(
    ("room", "metadata"),
    [
        ("support-standup", None),
        ("practice-a42-0123456789ab", None),
        (None, "{not json"),
        (
            None,
            json.dumps({"assignment_id": 41, "rep": "e-1", "scenario": "x", "attempt": "0" * 12}),
        ),
    ],
    ids=["other-room", "ticket-for-another-room", "metadata-not-json", "another-assignment"],
)
async def test_refuses_rooms_that_are_not_practice_rooms(
    livekit: FakeLiveKitServer,
    connected: tuple[ConnectedWorker, asyncio.Event, asyncio.Task[None]],
    room: str | None,
    metadata: str | None,
) -> None:
    worker, _, _ = connected
    overrides = {k: v for k, v in {"room": room, "metadata": metadata}.items() if v is not None}
    job = practice_job(livekit, 42, **overrides)
    if metadata is not None:
        job.room.metadata = ""

    answer = await livekit.offer_job(worker, job)

    assert not answer.available
    assert answer.terminate


async def test_a_busy_worker_declines_without_refusing_the_room(
    livekit: FakeLiveKitServer, tmp_path: Path
) -> None:
    stop = asyncio.Event()
    server = build_server(setup_for(livekit.url, tmp=tmp_path), load=lambda: 0.9)
    running = asyncio.create_task(serve(server, stop))
    worker = await livekit.next_worker()

    answer = await livekit.offer_job(worker, practice_job(livekit, 42))
    stop.set()
    await asyncio.wait_for(running, 30)

    # another worker may take it: LiveKit offers the room elsewhere
    assert not answer.available
    assert not answer.terminate


async def test_stop_drains_then_disconnects(
    livekit: FakeLiveKitServer,
    connected: tuple[ConnectedWorker, asyncio.Event, asyncio.Task[None]],
) -> None:
    worker, stop, running = connected

    stop.set()
    await asyncio.wait_for(running, 30)
    await asyncio.wait_for(worker.closed.wait(), 10)

    assert agent_pb.WorkerStatus.WS_FULL in worker.statuses()


def test_job_names_the_assignment_rep_and_scenario() -> None:
    room = new_room("practice", 7)
    ticket = ticket_for(room, rep="e-1042", scenario="support-bill-went-up").to_json()
    job = agent_pb.Job(id="AJ_1", room=models.Room(name=room.name), metadata=ticket)

    found = job_of(job, prefix="practice")

    assert found.room.assignment_id == 7
    assert found.rep_identity == "e-1042"
    assert found.ticket.scenario == "support-bill-went-up"
    assert found.room.session_id == f"room-{room.attempt}"


@pytest.mark.parametrize("where", ["room", "participant"])
def test_job_falls_back_to_room_then_participant_metadata(where: str) -> None:
    room = new_room("practice", 9)
    ticket = ticket_for(room, rep="e-7", scenario="sales-add-tv-sport").to_json()
    job = agent_pb.Job(id="AJ_2", room=models.Room(name=room.name))
    if where == "room":
        job.room.metadata = ticket
    else:
        job.participant.CopyFrom(models.ParticipantInfo(identity="e-7", metadata=ticket))

    assert job_of(job, prefix="practice").ticket.scenario == "sales-add-tv-sport"


def test_job_without_ticket_or_for_another_prefix_is_refused() -> None:
    room = new_room("practice", 9)
    bare = agent_pb.Job(id="AJ_3", room=models.Room(name=room.name))
    other = agent_pb.Job(id="AJ_4", room=models.Room(name=room.name.replace("practice", "demo")))

    with pytest.raises(RoomError, match="carries no practice metadata"):
        job_of(bare, prefix="practice")
    with pytest.raises(RoomError, match="not a practice room"):
        job_of(other, prefix="practice")


def test_missing_settings_are_named() -> None:
    with pytest.raises(WorkerConfigError) as raised:
        check_settings(LiveKitSettings(api_key="APIx"))

    assert "LIVEKIT_URL" in str(raised.value) and "LIVEKIT_API_SECRET" in str(raised.value)
    assert "LIVEKIT_API_KEY" not in str(raised.value)


def test_a_url_that_is_not_livekits_is_refused() -> None:
    settings = LiveKitSettings(url="livekit.example.com", api_key="k", api_secret=SecretStr("s"))

    with pytest.raises(WorkerConfigError, match="wss://"):
        check_settings(settings)


def test_livekits_own_variable_names_are_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("LIVEKIT_API_SECRET=from-dotenv\n")
    monkeypatch.setenv("LIVEKIT_URL", "wss://plain.example.com")
    monkeypatch.setenv("LIVEKIT_API_KEY", "APIplain")
    monkeypatch.setenv("COACHLOOP_LIVEKIT__API_KEY", "APIprefixed")

    livekit = Settings(_env_file=tmp_path / ".env").livekit

    assert livekit.url == "wss://plain.example.com"
    assert livekit.api_key == "APIprefixed"
    assert livekit.api_secret is not None
    assert livekit.api_secret.get_secret_value() == "from-dotenv"
    assert livekit.enabled


def test_job_process_arguments_survive_the_trip_to_a_new_process(tmp_path: Path) -> None:
    import functools
    import pickle

    from app import WorkerPractice
    from voice.livekit_worker import entrypoint, prewarm

    settings = Settings(data_dir=tmp_path, livekit=setup_for("ws://x", tmp=tmp_path).livekit)
    setup = WorkerSetup(
        livekit=settings.livekit,
        voice=settings.voice,
        data_dir=tmp_path,
        practice=WorkerPractice(settings),
    )

    # job processes are started fresh (forkserver) and receive these pickled
    for function in (prewarm, entrypoint):
        sent = pickle.loads(pickle.dumps(functools.partial(function, setup)))
        assert sent.func is function
        assert sent.args[0] == setup
        secret = sent.args[0].practice.settings.livekit.api_secret
        assert secret.get_secret_value() == API_SECRET


class RecordingPractice(UnusedPractice):
    def __init__(self) -> None:
        self.prewarmed = 0

    def prewarm(self) -> None:
        self.prewarmed += 1


@pytest.mark.slow
def test_prewarm_loads_the_voice_models_once_per_process(tmp_path: Path) -> None:
    from livekit.agents import JobExecutorType, JobProcess

    from voice.livekit_worker import prewarm
    from voice.practice import VoicePractice

    practice = RecordingPractice()
    setup = WorkerSetup(
        livekit=setup_for("ws://x", tmp=tmp_path).livekit,
        voice=VoiceSettings(whisper_model="tiny.en"),
        data_dir=tmp_path,
        practice=practice,
    )
    proc = JobProcess(executor_type=JobExecutorType.THREAD, user_arguments=None, http_proxy=None)

    prewarm(setup, proc)

    loaded = proc.userdata["coachloop.voice"]
    assert isinstance(loaded, VoicePractice) and loaded.loaded
    assert loaded.engines is not None and loaded.engines.transcriber.name == "tiny.en"
    assert practice.prewarmed == 1


async def _until(condition: Any, polls: int = 1200) -> None:
    """Wait for what another task or process does (up to a minute)."""
    for _ in range(polls):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("waited a minute for the worker")


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["process", "thread"])
async def test_an_assigned_room_is_joined_with_the_servers_token(
    livekit: FakeLiveKitServer, tmp_path: Path, quick_assignment_timeout: None, executor: str
) -> None:
    from livekit import api as lkapi
    from livekit.agents import JobExecutorType

    setup = WorkerSetup(
        livekit=setup_for(livekit.url, tmp=tmp_path).livekit,
        voice=VoiceSettings(whisper_model="tiny.en"),
        data_dir=tmp_path,
        practice=RecordingPractice(),
    )
    stop = asyncio.Event()
    server = build_server(setup, executor=JobExecutorType(executor), load=lambda: 0.0)
    running = asyncio.create_task(serve(server, stop))
    worker = await livekit.next_worker()
    job = practice_job(livekit, 42)
    answer = await livekit.offer_job(worker, job)
    # what the server hands the accepted worker: a token for the agent in that room
    token = (
        lkapi.AccessToken(API_KEY, API_SECRET)
        .with_identity(answer.participant_identity)
        .with_kind("agent")
        .with_grants(lkapi.VideoGrants(room_join=True, room=job.room.name, agent=True))
        .to_jwt()
    )

    await livekit.assign(worker, job, token=token)
    await _until(lambda: livekit.joins)
    done = {agent_pb.JobStatus.JS_SUCCESS, agent_pb.JobStatus.JS_FAILED}
    await _until(lambda: done & {m.update_job.status for m in worker.sent("update_job")})
    stop.set()
    await asyncio.wait_for(running, 60)

    # the job joined this room as the accepted agent, could not (no media here), and ended
    claims = livekit.joins[0].claims
    assert claims is not None
    assert claims["sub"] == answer.participant_identity
    assert claims["video"]["room"] == job.room.name
    assert {m.update_job.job_id for m in worker.sent("update_job")} == {job.id}
