"""Speech-to-text with faster-whisper on the CPU, off the event loop."""

from __future__ import annotations

import asyncio
import logging
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
from faster_whisper import WhisperModel, decode_audio
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
"""Whisper hears 16 kHz mono; other rates are resampled first."""

Samples = npt.NDArray[np.float32]

SHORT_CONTEXT_MAX_S = 25.0
"""Utterances up to this long take the short-context path in `transcribe`."""
_MIN_CONTEXT_FRAMES = 1000  # 10 s; shorter contexts make Whisper repeat itself
_FRAMES_PER_S = 100
_SECONDS_PER_TIMESTAMP = 0.02


@dataclass(frozen=True, slots=True)
class Word:
    start_s: float
    end_s: float
    text: str
    probability: float


@dataclass(frozen=True, slots=True)
class Segment:
    start_s: float
    end_s: float
    text: str
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    words: tuple[Word, ...] = ()


@dataclass(frozen=True, slots=True)
class Transcript:
    """What was said in one stretch of audio, with times in seconds from its start."""

    text: str
    language: str
    duration_s: float
    segments: tuple[Segment, ...] = ()

    @property
    def confidence(self) -> float:
        """Mean per-token probability over the segments, 0 to 1 (0 when nothing was heard)."""
        if not self.segments:
            return 0.0
        return float(np.mean([math.exp(s.avg_logprob) for s in self.segments]))


class WhisperTranscriber:
    """Transcribe speech with one loaded Whisper model.

    `transcribe` is for live utterances and never blocks the event loop: conversion,
    inference and the decoding of faster-whisper's lazy segment generator all run in a
    worker thread. `transcribe_file` and `transcribe_samples` block, for imports and
    benchmarks that run in their own thread or process.

    Args:
        model: A loaded model (see `voice.models.load_whisper_model`); load it once per
            process and share it.
        language: Language code, or None to detect it (multilingual models only).
        beam_size: 1 decodes greedily, the fastest; 5 is Whisper's default.
        short_context: Let `transcribe` encode a short utterance in a window just longer
            than itself (at least 10 s) instead of Whisper's fixed 30 s, which makes a turn
            two to three times faster at the same word error rate (see BENCHMARKS.md). A
            result that looks like a repetition loop is redone the ordinary way.
        name: Model name for logs and metrics.
    """

    def __init__(
        self,
        model: WhisperModel,
        *,
        language: str | None = "en",
        beam_size: int = 1,
        short_context: bool = True,
        name: str = "whisper",
    ) -> None:
        if beam_size < 1:
            raise ValueError(f"beam_size must be at least 1, not {beam_size}")
        self._model = model
        self._language = language
        self._beam_size = beam_size
        self._short_context = short_context
        self.name = name

    @property
    def language(self) -> str | None:
        return self._language

    @property
    def beam_size(self) -> int:
        return self._beam_size

    async def transcribe(
        self,
        pcm16: bytes,
        sample_rate: int = SAMPLE_RATE,
        *,
        channels: int = 1,
        vad_filter: bool = False,
    ) -> Transcript:
        """Transcribe one utterance of signed 16-bit little-endian PCM.

        Args:
            pcm16: Interleaved samples.
            sample_rate: Their rate in Hz; anything but 16 kHz is resampled.
            channels: Interleaved channels, mixed down to mono.
            vad_filter: Drop silence first; useful for push-to-talk audio that was not cut
                by a VAD already (LiveKit's pipeline cuts it).
        """
        return await asyncio.to_thread(
            self._transcribe_pcm, pcm16, sample_rate, channels, vad_filter
        )

    def _transcribe_pcm(
        self, pcm16: bytes, sample_rate: int, channels: int, vad_filter: bool
    ) -> Transcript:
        samples = pcm16_to_samples(pcm16, sample_rate, channels=channels)
        if self._short_context and not vad_filter:
            quick = self.transcribe_short(samples)
            if quick is not None:
                return quick
        return self.transcribe_samples(samples, vad_filter=vad_filter)

    def transcribe_short(self, audio: Samples) -> Transcript | None:
        """Transcribe a short utterance with a shortened encoder window (blocking).

        Whisper pads every input to 30 s, so a 2 s turn costs as much as 30 s of audio. Here
        the mel features are padded only to a whole second past the speech (10 s at least)
        and decoded with timestamps, which is what tells the decoder where the speech ends.

        Returns:
            The transcript, or None when this path does not apply (no fixed language, too
            long) or the result looks like a repetition loop; then use `transcribe_samples`.
        """
        duration = len(audio) / SAMPLE_RATE
        if self._language is None or not 0 < duration <= SHORT_CONTEXT_MAX_S:
            return None
        model = self._model
        features = model.feature_extractor(audio)
        frames = math.ceil((features.shape[-1] + _FRAMES_PER_S) / _FRAMES_PER_S) * _FRAMES_PER_S
        window = pad_or_trim(features, max(_MIN_CONTEXT_FRAMES, min(3000, frames)))
        encoded = model.encode(np.ascontiguousarray(window, dtype=np.float32))
        tokenizer = Tokenizer(
            model.hf_tokenizer,
            model.model.is_multilingual,
            task="transcribe",
            language=self._language,
        )
        [result] = model.model.generate(
            encoded,
            [list(tokenizer.sot_sequence)],
            beam_size=self._beam_size,
            max_length=min(224, 16 + int(duration * 10)),
            return_scores=True,
            return_no_speech_prob=True,
        )
        score, no_speech = float(result.scores[0]), float(result.no_speech_prob)
        segments = _timed_segments(result.sequences_ids[0], tokenizer, duration, score, no_speech)
        text = " ".join(seg.text for seg in segments)
        if no_speech > 0.6 and score < -1.0:
            segments, text = (), ""
        elif text and _compression_ratio(text) > 2.4:
            logger.debug("short context repeated itself, redoing", extra={"model": self.name})
            return None
        return Transcript(
            text=text, language=self._language, duration_s=round(duration, 3), segments=segments
        )

    def transcribe_file(
        self, path: Path | str, *, progress: Callable[[float], None] | None = None
    ) -> Transcript:
        """Transcribe an audio file whole, with segment and word times (blocking)."""
        return self.transcribe_samples(
            decode_audio(str(path), sampling_rate=SAMPLE_RATE),
            word_timestamps=True,
            vad_filter=True,
            progress=progress,
        )

    def transcribe_samples(
        self,
        audio: Samples,
        *,
        word_timestamps: bool = False,
        vad_filter: bool = False,
        progress: Callable[[float], None] | None = None,
    ) -> Transcript:
        """Transcribe 16 kHz mono float samples in [-1, 1] (blocking).

        Args:
            audio: The samples.
            word_timestamps: Also time every word (slower).
            vad_filter: Skip silence with faster-whisper's bundled Silero VAD first; use it
                for long recordings, where Whisper tends to invent text in silence.
            progress: Called with the fraction of the audio done after each segment.
        """
        duration = len(audio) / SAMPLE_RATE
        if len(audio) == 0:
            return Transcript(text="", language=self._language or "", duration_s=0.0)
        segments, info = self._model.transcribe(
            audio,
            language=self._language,
            beam_size=self._beam_size,
            word_timestamps=word_timestamps,
            vad_filter=vad_filter,
        )
        found: list[Segment] = []
        for seg in segments:  # the generator decodes as it is consumed, here in this thread
            text = seg.text.strip()
            if progress is not None and duration > 0:
                progress(min(1.0, float(seg.end) / duration))
            if not text:
                continue
            words = tuple(
                Word(
                    start_s=round(float(w.start), 3),
                    end_s=round(float(w.end), 3),
                    text=w.word.strip(),
                    probability=float(w.probability),
                )
                for w in seg.words or ()
            )
            found.append(
                Segment(
                    start_s=round(float(seg.start), 3),
                    end_s=round(float(seg.end), 3),
                    text=text,
                    avg_logprob=float(seg.avg_logprob),
                    no_speech_prob=float(seg.no_speech_prob),
                    words=words,
                )
            )
        if progress is not None:
            progress(1.0)
        transcript = Transcript(
            text=" ".join(s.text for s in found),
            language=info.language,
            duration_s=round(duration, 3),
            segments=tuple(found),
        )
        logger.debug(
            "speech transcribed",
            extra={
                "model": self.name,
                "duration_s": transcript.duration_s,
                "segments": len(found),
                "pii.text": transcript.text,
            },
        )
        return transcript


def pcm16_to_samples(pcm16: bytes, sample_rate: int, *, channels: int = 1) -> Samples:
    """Signed 16-bit PCM to 16 kHz mono float samples in [-1, 1]."""
    if sample_rate <= 0 or channels <= 0:
        raise ValueError(f"bad audio format: {sample_rate} Hz, {channels} channels")
    usable = len(pcm16) - len(pcm16) % (2 * channels)
    samples = np.frombuffer(pcm16[:usable], dtype="<i2").astype(np.float32) / 32768.0
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1, dtype=np.float32)
    if sample_rate != SAMPLE_RATE and len(samples):
        samples = resample(samples, sample_rate, SAMPLE_RATE)
    return samples


def resample(samples: Samples, from_rate: int, to_rate: int) -> Samples:
    """Resample mono float samples with FFmpeg's resampler (band-limited, no aliasing)."""
    if from_rate == to_rate:
        return samples
    pcm = np.clip(samples * 32768.0, -32768, 32767).astype(np.int16)
    frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = from_rate
    resampler = av.AudioResampler(format="s16", layout="mono", rate=to_rate)
    out = [f.to_ndarray() for f in resampler.resample(frame) + resampler.resample(None)]
    if not out:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(out, axis=1).reshape(-1).astype(np.float32) / 32768.0


def _timed_segments(
    tokens: list[int], tokenizer: Tokenizer, duration: float, score: float, no_speech: float
) -> tuple[Segment, ...]:
    """Split decoded tokens at timestamp tokens into timed segments."""
    segments: list[Segment] = []
    text_tokens: list[int] = []
    start = 0.0
    for token in [*tokens, tokenizer.eot]:
        if token < tokenizer.timestamp_begin and token != tokenizer.eot:
            text_tokens.append(token)
            continue
        at = (token - tokenizer.timestamp_begin) * _SECONDS_PER_TIMESTAMP
        end = min(duration, at) if token != tokenizer.eot else duration
        text = tokenizer.decode(text_tokens).strip()
        if any(c.isalnum() for c in text) and start < duration - 0.05:
            segments.append(
                Segment(
                    start_s=round(start, 3),
                    end_s=round(max(start, end), 3),
                    text=text,
                    avg_logprob=score,
                    no_speech_prob=no_speech,
                )
            )
        text_tokens = []
        if token == tokenizer.eot or at >= duration:
            break  # anything timed past the end of the audio is invented
        start = at
    return tuple(segments)


def _compression_ratio(text: str) -> float:
    data = text.encode()
    return len(data) / len(zlib.compress(data))
