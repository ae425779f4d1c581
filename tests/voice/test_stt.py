"""Speech-to-text on real recorded speech and on the project's own synthesized speech."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from faster_whisper.tokenizer import Tokenizer

from tests.voice.audio import overlap, pcm, words
from voice import SpeechAudio, WhisperTranscriber, stt
from voice.stt import pcm16_to_samples, resample


def test_tiny_transcribes_a_known_recording(tiny: WhisperTranscriber, eval_dir: Path) -> None:
    result = tiny.transcribe_file(eval_dir / "speech" / "librivox_sense_and_sensibility_0930.wav")

    assert words(result.text) == "he might even have been made amiable himself".split()
    assert result.language == "en"
    assert result.duration_s == pytest.approx(3.28, abs=0.05)


def test_file_transcripts_carry_segment_and_word_times(
    tiny: WhisperTranscriber, eval_dir: Path
) -> None:
    result = tiny.transcribe_file(eval_dir / "speech" / "cmu_goforward.wav")

    assert words(result.text) == ["go", "forward", "ten", "meters"]
    [segment] = result.segments
    assert 0 <= segment.start_s < segment.end_s <= result.duration_s
    assert [w.text.strip(".").lower() for w in segment.words] == ["go", "forward", "10", "meters"]
    starts = [w.start_s for w in segment.words]
    assert starts == sorted(starts)
    assert all(isinstance(w.start_s, float) for w in segment.words)


def test_base_transcribes_a_known_recording(base: WhisperTranscriber, eval_dir: Path) -> None:
    result = base.transcribe_file(eval_dir / "speech" / "librivox_sense_and_sensibility_0880.wav")

    assert words(result.text) == "he was not an ill disposed young man".split()


async def test_live_pcm_at_any_rate_and_channel_count(
    tiny: WhisperTranscriber, say: Callable[[str], SpeechAudio]
) -> None:
    audio = say("Could you read me the account number, please?")
    mono = pcm(audio.pcm16).astype(np.float32) / 32768
    at_48k = (resample(mono, audio.sample_rate, 48_000) * 32767).astype(np.int16)
    stereo = np.stack([at_48k, at_48k], axis=1).reshape(-1).astype("<i2").tobytes()

    converted = await tiny.transcribe(stereo, 48_000, channels=2)

    assert words(converted.text) == "could you read me the account number please".split()
    assert converted.duration_s == pytest.approx(audio.duration_s, abs=0.05)
    assert 0.5 < converted.confidence <= 1.0


async def test_transcription_leaves_the_event_loop_free(
    tiny: WhisperTranscriber, say: Callable[[str], SpeechAudio]
) -> None:
    audio = say("I was charged twice this month and nobody has called me back yet.")
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.005)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    ticks_before = ticks
    result = await tiny.transcribe(audio.pcm16, audio.sample_rate)
    ticks_during = ticks - ticks_before
    stop.set()
    await task

    assert overlap("charged twice this month nobody has called me back", result.text) >= 0.8
    # a blocked loop would let the ticker run at most once during the call
    assert ticks_during >= 5


async def test_silence_and_empty_input(tiny: WhisperTranscriber) -> None:
    empty = await tiny.transcribe(b"", 16_000)
    silence = await tiny.transcribe(bytes(16_000 * 2), 16_000, vad_filter=True)
    live_silence = await tiny.transcribe(bytes(16_000 * 2), 16_000)

    assert empty.text == "" and empty.segments == () and empty.duration_s == 0
    assert silence.text == "" and silence.duration_s == pytest.approx(1.0)
    assert live_silence.text == "" and live_silence.segments == ()
    assert empty.confidence == 0.0


def test_pcm_conversion_rejects_bad_formats_and_drops_a_torn_sample() -> None:
    assert len(pcm16_to_samples(b"\x01\x00\x02\x00\x03", 16_000)) == 2

    with pytest.raises(ValueError, match="bad audio format"):
        pcm16_to_samples(b"\x00\x00", 0)


def test_resampling_keeps_the_length_in_time() -> None:
    tone = np.sin(np.linspace(0, 440 * 2 * np.pi, 22_050)).astype(np.float32) * 0.5

    out = resample(tone, 22_050, 16_000)

    assert abs(len(out) - 16_000) <= 32
    assert 0.3 < float(np.abs(out).max()) < 0.6


async def test_live_turns_use_a_short_window_and_fall_back_on_a_loop(
    tiny: WhisperTranscriber, say: Callable[[str], SpeechAudio], monkeypatch: pytest.MonkeyPatch
) -> None:
    audio = say("Could you read me the account number, please?")
    samples = pcm16_to_samples(audio.pcm16, audio.sample_rate)

    quick = tiny.transcribe_short(samples)
    monkeypatch.setattr(stt, "_compression_ratio", lambda text: 9.9)
    looped = tiny.transcribe_short(samples)
    fallback = await tiny.transcribe(audio.pcm16, audio.sample_rate)

    assert quick is not None and words(quick.text) == words(fallback.text)
    assert 0 <= quick.segments[0].start_s < quick.segments[-1].end_s <= quick.duration_s
    assert looped is None
    assert words(fallback.text) == "could you read me the account number please".split()


def test_short_window_needs_a_language_and_a_short_clip(tiny: WhisperTranscriber) -> None:
    detect = WhisperTranscriber(tiny._model, language=None)

    assert detect.transcribe_short(np.zeros(16_000, dtype=np.float32)) is None
    assert tiny.transcribe_short(np.zeros(16_000 * 26, dtype=np.float32)) is None
    assert tiny.transcribe_short(np.zeros(0, dtype=np.float32)) is None


def test_timestamps_split_segments_and_nothing_past_the_end_is_kept(
    tiny: WhisperTranscriber,
) -> None:
    tokenizer = Tokenizer(tiny._model.hf_tokenizer, False, task="transcribe", language="en")
    begin = tokenizer.timestamp_begin

    def at(seconds: float) -> int:
        return int(begin + round(seconds / 0.02))

    tokens = [
        at(0.0), *tokenizer.encode(" Hello there."), at(1.2),
        at(1.2), *tokenizer.encode(" How are you?"), at(2.4),
        at(2.4), *tokenizer.encode(" //"), at(2.9),
        at(3.0), *tokenizer.encode(" invented"), at(3.5),
    ]  # fmt: skip

    segments = stt._timed_segments(tokens, tokenizer, 3.0, -0.2, 0.01)

    assert [(s.start_s, s.end_s, s.text) for s in segments] == [
        (0.0, 1.2, "Hello there."),
        (1.2, 2.4, "How are you?"),
    ]
