"""LiveKit Agents adapters over the local engines; the only engine module that imports livekit.

Both are batch engines: LiveKit's `AgentSession` wraps `WhisperSTT` in its `stt.StreamAdapter`
with a VAD (Silero, from `livekit-plugins-silero`) and `PiperTTS` in its `tts.StreamAdapter`,
which feeds it one sentence of the LLM's reply at a time.
"""

from __future__ import annotations

from typing import Never

from livekit import rtc
from livekit.agents import stt, tts, utils
from livekit.agents.language import LanguageCode
from livekit.agents.types import (
    DEFAULT_API_CONNECT_OPTIONS,
    NOT_GIVEN,
    APIConnectOptions,
    NotGivenOr,
)

from voice.stt import WhisperTranscriber
from voice.tts import PiperSynthesizer, VoiceStyle

_SILENCE_MS = 20


class WhisperSTT(stt.STT[Never]):
    """LiveKit speech-to-text over a shared `WhisperTranscriber`."""

    def __init__(self, transcriber: WhisperTranscriber) -> None:
        super().__init__(
            capabilities=stt.STTCapabilities(
                streaming=False, interim_results=False, aligned_transcript=False
            )
        )
        self._transcriber = transcriber

    @property
    def model(self) -> str:
        return self._transcriber.name

    @property
    def provider(self) -> str:
        return "faster-whisper"

    async def _recognize_impl(
        self,
        buffer: utils.AudioBuffer,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions,
    ) -> stt.SpeechEvent:
        frame = rtc.combine_audio_frames(buffer)
        result = await self._transcriber.transcribe(
            bytes(frame.data), frame.sample_rate, channels=frame.num_channels
        )
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            request_id=utils.shortuuid("stt_"),
            alternatives=[
                stt.SpeechData(
                    language=LanguageCode(
                        result.language or (language if utils.is_given(language) else "")
                    ),
                    text=result.text,
                    start_time=result.segments[0].start_s if result.segments else 0.0,
                    end_time=result.segments[-1].end_s if result.segments else 0.0,
                    confidence=result.confidence,
                )
            ],
        )


class PiperTTS(tts.TTS[Never]):
    """LiveKit text-to-speech over a shared `PiperSynthesizer`, in a persona's style."""

    def __init__(self, synthesizer: PiperSynthesizer, *, style: VoiceStyle | None = None) -> None:
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=False),
            sample_rate=synthesizer.sample_rate,
            num_channels=1,
        )
        self._synthesizer = synthesizer
        self._style = style

    @property
    def model(self) -> str:
        return self._synthesizer.name

    @property
    def provider(self) -> str:
        return "piper"

    def update_options(self, *, style: VoiceStyle | None) -> None:
        self._style = style

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        return _PiperStream(tts=self, input_text=text, conn_options=conn_options)


class _PiperStream(tts.ChunkedStream):
    def __init__(self, *, tts: PiperTTS, input_text: str, conn_options: APIConnectOptions) -> None:
        super().__init__(tts=tts, input_text=input_text, conn_options=conn_options)
        self._piper = tts

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        output_emitter.initialize(
            request_id=utils.shortuuid("tts_"),
            sample_rate=self._piper.sample_rate,
            num_channels=1,
            mime_type="audio/pcm",
        )
        spoken = False
        async for audio in self._piper._synthesizer.stream(
            self.input_text, style=self._piper._style
        ):
            output_emitter.push(audio.pcm16)
            spoken = True
        if not spoken:
            # text with nothing to say ("...") is not a failure worth LiveKit's retries
            output_emitter.push(bytes(2 * self._piper.sample_rate * _SILENCE_MS // 1000))
        output_emitter.flush()
