"""The voice practice agent through a real `AgentSession`: rep speech made with Piper goes in
through Silero VAD and Whisper, the scripted persona answers through the practice driver, and
Piper's audio comes out; barge-in, silence nudges, the end and the stored score."""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from livekit import rtc
from livekit.agents.llm import ChatMessage
from livekit.agents.vad import VAD
from livekit.agents.voice.events import ConversationItemAddedEvent
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from config.rubric import RubricLibrary
from evaluators.embeddings import SentenceEncoder
from scenarios import PracticeDriver, ScenarioLibrary
from store.db import make_engine, migrate
from store.models import Interaction
from tests.conftest import EVAL_DIR
from tests.scenarios.conftest import add_rep
from tests.voice.audio import overlap, pcm
from tests.voice.calls import (  # noqa: F401 (fixtures)
    RATE,
    Microphone,
    encoder_fixture,
    engines_fixture,
    library_fixture,
    practice_driver,
    rubrics_fixture,
    silence,
    speech_at,
    vad_fixture,
)
from voice import SpeechAudio, VoiceEngines, VoiceStyle, WhisperTranscriber
from voice.agent import PracticeCall, open_practice_call, persona_style, rep_text
from voice.stt import resample
from voice.ws_transport import PushAudioInput, StreamedAudioOutput

SCENARIO = "support-double-charge"
REP_TURN = "I'm sorry about that. Let me look at your account and check the charges for you."
WRAP_UP = "Let's wrap up there."
QUICK = VoiceStyle(speed=2.0, variation=0.0)
"""For tests that do not listen to the persona: it speaks twice as fast, so they wait less."""
CARDS_WAV = EVAL_DIR / "speech" / "cmu_cards_001.wav"


@pytest.fixture
def db(tmp_path: Path) -> Any:
    engine = make_engine(f"sqlite:///{tmp_path / 'coachloop.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
async def driver(
    tmp_path: Path,
    library: ScenarioLibrary,
    rubrics: RubricLibrary,
    encoder: SentenceEncoder,
    db: Engine,
) -> AsyncIterator[PracticeDriver]:
    add_rep(db, "e-200", "support")
    async with practice_driver(
        tmp_path / "practice.sqlite", library, rubrics, encoder, db
    ) as opened:
        yield opened


@dataclass
class Line:
    """An in-process audio line: what the session said, when it was told to stop."""

    frames: list[rtc.AudioFrame] = field(default_factory=list)
    clears: int = 0
    items: list[ChatMessage] = field(default_factory=list)

    async def send(self, frame: rtc.AudioFrame) -> None:
        self.frames.append(frame)

    async def clear(self) -> None:
        self.clears += 1

    def said(self, role: str) -> list[ChatMessage]:
        return [item for item in self.items if item.role == role]

    def audio_since(self, n: int) -> rtc.AudioFrame:
        return rtc.combine_audio_frames(self.frames[n:])


async def until(condition: Callable[[], bool], what: str, guard_s: float = 45) -> None:
    """Wait for `condition`; `guard_s` only guards against a hang."""
    try:
        async with asyncio.timeout(guard_s):
            while not condition():  # noqa: ASYNC110 (polls state the session keeps)
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def heard(transcriber: WhisperTranscriber, audio: rtc.AudioFrame) -> str:
    """What Whisper hears in the persona's audio (transcribed whole, as a recording)."""
    samples = pcm(bytes(audio.data)).astype(np.float32) / 32768
    at_16k = resample(samples, audio.sample_rate, RATE)
    return (await asyncio.to_thread(transcriber.transcribe_samples, at_16k)).text


async def connect(call: PracticeCall) -> tuple[Line, Microphone]:
    line = Line()
    microphone = PushAudioInput(RATE)
    call.session.input.audio = microphone
    call.session.output.audio = StreamedAudioOutput(line.send, line.clear)

    def added(event: ConversationItemAddedEvent) -> None:
        if isinstance(event.item, ChatMessage):
            line.items.append(event.item)

    call.session.on("conversation_item_added", added)
    await call.session.start(call.agent, record=False)
    mic = Microphone(microphone.push)
    mic.start()
    return line, mic


async def test_a_spoken_conversation_is_heard_answered_and_scored(
    driver: PracticeDriver,
    engines: VoiceEngines,
    vad: VAD,
    say: Callable[[str], SpeechAudio],
    tiny: WhisperTranscriber,
    db: Engine,
) -> None:
    call = await open_practice_call(
        driver, engines, scenario=SCENARIO, rep_external_id="e-200", vad=vad
    )
    line, mic = await connect(call)
    try:
        await until(lambda: len(line.said("assistant")) == 1, "the opening line")
        await until(lambda: call.session.agent_state == "listening", "the opening to play out")
        assert line.said("assistant")[0].text_content == call.start.opening
        opening_audio = line.audio_since(0)
        assert overlap(call.start.opening, await heard(tiny, opening_audio)) >= 0.8

        before = len(line.frames)
        mic.say(speech_at(say(REP_TURN)))
        await until(lambda: len(line.said("assistant")) == 2, "the persona's answer")
        [rep] = line.said("user")
        assert overlap(REP_TURN, rep.text_content or "") >= 0.8
        answer = line.said("assistant")[1].text_content or ""
        view = await driver.get_session(call.session_id)
        assert view.turns[1] == ("rep", rep.text_content)
        assert " ".join(view.turns[2][1].split()) == " ".join(answer.split())
        await until(lambda: call.session.agent_state == "listening", "the answer to play out")
        spoken = line.audio_since(before)
        assert spoken.sample_rate == engines.synthesizer.sample_rate
        assert overlap(answer, await heard(tiny, spoken)) >= 0.8
        metrics = rep.metrics or {}
        assert metrics.get("end_of_turn_delay", -1) >= 0 and "transcription_delay" in metrics

        mic.say(speech_at(say(WRAP_UP)))
        result = await asyncio.wait_for(call.agent.result, 60)
        await asyncio.wait_for(call.wait_closed(), 30)
    finally:
        await mic.stop()
        await call.aclose()

    assert (result.outcome, result.end_reason) == ("unresolved", "wrap-up")
    assert result.scored and result.interaction_id is not None
    assert line.clears == 0
    # the persona's closing words were spoken before the session closed
    assert len(line.said("assistant")) == 3
    with Session(db) as session:
        stored = session.exec(select(Interaction).where(Interaction.id == result.interaction_id))
        interaction = stored.one()
    assert interaction.channel == "voice"
    assert (await driver.get_session(call.session_id)).status == "ended"


async def test_the_rep_talking_over_the_persona_stops_it(
    driver: PracticeDriver,
    engines: VoiceEngines,
    vad: VAD,
    say: Callable[[str], SpeechAudio],
) -> None:
    call = await open_practice_call(
        driver, engines, scenario=SCENARIO, rep_external_id="e-200", vad=vad, default_style=QUICK
    )
    line, mic = await connect(call)
    try:
        await until(lambda: call.session.agent_state == "speaking", "the persona to speak")
        await asyncio.sleep(0.8)
        mic.say(speech_at(say(REP_TURN)))
        await until(lambda: line.clears > 0, "the persona to stop")
        await until(lambda: len(line.said("assistant")) == 2, "the answer after the barge-in")
        result = await call.end()
    finally:
        await mic.stop()
        await call.aclose()

    opening, answer = line.said("assistant")
    assert opening.interrupted and not answer.interrupted
    assert line.clears == 1
    [rep] = line.said("user")
    assert overlap(REP_TURN, rep.text_content or "") >= 0.8
    assert result.end_reason == "ended by the rep" and result.interaction_id is not None
    assert result is await call.agent.finish()


async def test_a_silent_rep_is_nudged(
    driver: PracticeDriver, engines: VoiceEngines, vad: VAD
) -> None:
    call = await open_practice_call(
        driver, engines, scenario=SCENARIO, vad=vad, user_away_timeout=0.5, default_style=QUICK
    )
    line, mic = await connect(call)
    try:
        await until(lambda: len(line.said("assistant")) == 2, "a nudge")
    finally:
        await mic.stop()
        await call.end()

    nudge = line.said("assistant")[1].text_content or ""
    assert " ".join(nudge.split()) in [" ".join(n.split()) for n in call.persona.nudges]
    assert line.said("user") == []
    view = await driver.get_session(call.session_id)
    assert view.turns[1] == ("persona", nudge)


@pytest.mark.skipif(not CARDS_WAV.is_file(), reason=f"no recorded speech at {CARDS_WAV}")
async def test_recorded_speech_reaches_the_persona(
    driver: PracticeDriver, engines: VoiceEngines, vad: VAD
) -> None:
    with wave.open(str(CARDS_WAV)) as recording:
        rate, channels = recording.getframerate(), recording.getnchannels()
        samples = np.frombuffer(recording.readframes(recording.getnframes()), dtype="<i2")
    mono = samples.reshape(-1, channels)[:, 0].astype("<i2").tobytes()
    call = await open_practice_call(
        driver, engines, scenario=SCENARIO, vad=vad, default_style=QUICK
    )
    line = Line()
    microphone = PushAudioInput(rate)
    call.session.input.audio = microphone
    call.session.output.audio = StreamedAudioOutput(line.send, line.clear)
    call.session.on(
        "conversation_item_added",
        lambda event: (
            line.items.append(event.item) if isinstance(event.item, ChatMessage) else None
        ),
    )
    await call.session.start(call.agent, record=False)
    mic = Microphone(microphone.push, rate)
    mic.start()
    try:
        await until(lambda: call.session.agent_state == "speaking", "the opening")
        await until(lambda: call.session.agent_state == "listening", "the opening to end")
        mic.say(mono + silence(0.2, rate))
        await until(lambda: len(line.said("assistant")) == 2, "the persona's answer")
    finally:
        await mic.stop()
        await call.end()

    [rep] = line.said("user")
    assert len((rep.text_content or "").split()) >= 3
    view = await driver.get_session(call.session_id)
    assert view.turns[1] == ("rep", rep.text_content)


def test_persona_voice_scales_the_configured_style(library: ScenarioLibrary) -> None:
    persona = library.persona_for(library.get(SCENARIO))
    fast = persona.model_copy(update={"voice": persona.voice.model_copy(update={"speed": 1.5})})

    style = persona_style(fast, VoiceStyle(speed=1.2, variation=0.5))
    assert style.speed == pytest.approx(1.8)
    assert style.variation == pytest.approx(0.5 * persona.voice.variation)
    assert persona_style(fast, VoiceStyle(speed=3.0)).speed == 4.0


def test_rep_text_is_the_newest_rep_message_or_a_silence() -> None:
    from livekit.agents.llm import ChatContext

    chat = ChatContext.empty()
    chat.add_message(role="assistant", content="Hello?")
    assert rep_text(chat) == ""
    chat.add_message(role="user", content=" I can help. ")
    assert rep_text(chat) == "I can help."
    chat.add_message(role="assistant", content="Thanks.")
    assert rep_text(chat) == ""
