"""Engines loaded once for the whole voice suite, from the models the packages ship."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from config.settings import VoiceSettings
from voice import PiperSynthesizer, SpeechAudio, VoiceStyle, WhisperTranscriber
from voice.engines import load_synthesizer, load_transcriber


@pytest.fixture(scope="session")
def voice_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("voice-data")


@pytest.fixture(scope="session")
def tiny(voice_data_dir: Path) -> WhisperTranscriber:
    return load_transcriber(VoiceSettings(), voice_data_dir, model="tiny.en")


@pytest.fixture(scope="session")
def base(voice_data_dir: Path) -> WhisperTranscriber:
    return load_transcriber(VoiceSettings(), voice_data_dir, model="base")


@pytest.fixture(scope="session")
def synth() -> PiperSynthesizer:
    return load_synthesizer(VoiceSettings())


@pytest.fixture(scope="session")
def say(synth: PiperSynthesizer) -> Callable[[str], SpeechAudio]:
    """Speak a text once per suite, without variation so it sounds the same every run."""
    cache: dict[str, SpeechAudio] = {}
    flat = VoiceStyle(variation=0.0)

    def speak(text: str) -> SpeechAudio:
        if text not in cache:
            cache[text] = synth.synthesize_blocking(text, style=flat)
        return cache[text]

    return speak
