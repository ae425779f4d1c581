"""Build the speech engines from settings, once per process, at start-up."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from config.settings import VoiceSettings
from voice.models import (
    load_piper_voice,
    load_whisper_model,
    piper_voice_files,
    whisper_model_dir,
)
from voice.stt import WhisperTranscriber
from voice.tts import PiperSynthesizer, VoiceStyle


@dataclass(frozen=True, slots=True)
class VoiceEngines:
    """The loaded engines a voice worker or an importer shares across sessions."""

    transcriber: WhisperTranscriber
    synthesizer: PiperSynthesizer


def model_cache_dir(voice: VoiceSettings, data_dir: Path) -> Path:
    """`COACHLOOP_VOICE__MODEL_CACHE_DIR`, or `models/` under the data dir."""
    return voice.model_cache_dir or data_dir / "models"


def load_transcriber(
    voice: VoiceSettings, data_dir: Path, *, model: str | None = None
) -> WhisperTranscriber:
    """Prepare and load the Whisper model the settings name (or `model` instead).

    Raises:
        VoiceError: The model is missing or broken; the message names the setting.
    """
    name = model or voice.whisper_model
    folder = whisper_model_dir(name, model_cache_dir(voice, data_dir))
    return WhisperTranscriber(
        load_whisper_model(
            folder, compute_type=voice.whisper_compute_type, cpu_threads=voice.whisper_cpu_threads
        ),
        language=voice.whisper_language,
        beam_size=voice.whisper_beam_size,
        name=name if name in ("base", "tiny.en") else folder.name,
    )


def load_synthesizer(voice: VoiceSettings) -> PiperSynthesizer:
    """Load the Piper voice the settings name, with their default style.

    Raises:
        VoiceError: The voice is missing or broken; the message names the setting.
    """
    files = piper_voice_files(voice.piper_voice)
    return PiperSynthesizer(
        load_piper_voice(files, threads=voice.tts_threads),
        style=VoiceStyle(speed=voice.tts_speed, variation=voice.tts_variation),
        name=files.model.stem,
    )


def load_engines(voice: VoiceSettings, data_dir: Path) -> VoiceEngines:
    """Both engines, ready for a worker; call once per process."""
    return VoiceEngines(
        transcriber=load_transcriber(voice, data_dir), synthesizer=load_synthesizer(voice)
    )
