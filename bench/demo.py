"""How long `coachloop demo` takes: generating the calls, and loading them twice.

Generation is timed on its own (median over the runs); then each run writes the demo files
to a fresh folder and loads them into a fresh SQLite database, once (everything new) and
again (everything already stored). Figures are medians over the runs.

    uv run python bench/demo.py --runs 5
    uv run python bench/demo.py --runs 5 --reps 48
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config.settings import IngestSettings  # noqa: E402
from ingest.demo import DemoOptions, generate_demo, load_demo, write_demo  # noqa: E402
from store.db import make_engine, migrate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--reps", type=int, default=24)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    options = DemoOptions(end_date=date(2026, 3, 13), reps=args.reps, days=args.days)

    generate_s: list[float] = []
    write_s: list[float] = []
    first_s: list[float] = []
    again_s: list[float] = []
    calls = turns = 0
    for _ in range(args.runs):
        started = time.perf_counter()
        data = generate_demo(options)
        generate_s.append(time.perf_counter() - started)
        calls = len(data.calls)
        turns = sum(len(c["turns"]) for c in data.calls)
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            engine = make_engine(f"sqlite:///{root / 'bench.db'}")
            migrate(engine)
            started = time.perf_counter()
            files = write_demo(data, root)
            write_s.append(time.perf_counter() - started)
            for bucket in (first_s, again_s):
                started = time.perf_counter()
                load_demo(engine, files, settings=IngestSettings(), data_dir=root)
                bucket.append(time.perf_counter() - started)
            engine.dispose()

    def median(values: list[float]) -> float:
        return statistics.median(values)

    print(f"{calls} calls, {turns} turns, {args.reps} reps, {args.days} days, {args.runs} runs")
    print(
        f"generate              {median(generate_s):6.2f} s ({calls / median(generate_s):,.0f} calls/s)"
    )
    print(f"write files           {median(write_s):6.2f} s")
    print(
        f"load (all new)        {median(first_s):6.2f} s ({calls / median(first_s):,.0f} calls/s)"
    )
    print(
        f"load again (all dup)  {median(again_s):6.2f} s ({median(first_s) / median(again_s):.1f}x faster)"
    )


if __name__ == "__main__":
    main()
