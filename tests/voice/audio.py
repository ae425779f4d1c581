"""Audio helpers for the voice tests: comparable words, placing speech in time, files."""

from __future__ import annotations

import re
import wave
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

Pcm = npt.NDArray[np.int16]

_NUMBERS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty"
).split()


def words(text: str) -> list[str]:
    """Lower-case words without punctuation, small numbers spelled out."""
    out = []
    for word in re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " ")).split():
        word = word.strip("'")
        if word.isdigit() and int(word) <= 20:
            out.append(_NUMBERS[int(word)])
        elif word:
            out.append(word)
    return out


def overlap(expected: str, heard: str) -> float:
    """Share of the expected words that were heard (order-insensitive)."""
    want, got = words(expected), set(words(heard))
    return sum(w in got for w in want) / len(want)


def pcm(data: bytes) -> Pcm:
    return np.frombuffer(data, dtype="<i2").copy()


def timeline(total_s: float, rate: int, *placed: tuple[float, Pcm]) -> Pcm:
    """Silence of `total_s` seconds with each clip copied in at its start time."""
    out = np.zeros(int(total_s * rate), dtype=np.int16)
    for start_s, clip in placed:
        at = int(start_s * rate)
        out[at : at + len(clip)] = clip[: len(out) - at]
    return out


def write_wav(path: Path, channels: list[Pcm], rate: int) -> Path:
    interleaved = np.stack(channels, axis=1).reshape(-1)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(len(channels))
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(interleaved.astype("<i2").tobytes())
    return path


def encode(path: Path, channels: list[Pcm], rate: int, codec: str) -> Path:
    """Write a compressed file (flac, mp3, aac in m4a, opus in ogg) with PyAV's encoders."""
    layout = "mono" if len(channels) == 1 else "stereo"
    interleaved = np.stack(channels, axis=1).reshape(1, -1).astype(np.int16)
    frame = av.AudioFrame.from_ndarray(interleaved, format="s16", layout=layout)
    frame.sample_rate = rate
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path
