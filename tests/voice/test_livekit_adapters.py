"""The LiveKit adapters, driven through livekit-agents' own STT, TTS and stream-adapter APIs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from livekit import rtc
from livekit.agents import stt, tts
from livekit.plugins import silero

from tests.voice.audio import overlap, pcm, timeline, words
from voice import PiperSynthesizer, SpeechAudio, VoiceStyle, WhisperTranscriber
from voice.livekit_adapters import PiperTTS, WhisperSTT
from voice.stt import resample

QUESTION = "Could you read me the account number, please?"


def frames_of(samples: np.ndarray, rate: int, frame_ms: int = 20) -> list[rtc.AudioFrame]:
    size = rate * frame_ms // 1000
    padded = np.concatenate([samples, np.zeros(-len(samples) % size, dtype=np.int16)])
    return [
        rtc.AudioFrame(
            data=padded[i : i + size].tobytes(),
            sample_rate=rate,
            num_channels=1,
            samples_per_channel=size,
        )
        for i in range(0, len(padded), size)
    ]


def at_rate(audio: SpeechAudio, rate: int) -> np.ndarray:
    samples = resample(pcm(audio.pcm16).astype(np.float32) / 32768, audio.sample_rate, rate)
    return (samples * 32767).astype(np.int16)


async def test_stt_recognize_returns_a_final_transcript_and_metrics(
    tiny: WhisperTranscriber, say: Callable[[str], SpeechAudio]
) -> None:
    adapter = WhisperSTT(tiny)
    metrics: list[Any] = []
    adapter.on("metrics_collected", metrics.append)
    frames = frames_of(at_rate(say(QUESTION), 48_000), 48_000)

    event = await adapter.recognize(frames)

    assert event.type == stt.SpeechEventType.FINAL_TRANSCRIPT
    [alternative] = event.alternatives
    assert words(alternative.text) == words(QUESTION)
    assert alternative.language == "en"
    assert 0 < alternative.confidence <= 1
    assert len(metrics) == 1 and metrics[0].audio_duration == pytest.approx(
        len(frames) * 0.02, abs=0.01
    )
    assert adapter.model == "tiny.en" and not adapter.capabilities.streaming


async def test_stt_behind_silero_vad_streams_like_an_agent_session(
    tiny: WhisperTranscriber, say: Callable[[str], SpeechAudio]
) -> None:
    spoken = timeline(6.0, 16_000, (1.0, at_rate(say(QUESTION), 16_000)))
    adapter = stt.StreamAdapter(stt=WhisperSTT(tiny), vad=silero.VAD.load())

    events: list[stt.SpeechEvent] = []
    async with adapter.stream() as stream:
        for frame in frames_of(spoken, 16_000):
            stream.push_frame(frame)
        stream.end_input()
        async for event in stream:
            events.append(event)
    await adapter.aclose()

    kinds = [e.type for e in events]
    assert kinds == [
        stt.SpeechEventType.START_OF_SPEECH,
        stt.SpeechEventType.END_OF_SPEECH,
        stt.SpeechEventType.FINAL_TRANSCRIPT,
    ]
    assert words(events[-1].alternatives[0].text) == words(QUESTION)


async def test_tts_synthesize_emits_frames_at_the_voice_rate(
    synth: PiperSynthesizer, tiny: WhisperTranscriber
) -> None:
    adapter = PiperTTS(synth, style=VoiceStyle(variation=0.0))
    text = "I can see the double charge. I will refund it today."

    chunks = [ev async for ev in adapter.synthesize(text)]

    assert len(chunks) > 3
    assert all(c.frame.sample_rate == 22_050 and c.frame.num_channels == 1 for c in chunks)
    assert chunks[-1].is_final and not any(c.is_final for c in chunks[:-1])
    audio = rtc.combine_audio_frames([c.frame for c in chunks])
    assert 2.0 < audio.duration < 6.0
    heard = await tiny.transcribe(bytes(audio.data), audio.sample_rate)
    assert overlap(text, heard.text) >= 0.9


async def test_tts_style_can_change_per_persona(synth: PiperSynthesizer) -> None:
    adapter = PiperTTS(synth, style=VoiceStyle(speed=1.0, variation=0.0))
    normal = await adapter.synthesize("Let me check that for you.").collect()

    adapter.update_options(style=VoiceStyle(speed=1.5, variation=0.0))
    faster = await adapter.synthesize("Let me check that for you.").collect()

    assert faster.duration < normal.duration * 0.9


async def test_tts_behind_the_sentence_stream_adapter_speaks_streamed_llm_text(
    synth: PiperSynthesizer,
) -> None:
    adapter = tts.StreamAdapter(tts=PiperTTS(synth, style=VoiceStyle(variation=0.0)))
    tokens = ["I under", "stand. ", "Let me ", "look at your ", "account now."]

    frames: list[rtc.AudioFrame] = []
    async with adapter.stream() as stream:
        for token in tokens:
            stream.push_text(token)
        stream.end_input()
        async for event in stream:
            frames.append(event.frame)
    await adapter.aclose()

    audio = rtc.combine_audio_frames(frames)
    assert audio.sample_rate == 22_050
    assert 1.5 < audio.duration < 5.0


async def test_tts_of_nothing_speakable_is_a_moment_of_silence(synth: PiperSynthesizer) -> None:
    adapter = PiperTTS(synth)
    errors: list[Any] = []
    adapter.on("error", errors.append)

    audio = await adapter.synthesize("...!").collect()

    assert 0 < audio.duration < 0.05
    assert not any(bytes(audio.data))
    assert errors == []
