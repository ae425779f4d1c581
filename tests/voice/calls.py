"""Helpers for voice practice tests: a practice driver on a real database, rep speech made
with the project's own Piper voice, and a microphone that plays it in real time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from fastapi import FastAPI
from livekit.agents.vad import VAD
from livekit.plugins import silero
from pydantic import SecretStr
from sqlalchemy.engine import Engine
from sqlmodel import Session

from config.company import load_company
from config.rubric import RubricLibrary
from config.settings import Settings, VoiceSettings, WebSettings
from evaluators.embeddings import SentenceEncoder
from personas import PersonaLibrary
from scenarios import (
    PracticeDriver,
    PracticeRecorder,
    ScenarioLibrary,
    ScriptedPersona,
    TurnObserver,
    open_checkpointer,
)
from store.db import make_engine, migrate
from store.models import Assignment, Person
from tests.evaluators.keyword_judge import KeywordJudge
from tests.voice.audio import pcm
from voice import PiperSynthesizer, SpeechAudio, VoiceEngines, WhisperTranscriber
from voice.practice import VoicePractice
from voice.stt import resample
from web import PracticeService, create_app
from web.users import set_password

RATE = 16_000
FRAME_S = 0.02


def speech_at(audio: SpeechAudio, rate: int = RATE) -> bytes:
    """Piper's speech resampled to a microphone rate, as 16-bit PCM."""
    samples = resample(pcm(audio.pcm16).astype(np.float32) / 32768, audio.sample_rate, rate)
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


def silence(seconds: float, rate: int = RATE) -> bytes:
    return bytes(2 * int(seconds * rate))


class Microphone:
    """Sends 20 ms frames in real time, speech when some is queued and silence otherwise,
    the way a browser's open microphone does."""

    def __init__(self, send: Callable[[bytes], object], rate: int = RATE) -> None:
        self._send = send
        self._rate = rate
        self._frame_bytes = 2 * int(rate * FRAME_S)
        self._queued = bytearray()
        self._task: asyncio.Task[None] | None = None
        self.speech_ended: asyncio.Event = asyncio.Event()
        """Set when the last queued speech has been sent."""

    def say(self, audio: bytes) -> None:
        self.speech_ended.clear()
        self._queued.extend(audio)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            if self._queued:
                frame = bytes(self._queued[: self._frame_bytes]).ljust(self._frame_bytes, b"\0")
                del self._queued[: self._frame_bytes]
                if not self._queued:
                    self.speech_ended.set()
            else:
                frame = bytes(self._frame_bytes)
            outcome = self._send(frame)
            if asyncio.iscoroutine(outcome):
                await outcome
            next_at += FRAME_S
            await asyncio.sleep(max(0.0, next_at - loop.time()))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass


@asynccontextmanager
async def practice_driver(
    checkpoints: Path,
    library: ScenarioLibrary,
    rubrics: RubricLibrary,
    encoder: SentenceEncoder,
    db: Engine | None,
) -> AsyncIterator[PracticeDriver]:
    """A driver with the scripted persona and a deterministic judge."""
    async with open_checkpointer(checkpoints) as saver:
        yield PracticeDriver(
            library=library,
            rubrics=rubrics,
            engine=ScriptedPersona(),
            observer=TurnObserver(encoder),
            recorder=PracticeRecorder(KeywordJudge(judge_name="keyword@1"), rubrics, db),
            checkpointer=saver,
        )


# -- the web app with voice practice --------------------------------------------------------

PASSWORD = "voice-test-password"
SECRET = "voice-test-secret-" + "x" * 40


@dataclass
class VoiceSite:
    """The real web app with practice and voice practice, over its own database."""

    app: FastAPI
    engine: Engine
    reps: dict[str, int]
    """External id to person id."""


def voice_site(
    data_dir: Path,
    *,
    engines: VoiceEngines,
    vad: VAD,
    library: ScenarioLibrary,
    rubrics: RubricLibrary,
    encoder: SentenceEncoder,
    reps: tuple[str, ...] = ("rep-1", "rep-2"),
) -> VoiceSite:
    """The app `coachloop serve` builds, with the persona scripted and the speech models the
    caller has loaded already; each rep can sign in with `PASSWORD`."""
    data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(f"sqlite:///{data_dir / 'coachloop.db'}")
    migrate(engine)
    now = datetime.now(UTC)
    ids: dict[str, int] = {}
    with Session(engine) as session:
        for external_id in reps:
            person = Person(external_id=external_id, name=f"Rep {external_id}", role="support")
            session.add(person)
            session.commit()
            assert person.id is not None
            ids[external_id] = person.id
    for external_id in reps:
        set_password(engine, external_id, PASSWORD, now=now)

    @asynccontextmanager
    async def open_driver() -> AsyncIterator[PracticeDriver]:
        async with practice_driver(
            data_dir / "practice.sqlite", library, rubrics, encoder, engine
        ) as driver:
            yield driver

    settings = Settings(
        data_dir=data_dir, web=WebSettings(secret_key=SecretStr(SECRET)), voice=VoiceSettings()
    )
    app = create_app(
        engine=engine,
        settings=settings,
        rubrics=rubrics,
        practice=PracticeService(library, open_driver),
        voice=VoicePractice(settings.voice, data_dir, engines=engines, vad=vad),
    )
    return VoiceSite(app=app, engine=engine, reps=ids)


def assign(engine: Engine, rep_id: int, scenario: str) -> int:
    with Session(engine) as session:
        assignment = Assignment(
            rep_id=rep_id,
            scenario_slug=scenario,
            criterion_id="acknowledge",
            reason="practice test",
            dedupe_key=f"voice-test-{rep_id}-{scenario}-{datetime.now(UTC).timestamp()}",
        )
        session.add(assignment)
        session.commit()
        assert assignment.id is not None
        return assignment.id


def sign_in(base_url: str, who: str) -> str:
    """Sign in through the login form; returns the `Cookie` header value."""
    import re

    import httpx

    with httpx.Client(base_url=base_url, follow_redirects=False) as client:
        page = client.get("/login")
        found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert found, "no CSRF token on the sign-in page"
        response = client.post(
            "/login",
            data={"username": who, "password": PASSWORD, "csrf_token": found.group(1), "next": "/"},
        )
        assert response.status_code == 303, response.text
        return "; ".join(f"{name}={value}" for name, value in client.cookies.items())


# -- fixtures (import them into a test module) ----------------------------------------------


@pytest.fixture(scope="module", name="library")
def library_fixture() -> ScenarioLibrary:
    company = load_company()
    return ScenarioLibrary.from_dir(company, PersonaLibrary.from_dir(company))


@pytest.fixture(scope="module", name="rubrics")
def rubrics_fixture() -> RubricLibrary:
    return RubricLibrary.from_dir()


@pytest.fixture(scope="module", name="encoder")
def encoder_fixture() -> SentenceEncoder:
    return SentenceEncoder()


@pytest.fixture(scope="module", name="vad")
def vad_fixture() -> VAD:
    found: VAD = silero.VAD.load()
    return found


@pytest.fixture(scope="module", name="engines")
def engines_fixture(tiny: WhisperTranscriber, synth: PiperSynthesizer) -> VoiceEngines:
    return VoiceEngines(transcriber=tiny, synthesizer=synth)
