"""`coachloop voice worker`: the practice agent in LiveKit rooms.

The worker registers with a LiveKit server under the agent name from the settings. The web
app's join token dispatches that agent to the rep's practice room; the worker accepts rooms
whose name and metadata are a practice ticket (`voice.rooms`), and runs each one in a job
process that has loaded the speech models once, when it was started (prewarm). A job joins
the room, waits for the rep, runs the scenario's persona on the room's audio with the same
`voice.practice.VoicePractice` (engines, VAD, turn settings) as the WebSocket transport,
and when the session ends sends the scored feedback to the rep as a text stream on
`coachloop.practice` (the same JSON events as the WebSocket transport); the rep ends the
session early with `{"type": "end"}` on `coachloop.control`.

This module is glue: which practice runs is read from the room, and everything else is the
practice driver's. Workers scale horizontally: start more of them against the same server
(and the same PostgreSQL database and checkpointer); LiveKit spreads rooms by load.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import signal
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from livekit import rtc
from livekit.agents import (
    AgentServer,
    AutoSubscribe,
    JobContext,
    JobExecutorType,
    JobProcess,
    JobRequest,
)
from livekit.agents.voice import room_io
from livekit.plugins import silero  # noqa: F401 (plugins register on the main thread)
from livekit.protocol import agent as agent_pb

from config.settings import LiveKitSettings, VoiceSettings
from scenarios import PracticeDriver, PracticeResult, ScenarioError, SessionNotFoundError
from voice.errors import VoiceError
from voice.rooms import CONTROL_TOPIC, EVENTS_TOPIC, PracticeJob, RoomError, practice_job

if TYPE_CHECKING:
    from voice.agent import PracticeCall
    from voice.practice import VoicePractice

logger = logging.getLogger(__name__)

DRAIN_TIMEOUT_S = 30 * 60
"""On SIGTERM, how long running sessions may go on before the worker stops anyway."""
FEEDBACK_WAIT_S = 120
"""After the session closes, how long scoring may take before the job gives up on sending."""
_VOICE = "coachloop.voice"


class WorkerConfigError(VoiceError):
    """The worker cannot start: a setting is missing or wrong (the message names it)."""


class PracticeBackend(Protocol):
    """Opens the practice driver in a job process. Must pickle: job processes start fresh."""

    def prewarm(self) -> None:
        """Load what the driver needs once per process (sentence encoder, judge models)."""

    def open_driver(self) -> AbstractAsyncContextManager[PracticeDriver]:
        """The driver for one job, open for the job's life (its checkpointer is async)."""


@dataclass(frozen=True)
class WorkerSetup:
    """What every job process needs; sent to each process when it starts."""

    livekit: LiveKitSettings
    voice: VoiceSettings
    data_dir: Path
    practice: PracticeBackend


def check_settings(settings: LiveKitSettings) -> None:
    """Raise a `WorkerConfigError` naming the variables still to set."""
    missing = settings.missing()
    if missing:
        raise WorkerConfigError(
            "the voice worker needs a LiveKit server: set "
            + ", ".join(missing)
            + " (or COACHLOOP_LIVEKIT__URL, __API_KEY, __API_SECRET) in the environment or .env"
        )
    assert settings.url is not None
    if not settings.url.startswith(("ws://", "wss://", "http://", "https://")):
        raise WorkerConfigError(
            f"LIVEKIT_URL `{settings.url}` is not a LiveKit address; use wss://host (or "
            "ws://host:7880 for a server on this network)"
        )


def check_models(setup: WorkerSetup) -> None:
    """Prepare the speech models now (the Whisper base model is joined once), so that a
    missing model stops the worker at start-up rather than every job process.

    Raises:
        VoiceError: A model is missing or broken; the message names the setting.
    """
    from voice.engines import model_cache_dir
    from voice.models import piper_voice_files, whisper_model_dir

    whisper_model_dir(setup.voice.whisper_model, model_cache_dir(setup.voice, setup.data_dir))
    piper_voice_files(setup.voice.piper_voice)


def build_server(
    setup: WorkerSetup,
    *,
    executor: JobExecutorType = JobExecutorType.PROCESS,
    load: Callable[[], float] | None = None,
) -> AgentServer:
    """The LiveKit agent server for practice rooms, not yet running.

    Args:
        setup: Settings and the practice backend for the job processes.
        executor: Run jobs in processes (the default: one crash ends one session) or threads.
        load: How busy the worker is, 0 to 1; above `COACHLOOP_LIVEKIT__LOAD_THRESHOLD` it
            takes no new rooms. Default: LiveKit's measure of this machine's CPU.

    Raises:
        WorkerConfigError: LiveKit settings are missing or wrong.
    """
    settings = setup.livekit
    check_settings(settings)
    assert settings.api_secret is not None
    server = AgentServer(
        ws_url=settings.url,
        api_key=settings.api_key,
        api_secret=settings.api_secret.get_secret_value(),
        job_executor_type=executor,
        num_idle_processes=settings.idle_processes,
        load_threshold=settings.load_threshold,
        port=settings.health_port,
        drain_timeout=DRAIN_TIMEOUT_S,
        setup_fnc=functools.partial(prewarm, setup),
        load_fnc=load,
    )
    server.rtc_session(
        functools.partial(entrypoint, setup),
        agent_name=settings.agent_name,
        on_request=functools.partial(accept_practice_rooms, settings.room_prefix),
    )
    return server


def job_of(job: agent_pb.Job, *, prefix: str) -> PracticeJob:
    """The practice a dispatched job is for (see `voice.rooms.practice_job`).

    Raises:
        RoomError: Not a practice room, or its metadata does not match the room.
    """
    participant = job.participant.metadata if job.HasField("participant") else ""
    return practice_job(
        job.room.name,
        prefix=prefix,
        job_metadata=job.metadata,
        room_metadata=job.room.metadata,
        participant_metadata=participant,
    )


async def accept_practice_rooms(prefix: str, request: JobRequest) -> None:
    """Take a job only for a practice room with a ticket that matches it."""
    try:
        found = job_of(request.job, prefix=prefix)
    except RoomError as exc:
        logger.warning(
            "job refused",
            extra={"room": request.room.name[:80], "job_id": request.id, "reason": str(exc)},
        )
        await request.reject(terminate=True)
        return
    await request.accept(
        identity=f"practice-agent-{found.room.attempt}",
        name="Practice partner",
        attributes={
            "coachloop.assignment_id": str(found.room.assignment_id),
            "coachloop.scenario": found.ticket.scenario,
        },
    )
    logger.info(
        "practice room accepted",
        extra={"room": found.room.name, "assignment_id": found.room.assignment_id},
    )


def prewarm(setup: WorkerSetup, proc: JobProcess) -> None:
    """Load the speech models and the practice models once, when a job process starts."""
    from voice.practice import VoicePractice

    voice = VoicePractice(setup.voice, setup.data_dir)
    voice.load()
    proc.userdata[_VOICE] = voice
    setup.practice.prewarm()
    logger.info("voice job process ready", extra={"pid": proc.pid})


async def entrypoint(setup: WorkerSetup, ctx: JobContext) -> None:
    """One practice room: join, wait for the rep, run the session, send the feedback."""
    job = job_of(ctx.job, prefix=setup.livekit.room_prefix)
    voice: VoicePractice = ctx.proc.userdata[_VOICE]
    log = {"room": job.room.name, "assignment_id": job.room.assignment_id}
    await ctx.connect(auto_subscribe=AutoSubscribe.AUDIO_ONLY)
    rep = await ctx.wait_for_participant(identity=job.rep_identity)
    events = RoomEvents(ctx.room, job.rep_identity)

    async with setup.practice.open_driver() as driver:
        if await _resume_interrupted(driver, job, events):
            ctx.shutdown("practice session already ran in this room")
            return
        try:
            call = await voice.open_call(
                driver,
                scenario=job.ticket.scenario,
                assignment_id=job.ticket.assignment_id,
                rep_external_id=job.ticket.rep,
                session_id=job.room.session_id,
            )
        except ScenarioError as exc:
            logger.warning("practice not started", extra={**log, "reason": str(exc)})
            await events.error(str(exc))
            ctx.shutdown("practice could not start")
            return

        sent = asyncio.Event()

        async def send_result(result: PracticeResult) -> None:
            await events.result(result)
            sent.set()

        async def send_failure(_: Exception) -> None:
            await events.error("The session ended but could not be scored; try again later.")
            sent.set()

        call.on_result(send_result)
        call.agent.on_error(send_failure)
        ending: set[asyncio.Task[Any]] = set()

        def on_data(packet: rtc.DataPacket) -> None:
            if packet.topic != CONTROL_TOPIC or packet.participant is None:
                return
            if packet.participant.identity != job.rep_identity or not _is_end(packet.data):
                return
            logger.info("rep ended the practice session", extra=log)
            task = asyncio.create_task(_end(call), name="practice.end")
            ending.add(task)
            task.add_done_callback(ending.discard)

        ctx.room.on("data_received", on_data)
        await events.ready(call)
        await call.session.start(
            call.agent,
            room=ctx.room,
            room_options=room_io.RoomOptions(
                participant_identity=rep.identity, close_on_disconnect=True
            ),
            record=False,
        )
        await call.wait_closed()
        try:
            await asyncio.wait_for(sent.wait(), timeout=FEEDBACK_WAIT_S)
        except TimeoutError:
            logger.warning("practice feedback not sent", extra=log)
    ctx.shutdown("practice session over")


async def _end(call: PracticeCall) -> None:
    try:
        await call.end()
    except Exception:
        pass  # logged by the agent and sent to the rep by the error listener


async def _resume_interrupted(driver: PracticeDriver, job: PracticeJob, out: RoomEvents) -> bool:
    """A second job in the same room (the first worker stopped): score what was said."""
    try:
        await driver.get_session(job.room.session_id)
    except SessionNotFoundError:
        return False
    logger.info("interrupted practice session scored", extra={"room": job.room.name})
    await out.result(await driver.end_session(job.room.session_id))
    return True


def _is_end(data: bytes) -> bool:
    try:
        message = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(message, dict) and message.get("type") == "end"


class RoomEvents:
    """Sends the rep the session's events (start, scored feedback, errors) as text streams."""

    def __init__(self, room: rtc.Room, identity: str) -> None:
        self._room = room
        self._identity = identity

    async def ready(self, call: PracticeCall) -> None:
        start = call.start
        await self._send(
            {
                "type": "ready",
                "session_id": start.session_id,
                "title": start.title,
                "persona": start.persona,
                "briefing": start.briefing,
                "turn_limit": start.turn_limit,
                "time_box_minutes": start.time_box_minutes,
            }
        )

    async def result(self, result: PracticeResult) -> None:
        await self._send({"type": "feedback", "result": result.model_dump(mode="json")})

    async def error(self, message: str) -> None:
        await self._send({"type": "error", "message": message})

    async def _send(self, message: dict[str, Any]) -> None:
        # the result is stored either way; the rep also finds it on their practice page
        if not self._room.isconnected():
            logger.warning(
                "practice feedback not sent: room closed", extra={"room": self._room.name}
            )
            return
        try:
            await self._room.local_participant.send_text(
                json.dumps(message),
                topic=EVENTS_TOPIC,
                destination_identities=[self._identity],
                compress=False,
            )
        except Exception:
            logger.warning(
                "practice feedback not sent", extra={"room": self._room.name}, exc_info=True
            )


async def serve(server: AgentServer, stop: asyncio.Event) -> None:
    """Run the worker until `stop` is set, then drain: take no new rooms, let running
    sessions finish (up to `DRAIN_TIMEOUT_S`), and close."""
    running = asyncio.create_task(server.run(), name="voice.worker")
    stopping = asyncio.create_task(stop.wait(), name="voice.worker_stop")
    done, _ = await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if running in done:
        await server.aclose()
        running.result()
        return
    logger.info("voice worker draining", extra={"active_jobs": len(server.active_jobs)})
    try:
        await server.drain()
    except TimeoutError:
        logger.warning("voice worker drain timed out")
    await server.aclose()
    await running


def run_forever(server: AgentServer, *, on_registered: Callable[[str], None] | None = None) -> None:
    """Run the worker in this process until SIGINT or SIGTERM (a second signal stops at once)."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        closing: set[asyncio.Task[None]] = set()

        def on_signal() -> None:
            if stop.is_set():
                logger.warning("voice worker stopping now")
                task = loop.create_task(server.aclose())
                closing.add(task)
                task.add_done_callback(closing.discard)
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        if on_registered is not None:
            server.on("worker_registered", lambda worker_id, _info: on_registered(worker_id))
        await serve(server, stop)

    asyncio.run(main())
