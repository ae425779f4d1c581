"""Text-to-speech with Piper on the CPU, sentence by sentence, off the event loop."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from piper import PiperVoice, SynthesisConfig

logger = logging.getLogger(__name__)

MAX_SENTENCE_CHARS = 200
"""Longer sentences are cut at a clause boundary, so no single piece delays the audio long."""

_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"')\]]*\s+")
_CLAUSE_END = re.compile(r"(?<=[,;:])\s+")
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr st jr sr vs etc e.g i.e approx no dept min max inc ltd co".split()
)


@dataclass(frozen=True, slots=True)
class VoiceStyle:
    """How a persona sounds, relative to the voice's own defaults.

    Attributes:
        speed: Speaking rate; 1.2 is 20% faster (Piper's length scale divided by it).
        variation: Scales Piper's noise scales; 0 is flat and fully repeatable, 1 is the
            voice's default liveliness.
    """

    speed: float = 1.0
    variation: float = 1.0

    def __post_init__(self) -> None:
        if not 0.25 <= self.speed <= 4.0:
            raise ValueError(f"speed must be between 0.25 and 4, not {self.speed}")
        if not 0.0 <= self.variation <= 2.0:
            raise ValueError(f"variation must be between 0 and 2, not {self.variation}")


@dataclass(frozen=True, slots=True)
class SpeechAudio:
    """Synthesized speech: mono signed 16-bit little-endian PCM."""

    pcm16: bytes
    sample_rate: int
    text: str = ""
    """The text this audio speaks."""

    @property
    def duration_s(self) -> float:
        return len(self.pcm16) / 2 / self.sample_rate


class PiperSynthesizer:
    """Speak text with one loaded Piper voice.

    All inference runs in worker threads. `stream` yields each sentence as soon as it is
    synthesized and works on the next one meanwhile, so the first audio is ready after one
    sentence, not after the whole reply; closing the iterator (a barge-in) stops the work
    after the sentence in progress.

    Args:
        voice: A loaded voice (see `voice.models.load_piper_voice`); share it.
        style: The default style; each call may pass a persona's own.
        name: Voice name for logs and metrics.
    """

    def __init__(
        self, voice: PiperVoice, *, style: VoiceStyle | None = None, name: str = "piper"
    ) -> None:
        self._voice = voice
        self._style = style or VoiceStyle()
        self.name = name

    @property
    def sample_rate(self) -> int:
        return int(self._voice.config.sample_rate)

    @property
    def style(self) -> VoiceStyle:
        return self._style

    def synthesis_config(self, style: VoiceStyle | None = None) -> SynthesisConfig:
        style = style or self._style
        config = self._voice.config
        return SynthesisConfig(
            length_scale=config.length_scale / style.speed,
            noise_scale=config.noise_scale * style.variation,
            noise_w_scale=config.noise_w_scale * style.variation,
        )

    async def synthesize(self, text: str, *, style: VoiceStyle | None = None) -> SpeechAudio:
        """All of `text` as one piece of audio at the voice's rate."""
        return await asyncio.to_thread(self.synthesize_blocking, text, style=style)

    async def stream(
        self, text: str, *, style: VoiceStyle | None = None
    ) -> AsyncGenerator[SpeechAudio, None]:
        """Each sentence of `text` as audio, in order, as soon as it is ready."""
        sentences = split_sentences(text)
        if not sentences:
            return
        config = self.synthesis_config(style)
        pending: asyncio.Future[SpeechAudio] | None = asyncio.ensure_future(
            asyncio.to_thread(self._speak, sentences[0], config)
        )
        try:
            for n in range(len(sentences)):
                assert pending is not None
                audio = await pending
                pending = None
                if n + 1 < len(sentences):
                    pending = asyncio.ensure_future(
                        asyncio.to_thread(self._speak, sentences[n + 1], config)
                    )
                if audio.pcm16:
                    yield audio
        finally:
            if pending is not None:
                pending.cancel()

    def synthesize_blocking(self, text: str, *, style: VoiceStyle | None = None) -> SpeechAudio:
        """All of `text` as one piece of audio (blocking; for threads, imports and benchmarks)."""
        return self._speak(text, self.synthesis_config(style))

    def _speak(self, text: str, config: SynthesisConfig) -> SpeechAudio:
        pcm = b"".join(chunk.audio_int16_bytes for chunk in self._voice.synthesize(text, config))
        logger.debug(
            "speech synthesized",
            extra={"voice": self.name, "bytes": len(pcm), "pii.text": text},
        )
        return SpeechAudio(pcm16=pcm, sample_rate=self.sample_rate, text=text)


def split_sentences(text: str, *, max_chars: int = MAX_SENTENCE_CHARS) -> list[str]:
    """Cut text into sentences for synthesis, keeping abbreviations like `Mr.` whole.

    A sentence longer than `max_chars` is cut again after commas, semicolons or colons.
    """
    pieces: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        candidate = text[start : match.start()].strip()
        last_word = candidate.rsplit(None, 1)[-1] if candidate else ""
        if last_word.rstrip(".").lower() in _ABBREVIATIONS or _is_initial(last_word):
            continue
        pieces.append(text[start : match.end()])
        start = match.end()
    pieces.append(text[start:])

    sentences: list[str] = []
    for piece in (" ".join(p.split()) for p in pieces):
        if not any(c.isalnum() for c in piece):
            continue
        sentences.extend(_cut_long(piece, max_chars))
    return sentences


def _is_initial(word: str) -> bool:
    return len(word) == 2 and word[0].isupper() and word[1] == "."


def _cut_long(sentence: str, max_chars: int) -> list[str]:
    if len(sentence) <= max_chars:
        return [sentence]
    out: list[str] = []
    current = ""
    for clause in _CLAUSE_END.split(sentence):
        if current and len(current) + 1 + len(clause) > max_chars:
            out.append(current)
            current = clause
        else:
            current = f"{current} {clause}" if current else clause
    if current:
        out.append(current)
    return out
