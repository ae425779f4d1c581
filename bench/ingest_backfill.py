"""Backfill benchmark: ingest N calls of T turns on SQLite and PostgreSQL.

Generates the calls once (one JSON file per call, the shape of a real backfill, and/or JSONL
shards of 1,000 calls), then runs `ingest_paths` in a child process per run against a fresh
database, so the peak RSS reported is the ingest's own. Reports medians over the runs.

    uv run python bench/ingest_backfill.py --calls 36000 --turns 40 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

_WORDS = (
    "thanks for calling today account order refund delivery card charge billing late "
    "understand sorry help check moment confirm address number email plan upgrade cancel "
    "replace damaged missing tracking week fee credit waive policy manager ticket follow up "
    "anything else appreciate patience totally frustrating again twice promised yesterday"
).split()


def _sentence(rng: random.Random) -> str:
    words = rng.choices(_WORDS, k=rng.randint(8, 22))
    return " ".join(words).capitalize() + rng.choice(".?!")


def _call(n: int, turns: int, rng: random.Random) -> dict[str, object]:
    start = datetime(2026, 1, 5, 8, tzinfo=UTC) + timedelta(minutes=7 * n)
    t = 0.0
    out = []
    for i in range(turns):
        length = rng.uniform(1.5, 9.0)
        out.append(
            {
                "speaker": "agent" if i % 2 == 0 else "customer",
                "start_s": round(t, 2),
                "end_s": round(t + length, 2),
                "text": _sentence(rng),
            }
        )
        t += length + rng.uniform(0.1, 1.2)
    return {
        "external_id": f"bf-{n:06d}",
        "rep": f"rep-{n % 60:02d}@harbor.example",
        "team": f"team-{n % 6}",
        "channel": "phone",
        "started_at": start.isoformat(),
        "duration_s": round(t, 2),
        "turns": out,
        "meta": {"queue": rng.choice(["billing", "orders", "returns"])},
    }


def generate(workdir: Path, calls: int, turns: int) -> tuple[Path, Path]:
    files = workdir / f"files-{calls}x{turns}"
    shards = workdir / f"shards-{calls}x{turns}"
    if files.is_dir() and shards.is_dir():
        return files, shards
    rng = random.Random(7)
    files.mkdir(parents=True, exist_ok=True)
    shards.mkdir(parents=True, exist_ok=True)
    shard_lines: list[str] = []
    for n in range(calls):
        body = json.dumps(_call(n, turns, rng))
        folder = files / f"{n // 1000:03d}"
        if n % 1000 == 0:
            folder.mkdir(exist_ok=True)
        (folder / f"bf-{n:06d}.json").write_text(body, encoding="utf-8")
        shard_lines.append(body)
        if len(shard_lines) == 1000 or n == calls - 1:
            (shards / f"shard-{n // 1000:03d}.jsonl").write_text(
                "\n".join(shard_lines) + "\n", encoding="utf-8"
            )
            shard_lines = []
    return files, shards


def child(url: str, path: Path, data_dir: Path, rerun: bool) -> None:
    """Runs in its own process: migrate a fresh database, ingest, print figures as JSON."""
    from config.settings import IngestSettings
    from ingest import ingest_paths
    from store.db import make_engine, migrate

    engine = make_engine(url)
    migrate(engine)
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    report = ingest_paths(engine, [path], settings=IngestSettings(), data_dir=data_dir)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    peak_kb = after.ru_maxrss
    rerun_seconds = None
    if rerun:
        started = time.perf_counter()
        again = ingest_paths(engine, [path], settings=IngestSettings(), data_dir=data_dir)
        rerun_seconds = time.perf_counter() - started
        assert again.new == 0 and again.duplicate == report.new
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_s": cpu,
                "new": report.new,
                "duplicate": report.duplicate,
                "rejected": report.rejected,
                "peak_rss_mb": peak_kb / 1024,
                "rerun_s": rerun_seconds,
            }
        )
    )


def _run_once(db: str, path: Path, scratch: Path, rerun: bool) -> dict[str, float]:
    schema = None
    if db == "sqlite":
        url = f"sqlite:///{scratch / f'bench-{uuid.uuid4().hex[:8]}.db'}"
    else:
        from sqlalchemy import text

        from store.db import make_engine

        schema = f"bench_{uuid.uuid4().hex[:10]}"
        admin = make_engine(POSTGRES_URL)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        admin.dispose()
        url = f"{POSTGRES_URL}?options={quote(f'-csearch_path={schema}')}"
    try:
        wall = time.perf_counter()
        done = subprocess.run(
            [sys.executable, __file__, "--child", url, str(path), str(scratch / "data")]
            + (["--rerun"] if rerun else []),
            check=True,
            capture_output=True,
            text=True,
        )
        figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
        figures["process_s"] = time.perf_counter() - wall
        figures["load"] = os.getloadavg()[0]
        return figures
    finally:
        if schema is not None:
            from sqlalchemy import text

            from store.db import make_engine

            admin = make_engine(POSTGRES_URL)
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=36_000)
    parser.add_argument("--turns", type=int, default=40)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--layouts", default="files,jsonl")
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "coachloop-bench"
    )
    parser.add_argument(
        "--rerun", action="store_true", help="ingest everything a second time (all duplicates)"
    )
    parser.add_argument("--child", nargs=3, metavar=("URL", "PATH", "DATA_DIR"))
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]), args.rerun)
        return

    args.workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    files, shards = generate(args.workdir, args.calls, args.turns)
    print(f"data ready in {time.perf_counter() - started:.1f} s: {files}, {shards}")
    layouts = {"files": files, "jsonl": shards}
    print(f"{args.calls:,} calls x {args.turns} turns, {args.runs} runs each, medians")
    print(f"machine: {os.cpu_count()} cores; load average now {os.getloadavg()[0]:.1f}")
    print(
        "database  layout  calls/s  ingest s  cpu s  process s  peak RSS MB  load  new/dup/rejected"
    )
    for db in args.databases.split(","):
        for layout in args.layouts.split(","):
            results = []
            for _ in range(args.runs):
                with tempfile.TemporaryDirectory(dir=args.workdir) as scratch:
                    results.append(_run_once(db, layouts[layout], Path(scratch), args.rerun))
            seconds = statistics.median(r["seconds"] for r in results)
            cpu = statistics.median(r["cpu_s"] for r in results)
            process = statistics.median(r["process_s"] for r in results)
            rss = statistics.median(r["peak_rss_mb"] for r in results)
            load = statistics.median(r["load"] for r in results)
            counts = {(int(r["new"]), int(r["duplicate"]), int(r["rejected"])) for r in results}
            each = ", ".join(f"{r['seconds']:.1f}" for r in results)
            if args.rerun:
                rerun = statistics.median(r["rerun_s"] for r in results)
                each += f" s; re-run of the same files, all duplicates: {rerun:.1f}"
            print(
                f"{db:<9} {layout:<7} {args.calls / seconds:>7,.0f}  {seconds:>8.1f}  "
                f"{cpu:>5.1f}  {process:>9.1f}  {rss:>11.0f}  {load:>4.1f}  "
                f"{'; '.join('/'.join(map(str, c)) for c in counts)}   (runs: {each} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
