"""Turn a call recording into timed turns: one speaker per stereo channel, or mono whole.

Stereo recordings from contact-centre platforms usually carry the rep on one channel and
the customer on the other. Each channel is transcribed on its own and the segments are
merged by start time into turns, so every turn keeps its start and end in seconds.

A mono recording has no such separation. It is transcribed whole and cut into turns at
pauses of at least `turn_gap_s`. Its speakers are either all `other` (the default: honest,
nothing is guessed) or, with `mono_speakers="alternate"`, agent and customer in turn
starting with the agent, which is right only for tidy calls without back-channel noises;
treat those labels as a rough guess. A stereo file whose two channels carry the same
signal is handled as mono.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import av
import numpy as np
from faster_whisper import decode_audio
from faster_whisper.vad import VadOptions, get_speech_timestamps

from voice.errors import RecordingError
from voice.stt import SAMPLE_RATE, Samples, Segment, WhisperTranscriber, Word

logger = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = (".wav", ".mp3", ".flac", ".m4a", ".ogg")
_PHRASE_GAP_S = 0.3
"""In stereo, a pause this long ends a phrase, where the other speaker may cut in."""

Speaker = Literal["agent", "customer", "other"]
MonoSpeakers = Literal["other", "alternate"]


@dataclass(frozen=True, slots=True)
class RecordedTurn:
    speaker: Speaker
    text: str
    start_s: float
    end_s: float


@dataclass(frozen=True, slots=True)
class Recording:
    """A transcribed call recording.

    Attributes:
        path: The file.
        turns: The conversation in order of start time.
        duration_s: Length of the audio.
        channels: Channels in the file.
        layout: `stereo` when each speaker was transcribed from their own channel, else `mono`.
        language: Language of the speech.
    """

    path: Path
    turns: list[RecordedTurn]
    duration_s: float
    channels: int
    layout: Literal["stereo", "mono"]
    language: str


def agent_channel_index(setting: Literal["left", "right", "none"]) -> int | None:
    """`COACHLOOP_VOICE__RECORDING_AGENT_CHANNEL` as a channel index (None: transcribe mixed)."""
    return {"left": 0, "right": 1, "none": None}[setting]


def is_recording(path: Path) -> bool:
    """Whether the file name has one of the audio suffixes this module reads."""
    return path.suffix.lower() in SUPPORTED_SUFFIXES


def transcribe_recording(
    path: Path | str,
    *,
    transcriber: WhisperTranscriber,
    agent_channel: int | None = 0,
    mono_speakers: MonoSpeakers = "other",
    turn_gap_s: float = 1.0,
    progress: Callable[[float], None] | None = None,
) -> Recording:
    """Transcribe one call recording into turns with speakers and times (blocking).

    Args:
        path: A wav, mp3, flac, m4a or ogg file.
        transcriber: The Whisper transcriber to use.
        agent_channel: The channel (0 left, 1 right) that holds the rep in a stereo file; None
            transcribes a stereo file mixed down, like a mono one.
        mono_speakers: How turns of a mono recording are labelled (see the module docs).
        turn_gap_s: In a mono recording, a pause at least this long starts a new turn.
        progress: Called with the fraction done, 0 to 1.

    Raises:
        RecordingError: The file is missing, not a supported kind, cannot be decoded, holds
            no audio or no speech. `kind` says which.
    """
    path = Path(path)
    if agent_channel not in (0, 1, None):
        raise ValueError(f"agent_channel must be 0, 1 or None, not {agent_channel!r}")
    channels = _probe(path)
    split = channels >= 2 and agent_channel is not None
    audio = _decode(path, split)

    if isinstance(audio, tuple):
        left, right = audio
        if _same_signal(left, right):
            logger.info(
                "stereo channels identical, transcribing as mono", extra={"pii.path": str(path)}
            )
            audio = left
    duration = (len(audio[0]) if isinstance(audio, tuple) else len(audio)) / SAMPLE_RATE
    if duration == 0:
        raise RecordingError(f"`{path.name}` holds no audio samples", kind="empty")

    if isinstance(audio, tuple):
        assert agent_channel is not None
        turns, language = _stereo_turns(audio, agent_channel, transcriber, progress)
        layout: Literal["stereo", "mono"] = "stereo"
    else:
        turns, language = _mono_turns(audio, transcriber, mono_speakers, turn_gap_s, progress)
        layout = "mono"
    if not turns:
        raise RecordingError(
            f"No speech was recognised in `{path.name}` ({duration:.1f} s of audio); check "
            "that it is a call recording and not silence or music",
            kind="no_speech",
        )
    logger.info(
        "recording transcribed",
        extra={
            "pii.path": str(path),
            "layout": layout,
            "turns": len(turns),
            "duration_s": duration,
        },
    )
    return Recording(
        path=path,
        turns=turns,
        duration_s=round(duration, 3),
        channels=channels,
        layout=layout,
        language=language,
    )


def _probe(path: Path) -> int:
    if not path.is_file():
        raise RecordingError(f"`{path}` does not exist", kind="not_found")
    if not is_recording(path):
        raise RecordingError(
            f"`{path.name}` is not a supported recording; use one of "
            f"{', '.join(SUPPORTED_SUFFIXES)}",
            kind="unsupported",
        )
    if path.stat().st_size == 0:
        raise RecordingError(f"`{path.name}` is empty (0 bytes)", kind="empty")
    try:
        with av.open(str(path), mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise RecordingError(
                    f"`{path.name}` has no audio stream; export the call as audio",
                    kind="decode",
                )
            return int(container.streams.audio[0].channels)
    except av.FFmpegError as exc:
        raise RecordingError(
            f"Cannot read `{path.name}` as audio ({type(exc).__name__}); the file is damaged "
            f"or not really a {path.suffix.lstrip('.')} recording",
            kind="decode",
        ) from None


def _decode(path: Path, split: bool) -> Samples | tuple[Samples, Samples]:
    try:
        decoded = decode_audio(str(path), sampling_rate=SAMPLE_RATE, split_stereo=split)
    except (av.FFmpegError, ValueError, IndexError) as exc:
        raise RecordingError(
            f"Cannot decode the audio of `{path.name}` ({type(exc).__name__}); the file is "
            "damaged or truncated",
            kind="decode",
        ) from None
    if split:
        left, right = decoded
        return np.asarray(left, dtype=np.float32), np.asarray(right, dtype=np.float32)
    return np.asarray(decoded, dtype=np.float32)


def _same_signal(left: Samples, right: Samples) -> bool:
    if len(left) != len(right) or not len(left):
        return False
    loudness = float(np.abs(left).mean() + np.abs(right).mean()) / 2
    return float(np.abs(left - right).mean()) <= 0.02 * max(loudness, 1e-6)


def _stereo_turns(
    audio: tuple[Samples, Samples],
    agent_channel: int,
    transcriber: WhisperTranscriber,
    progress: Callable[[float], None] | None,
) -> tuple[list[RecordedTurn], str]:
    pieces: list[RecordedTurn] = []
    language = ""
    for index, samples in enumerate(audio):
        speaker: Speaker = "agent" if index == agent_channel else "customer"
        done = index / 2

        def channel_progress(fraction: float, done: float = done) -> None:
            if progress is not None:
                progress(done + fraction / 2)

        transcript = transcriber.transcribe_samples(
            samples, word_timestamps=True, vad_filter=True, progress=channel_progress
        )
        language = language or (transcript.language if transcript.segments else "")
        pieces.extend(_phrases(transcript.segments, speaker, samples, _PHRASE_GAP_S))

    # whole channels interleave by time; a speaker's phrases join until the other one speaks
    pieces.sort(key=lambda p: (p.start_s, p.end_s))
    turns: list[RecordedTurn] = []
    for piece in pieces:
        last = turns[-1] if turns else None
        if last is not None and last.speaker == piece.speaker:
            turns[-1] = _joined(last, piece)
        else:
            turns.append(piece)
    return turns, language or (transcriber.language or "")


def _mono_turns(
    audio: Samples,
    transcriber: WhisperTranscriber,
    mono_speakers: MonoSpeakers,
    turn_gap_s: float,
    progress: Callable[[float], None] | None,
) -> tuple[list[RecordedTurn], str]:
    transcript = transcriber.transcribe_samples(
        audio, word_timestamps=True, vad_filter=True, progress=progress
    )
    turns = _phrases(transcript.segments, "other", audio, turn_gap_s)
    if mono_speakers == "alternate":
        turns = [
            RecordedTurn("agent" if n % 2 == 0 else "customer", t.text, t.start_s, t.end_s)
            for n, t in enumerate(turns)
        ]
    return turns, transcript.language


def _phrases(
    segments: Sequence[Segment], speaker: Speaker, audio: Samples, gap_s: float
) -> list[RecordedTurn]:
    """Words grouped into phrases, a new one after each pause of at least `gap_s`.

    Whisper stretches word times over the silence around them, and its segments can run
    across long pauses, so the pauses come from the VAD on the audio itself; each word
    belongs to the stretch of speech its middle falls in (a segment without word times
    counts as one word).
    """
    regions = get_speech_timestamps(
        audio, VadOptions(min_silence_duration_ms=int(gap_s * 1000), speech_pad_ms=100)
    )
    starts = [region["start"] / SAMPLE_RATE for region in regions]
    phrases: list[RecordedTurn] = []
    current = -1
    for segment in segments:
        words = segment.words or (Word(segment.start_s, segment.end_s, segment.text, 1.0),)
        for word in words:
            if not word.text:
                continue
            region = max(0, bisect.bisect_right(starts, (word.start_s + word.end_s) / 2) - 1)
            piece = RecordedTurn(speaker, word.text, word.start_s, word.end_s)
            if phrases and region == current:
                phrases[-1] = _joined(phrases[-1], piece)
            else:
                phrases.append(piece)
            current = region
    return phrases


def _joined(first: RecordedTurn, second: RecordedTurn) -> RecordedTurn:
    return RecordedTurn(
        speaker=first.speaker,
        text=f"{first.text} {second.text}",
        start_s=first.start_s,
        end_s=max(first.end_s, second.end_s),
    )
