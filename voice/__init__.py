"""Speech engines: faster-whisper speech-to-text and Piper text-to-speech, all local.

The engines are plain classes with async methods that never block the event loop, usable
from a LiveKit `AgentSession` (through `voice.livekit_adapters`, the only module here that
imports livekit) or from a plain WebSocket loop.
"""

from voice.engines import (
    VoiceEngines,
    load_engines,
    load_synthesizer,
    load_transcriber,
    model_cache_dir,
)
from voice.errors import RecordingError, VoiceError
from voice.recordings import (
    SUPPORTED_SUFFIXES,
    RecordedTurn,
    Recording,
    agent_channel_index,
    is_recording,
    transcribe_recording,
)
from voice.stt import Segment, Transcript, WhisperTranscriber, Word
from voice.tts import PiperSynthesizer, SpeechAudio, VoiceStyle, split_sentences

__all__ = [
    "SUPPORTED_SUFFIXES",
    "PiperSynthesizer",
    "RecordedTurn",
    "Recording",
    "RecordingError",
    "Segment",
    "SpeechAudio",
    "Transcript",
    "VoiceEngines",
    "VoiceError",
    "VoiceStyle",
    "WhisperTranscriber",
    "Word",
    "agent_channel_index",
    "is_recording",
    "load_engines",
    "load_synthesizer",
    "load_transcriber",
    "model_cache_dir",
    "split_sentences",
    "transcribe_recording",
]
