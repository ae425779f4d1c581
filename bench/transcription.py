"""Speech engines on this machine: Whisper speed and accuracy, Piper speed, worker memory.

Speech-to-text, per model (base and tiny.en by default) and beam size:
- live turn latency: each clip of ../shared/eval/speech transcribed on its own the way
  `WhisperTranscriber.transcribe` does for a live turn (a window just longer than the
  speech, 10 s at least), next to faster-whisper's own path, which always encodes 30 s;
  median and p90 over clips and runs;
- real-time factor clip by clip, both ways: seconds of audio per second of transcription
  over the whole set; median over runs;
- long-audio real-time factor: the clips joined with 1 s gaps into one recording
  (about 68 s) and transcribed whole, as a call recording would be; median over runs;
- CPU seconds per audio second, which does not depend on what else the machine is doing;
- word error rate of both ways, from the hypotheses of the first run, scored by the set's
  own `eval_wer.py`.

Text-to-speech (Piper, en_US-joe-medium): real-time factor of whole replies and the time to
the first audio of a streamed reply, medians over replies and runs.

Memory: peak RSS of a fresh process that loads Whisper and Piper and uses each once, the
footprint of one voice worker.

    uv run python bench/transcription.py --runs 5
    uv run python bench/transcription.py --runs 3 --models tiny.en --beams 1 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from faster_whisper import decode_audio  # noqa: E402

from config.settings import VoiceSettings  # noqa: E402
from voice.engines import load_synthesizer, load_transcriber  # noqa: E402
from voice.stt import SAMPLE_RATE, WhisperTranscriber  # noqa: E402
from voice.tts import PiperSynthesizer  # noqa: E402

SPEECH_DIR = Path(__file__).resolve().parents[2] / "shared" / "eval" / "speech"
REPLIES = [
    "I understand, and I'm sorry you've had to call twice about this.",
    "Let me pull up your account. Can you confirm the postcode on the bill?",
    "I can see the double charge from the third of March. I'll refund it today, and you "
    "should see it back on your card within five working days.",
    "Is there anything else I can help you with?",
    "Honestly, I've heard that before. Last time someone promised a callback and nobody "
    "rang. Why should this time be any different?",
]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load_clips() -> dict[str, np.ndarray]:
    if not SPEECH_DIR.is_dir():
        sys.exit(f"evaluation speech not found at {SPEECH_DIR}; it lives beside the repository")
    files = sorted(p for p in SPEECH_DIR.iterdir() if p.suffix in (".wav", ".flac"))
    return {p.name: decode_audio(str(p), sampling_rate=SAMPLE_RATE) for p in files}


def corpus_wer(hypotheses: dict[str, str], out_dir: Path, label: str) -> str:
    tsv = out_dir / f"hypotheses-{label}.tsv"
    lines = ["file\thypothesis"] + [f"{f}\t{' '.join(t.split())}" for f, t in hypotheses.items()]
    tsv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(SPEECH_DIR / "eval_wer.py"), "--hyp", str(tsv)],
        capture_output=True,
        text=True,
        check=True,
    )
    match = re.search(r"corpus WER (\S+)\s+\((.*)\)", result.stdout)
    return f"{match.group(1)} ({match.group(2)})" if match else "?"


def bench_stt(
    transcriber: WhisperTranscriber, clips: dict[str, np.ndarray], runs: int, out_dir: Path
) -> dict[str, str]:
    audio_s = sum(len(a) for a in clips.values()) / SAMPLE_RATE
    gap = np.zeros(SAMPLE_RATE, dtype=np.float32)
    joined = np.concatenate([part for clip in clips.values() for part in (clip, gap)])
    joined_s = len(joined) / SAMPLE_RATE
    warm = next(iter(clips.values()))
    transcriber.transcribe_samples(warm)
    transcriber.transcribe_short(warm)

    def live(clip: np.ndarray) -> str:
        # what `transcribe` does for a live turn: the short window, else the full one
        quick = transcriber.transcribe_short(clip)
        return quick.text if quick is not None else transcriber.transcribe_samples(clip).text

    figures: dict[str, list[float]] = {
        k: [] for k in ("full", "live", "live_cpu", "full_rtf", "live_rtf", "long_rtf", "long_cpu")
    }
    hypotheses: dict[str, dict[str, str]] = {"full": {}, "live": {}}
    for run in range(runs):
        for path, transcribe in (
            ("full", lambda c: transcriber.transcribe_samples(c).text),
            ("live", live),
        ):
            start = time.perf_counter()
            for name, clip in clips.items():
                t0, c0 = time.perf_counter(), cpu_seconds()
                text = transcribe(clip)
                figures[path].append(time.perf_counter() - t0)
                if path == "live":
                    figures["live_cpu"].append(cpu_seconds() - c0)
                if run == 0:
                    hypotheses[path][name] = text
            figures[f"{path}_rtf"].append(audio_s / (time.perf_counter() - start))

        start, cpu0 = time.perf_counter(), cpu_seconds()
        transcriber.transcribe_samples(joined, vad_filter=True)
        figures["long_rtf"].append(joined_s / (time.perf_counter() - start))
        figures["long_cpu"].append((cpu_seconds() - cpu0) / joined_s)

    label = f"{transcriber.name}-beam{transcriber.beam_size}"
    med = {k: statistics.median(v) for k, v in figures.items()}
    return {
        "model": transcriber.name,
        "beam": str(transcriber.beam_size),
        "live turn latency median / p90": (
            f"{med['live']:.2f} / {np.percentile(figures['live'], 90):.2f} s"
        ),
        "live turn CPU s": f"{med['live_cpu']:.2f}",
        "30 s window latency median": f"{med['full']:.2f} s",
        "RTF clip by clip, live / 30 s window": f"{med['live_rtf']:.1f}x / {med['full_rtf']:.1f}x",
        "RTF long audio": f"{med['long_rtf']:.1f}x",
        "CPU s per audio s (long)": f"{med['long_cpu']:.3f}",
        "WER live": corpus_wer(hypotheses["live"], out_dir, f"{label}-live"),
        "WER 30 s window": corpus_wer(hypotheses["full"], out_dir, f"{label}-full"),
    }


async def bench_tts(synth: PiperSynthesizer, runs: int) -> dict[str, str]:
    await synth.synthesize("Warming up.")
    rtf: list[float] = []
    cpu_per_s: list[float] = []
    first_audio: list[float] = []
    for _ in range(runs):
        for reply in REPLIES:
            start, cpu0 = time.perf_counter(), cpu_seconds()
            audio = await synth.synthesize(reply)
            rtf.append(audio.duration_s / (time.perf_counter() - start))
            cpu_per_s.append((cpu_seconds() - cpu0) / audio.duration_s)

            start = time.perf_counter()
            stream = synth.stream(reply)
            await anext(stream)
            first_audio.append(time.perf_counter() - start)
            await stream.aclose()
    return {
        "TTS RTF (median)": f"{statistics.median(rtf):.1f}x",
        "CPU s per audio s": f"{statistics.median(cpu_per_s):.3f}",
        "time to first audio (median)": f"{statistics.median(first_audio):.3f} s",
        "time to first audio (p90)": f"{np.percentile(first_audio, 90):.3f} s",
    }


WORKER = """
import asyncio, sys
from pathlib import Path
sys.path.insert(0, {root!r})
from config.settings import VoiceSettings
from voice.engines import load_engines
engines = load_engines(VoiceSettings(whisper_model={model!r}), Path({data!r}))
audio = asyncio.run(engines.synthesizer.synthesize("How can I help you today?"))
asyncio.run(engines.transcriber.transcribe(audio.pcm16, audio.sample_rate))
engines.transcriber.transcribe_file({clip!r})
status = Path("/proc/self/status").read_text()
print(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")))
"""


def worker_peak_rss_mib(model: str, data_dir: Path, clip: Path) -> float:
    """Peak RSS (VmHWM, which unlike ru_maxrss is not inherited from the parent)."""
    code = WORKER.format(
        root=str(Path(__file__).resolve().parents[1]),
        model=model,
        data=str(data_dir),
        clip=str(clip),
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1]) / 1024


def table(rows: list[dict[str, str]]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(row[k] for k in keys) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=["base", "tiny.en"])
    parser.add_argument("--beams", nargs="+", type=int, default=[1])
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--out", type=Path, default=None, help="folder for hypothesis TSVs")
    args = parser.parse_args()

    out_dir = args.out or Path(tempfile.mkdtemp(prefix="coachloop-stt-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    clips = load_clips()
    audio_s = sum(len(a) for a in clips.values()) / SAMPLE_RATE
    print(
        f"{len(clips)} clips, {audio_s:.1f} s of speech; {os.cpu_count()} cores; runs={args.runs}"
    )
    print(f"load average before: {os.getloadavg()[0]:.2f}")

    rows = []
    for model in args.models:
        for beam in args.beams:
            settings = VoiceSettings(whisper_model=model, whisper_beam_size=beam)
            transcriber = load_transcriber(settings, args.data_dir)
            rows.append(bench_stt(transcriber, clips, args.runs, out_dir))
            print(table(rows[-1:]), flush=True)
    print("\n## Speech-to-text\n")
    print(table(rows))

    synth = load_synthesizer(VoiceSettings())
    print("\n## Text-to-speech\n")
    print(table([asyncio.run(bench_tts(synth, args.runs))]))

    longest = max(SPEECH_DIR.glob("*.wav"), key=lambda p: p.stat().st_size)
    print("\n## Voice worker memory (peak RSS, both engines loaded and used once)\n")
    memory = [
        {
            "whisper model": m,
            "peak RSS": f"{worker_peak_rss_mib(m, args.data_dir, longest):.0f} MiB",
        }
        for m in args.models
    ]
    print(table(memory))
    print(f"\nload average after: {os.getloadavg()[0]:.2f}; hypotheses in {out_dir}")


if __name__ == "__main__":
    main()
