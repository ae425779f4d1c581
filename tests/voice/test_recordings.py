"""Call recordings to timed turns: stereo with one speaker per channel, mono, every format."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.voice.audio import encode, overlap, pcm, timeline, write_wav
from voice import (
    RecordingError,
    SpeechAudio,
    WhisperTranscriber,
    agent_channel_index,
    transcribe_recording,
)
from voice.recordings import _decode, _probe

AGENT_1 = "Thanks for calling, this is Sam. How can I help you today?"
CUSTOMER = "I was charged twice this month and nobody has called me back yet."
AGENT_2 = "I am sorry about the double charge on your bill. I will refund it today."
RATE = 22_050


@pytest.fixture(scope="module")
def call_audio(say: Callable[[str], SpeechAudio]) -> tuple[list[np.ndarray], list[float]]:
    """A stereo call: the agent on the left channel, the customer on the right."""
    agent_1, customer, agent_2 = (pcm(say(t).pcm16) for t in (AGENT_1, CUSTOMER, AGENT_2))
    starts = [0.5, 0.5 + len(agent_1) / RATE + 1.5]
    starts.append(starts[1] + len(customer) / RATE + 1.5)
    total = starts[2] + len(agent_2) / RATE + 0.8
    left = timeline(total, RATE, (starts[0], agent_1), (starts[2], agent_2))
    right = timeline(total, RATE, (starts[1], customer))
    return [left, right], starts


def test_stereo_call_gives_turns_with_speakers_and_times(
    tmp_path: Path, tiny: WhisperTranscriber, call_audio: tuple[list[np.ndarray], list[float]]
) -> None:
    channels, starts = call_audio
    path = write_wav(tmp_path / "call.wav", channels, RATE)
    seen: list[float] = []

    recording = transcribe_recording(path, transcriber=tiny, agent_channel=0, progress=seen.append)

    assert recording.layout == "stereo" and recording.channels == 2
    assert [t.speaker for t in recording.turns] == ["agent", "customer", "agent"]
    for turn, text, start in zip(
        recording.turns, (AGENT_1, CUSTOMER, AGENT_2), starts, strict=True
    ):
        assert overlap(text, turn.text) >= 0.8
        assert turn.start_s == pytest.approx(start, abs=0.6)
        assert turn.start_s < turn.end_s <= recording.duration_s
    assert recording.turns[0].end_s <= recording.turns[1].start_s + 0.3
    assert recording.duration_s == pytest.approx(len(channels[0]) / RATE, abs=0.01)
    assert seen == sorted(seen) and seen[-1] == 1.0


def test_the_agent_channel_is_configurable(
    tmp_path: Path, tiny: WhisperTranscriber, call_audio: tuple[list[np.ndarray], list[float]]
) -> None:
    channels, _ = call_audio
    path = encode(tmp_path / "call.flac", channels, RATE, "flac")

    recording = transcribe_recording(
        path, transcriber=tiny, agent_channel=agent_channel_index("right")
    )

    assert [t.speaker for t in recording.turns] == ["customer", "agent", "customer"]


def test_stereo_transcribed_mixed_when_no_agent_channel(
    tmp_path: Path, tiny: WhisperTranscriber, call_audio: tuple[list[np.ndarray], list[float]]
) -> None:
    channels, _ = call_audio
    path = write_wav(tmp_path / "call.wav", channels, RATE)

    recording = transcribe_recording(path, transcriber=tiny, agent_channel=None)

    assert recording.layout == "mono"
    assert {t.speaker for t in recording.turns} == {"other"}
    assert overlap(AGENT_1 + CUSTOMER + AGENT_2, " ".join(t.text for t in recording.turns)) > 0.8


def test_mono_call_alternates_speakers_at_pauses_when_asked(
    tmp_path: Path, tiny: WhisperTranscriber, call_audio: tuple[list[np.ndarray], list[float]]
) -> None:
    channels, starts = call_audio
    mixed = (channels[0].astype(np.int32) + channels[1]).clip(-32768, 32767).astype(np.int16)
    path = write_wav(tmp_path / "mono.wav", [mixed], RATE)

    recording = transcribe_recording(path, transcriber=tiny, mono_speakers="alternate")

    assert recording.layout == "mono" and recording.channels == 1
    assert [t.speaker for t in recording.turns] == ["agent", "customer", "agent"]
    assert [t.start_s for t in recording.turns] == pytest.approx(starts, abs=0.6)


def test_identical_stereo_channels_are_read_as_mono(
    tmp_path: Path, tiny: WhisperTranscriber, say: Callable[[str], SpeechAudio]
) -> None:
    clip = timeline(4.0, RATE, (0.3, pcm(say(CUSTOMER).pcm16)))
    path = write_wav(tmp_path / "dual-mono.wav", [clip, clip], RATE)

    recording = transcribe_recording(path, transcriber=tiny, agent_channel=0)

    assert recording.layout == "mono"
    assert [t.speaker for t in recording.turns] == ["other"]


@pytest.mark.parametrize(
    ("suffix", "codec"), [("flac", "flac"), ("mp3", "mp3"), ("m4a", "aac"), ("ogg", "libopus")]
)
def test_every_format_decodes_to_the_same_speech(
    suffix: str, codec: str, tmp_path: Path, say: Callable[[str], SpeechAudio]
) -> None:
    clip = timeline(3.0, 16_000, (0.3, _at_16k(say(CUSTOMER))))
    path = encode(tmp_path / f"call.{suffix}", [clip, clip[::-1].copy()], 16_000, codec)

    left, right = _decode(path, split=True)

    assert _probe(path) == 2
    for original, decoded in ((clip, left), (clip[::-1], right)):
        reference = original.astype(np.float32) / 32768
        assert abs(len(decoded) - len(reference)) < 0.1 * 16_000
        assert _similarity(reference, decoded) > 0.9


def test_a_compressed_recording_is_transcribed(
    tmp_path: Path, tiny: WhisperTranscriber, say: Callable[[str], SpeechAudio]
) -> None:
    clip = timeline(4.5, 16_000, (0.3, _at_16k(say(CUSTOMER))))
    path = encode(tmp_path / "call.m4a", [clip], 16_000, "aac")

    recording = transcribe_recording(path, transcriber=tiny)

    [turn] = recording.turns
    assert overlap(CUSTOMER, turn.text) >= 0.8
    assert turn.start_s == pytest.approx(0.3, abs=0.5)


def _similarity(reference: np.ndarray, decoded: np.ndarray) -> float:
    """Best correlation of the 10 ms loudness envelopes within 200 ms of shift.

    Lossy encoders add a priming delay (AAC about 64 ms), so the signals are compared
    after aligning them.
    """

    def envelope(samples: np.ndarray) -> np.ndarray:
        n = len(samples) // 160 * 160
        return np.asarray(np.abs(samples[:n]).reshape(-1, 160).mean(axis=1))

    ref, dec = envelope(reference), envelope(decoded)
    n = min(len(ref), len(dec)) - 20
    return max(float(np.corrcoef(ref[:n], dec[lag : lag + n])[0, 1]) for lag in range(20))


def test_real_recorded_speech(tiny: WhisperTranscriber, eval_dir: Path) -> None:
    recording = transcribe_recording(
        eval_dir / "speech" / "librispeech_2412-153948-0000.flac", transcriber=tiny
    )

    assert recording.layout == "mono"
    assert (
        overlap(
            "if the reader will excuse me i will say nothing of my antecedents",
            " ".join(t.text for t in recording.turns),
        )
        >= 0.9
    )


def _bad_file(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("name", "data", "kind", "message"),
    [
        ("noise.wav", os.urandom(4000), "decode", "Cannot read `noise.wav` as audio"),
        ("notes.mp3", b"call notes, not audio", "decode", "not really a mp3 recording"),
        ("lyrics.ogg", b"[ar:someone]\n[00:01.00]hello\n", "decode", "`lyrics.ogg`"),
        ("blank.m4a", b"", "empty", "empty (0 bytes)"),
        ("call.txt", b"agent: hello", "unsupported", ".wav, .mp3, .flac, .m4a, .ogg"),
    ],
)
def test_bad_files_get_a_clear_error(
    name: str, data: bytes, kind: str, message: str, tmp_path: Path, tiny: WhisperTranscriber
) -> None:
    path = _bad_file(tmp_path, name, data)

    with pytest.raises(RecordingError) as caught:
        transcribe_recording(path, transcriber=tiny)

    assert caught.value.kind == kind
    assert message in str(caught.value)


def test_truncated_file_is_a_decode_error(
    tmp_path: Path, tiny: WhisperTranscriber, call_audio: tuple[list[np.ndarray], list[float]]
) -> None:
    channels, _ = call_audio
    whole = encode(tmp_path / "whole.flac", channels, RATE, "flac").read_bytes()
    path = _bad_file(tmp_path, "cut.flac", whole[:200])

    with pytest.raises(RecordingError) as caught:
        transcribe_recording(path, transcriber=tiny)

    assert caught.value.kind in ("decode", "empty")


def test_missing_and_silent_recordings(tmp_path: Path, tiny: WhisperTranscriber) -> None:
    silent = write_wav(tmp_path / "silent.wav", [np.zeros(16_000 * 3, dtype=np.int16)] * 2, 16_000)

    with pytest.raises(RecordingError, match="No speech was recognised in `silent.wav`") as caught:
        transcribe_recording(silent, transcriber=tiny)
    assert caught.value.kind == "no_speech"

    with pytest.raises(RecordingError) as missing:
        transcribe_recording(tmp_path / "gone.wav", transcriber=tiny)
    assert missing.value.kind == "not_found"


def test_agent_channel_must_be_left_right_or_none(tmp_path: Path, tiny: WhisperTranscriber) -> None:
    with pytest.raises(ValueError, match="agent_channel"):
        transcribe_recording(tmp_path / "x.wav", transcriber=tiny, agent_channel=2)


def _at_16k(audio: SpeechAudio) -> np.ndarray:
    from voice.stt import resample

    samples = resample(pcm(audio.pcm16).astype(np.float32) / 32768, audio.sample_rate, 16_000)
    return (samples * 32767).astype(np.int16)
