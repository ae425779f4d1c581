"""Helpers for voice practice tests: a practice driver on a real database, rep speech made
with the project's own Piper voice, and a microphone that plays it in real time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
from sqlalchemy.engine import Engine

from config.rubric import RubricLibrary
from evaluators.embeddings import SentenceEncoder
from scenarios import (
    PracticeDriver,
    PracticeRecorder,
    ScenarioLibrary,
    ScriptedPersona,
    TurnObserver,
    open_checkpointer,
)
from tests.evaluators.keyword_judge import KeywordJudge
from tests.voice.audio import pcm
from voice import SpeechAudio
from voice.stt import resample

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
