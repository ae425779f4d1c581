"""Memory of a warm LiveKit job process of `coachloop voice worker`.

Each run starts a fresh Python process that does what a worker's job process does before
its first room: imports livekit-agents, runs the worker's prewarm (Whisper, Piper, Silero
and, with `turn-detector`, LiveKit's end-of-turn model) and the practice backend's prewarm
(the sentence encoder). It reports the process's resident memory after loading (`VmRSS`)
and its peak (`VmHWM`, not inherited from the parent). Medians over the runs, per Whisper
model. This is what each of `COACHLOOP_LIVEKIT__IDLE_PROCESSES` costs, and each room in
progress; the worker's main process (registration, no models) is measured too.

    uv run python bench/voice_worker.py --runs 3
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile

PREWARMED = """
import sys
from pathlib import Path
from livekit.agents import JobExecutorType, JobProcess
from app import WorkerPractice
from config.settings import LiveKitSettings, Settings, VoiceSettings
from voice.livekit_worker import WorkerSetup, prewarm

data_dir = Path(sys.argv[1])
voice = VoiceSettings(whisper_model=sys.argv[2], turn_detection=sys.argv[3])
settings = Settings(data_dir=data_dir, voice=voice)
setup = WorkerSetup(
    livekit=LiveKitSettings(), voice=voice, data_dir=data_dir, practice=WorkerPractice(settings)
)
if sys.argv[4] == "job":
    proc = JobProcess(executor_type=JobExecutorType.PROCESS, user_arguments=None, http_proxy=None)
    prewarm(setup, proc)
status = Path("/proc/self/status").read_text()
fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
print(fields["VmRSS"].split()[0], fields["VmHWM"].split()[0])
"""


def measure(data_dir: str, model: str, turn: str, kind: str) -> tuple[float, float]:
    out = subprocess.run(
        [sys.executable, "-c", PREWARMED, data_dir, model, turn, kind],
        capture_output=True,
        text=True,
        check=True,
    )
    rss, hwm = out.stdout.split()[-2:]
    return int(rss) / 1024, int(hwm) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=["base", "tiny.en"])
    parser.add_argument("--turn", default="vad", choices=["vad", "turn-detector"])
    args = parser.parse_args()

    rows = [("worker main process: imports, no models", "-", "main")]
    rows += [(f"job process, Whisper {m}, turns by {args.turn}", m, "job") for m in args.models]
    print("| process | RSS after loading, median | peak RSS, median |")  # noqa: T201
    print("|---|---|---|")  # noqa: T201
    with tempfile.TemporaryDirectory() as data_dir:
        for label, model, kind in rows:
            found = [
                measure(data_dir, model if model != "-" else "tiny.en", args.turn, kind)
                for _ in range(args.runs)
            ]
            rss = statistics.median(r for r, _ in found)
            hwm = statistics.median(h for _, h in found)
            print(f"| {label} | {rss:.0f} MiB | {hwm:.0f} MiB |")  # noqa: T201


if __name__ == "__main__":
    main()
