"""Offline judge throughput against the raw throughput of its own embedding model.

Scores 40-turn support calls with the shipped support rubric (4 criteria) through
`OfflineJudge.evaluate_many`, a batch at a time as `coachloop score` does, and compares that
with the same sentences pushed straight through `SentenceEncoder.encode` in the same batches:
the floor the judge stands on. Each run makes three passes over the same calls: raw, the
judge without its sentence cache, and the judge with it (emptied first, so nothing carries
over from an earlier pass). Each figure is the median over the runs. Peak memory is the
process's `VmHWM` at the end (model loaded, every call scored).

Two corpora: `demo`, the demo organisation's support calls (`coachloop demo`'s generator,
seed 7), two of them back to back per benchmark call and cut to 40 turns; `annomi`, the
distinct turns of the AnnoMI set in `../shared/eval/`, 40 at a time: real conversation in
which no sentence repeats on purpose, the worst case for the cache.

    uv run python bench/offline_judge.py --calls 160 --runs 5
    uv run python bench/offline_judge.py --corpus annomi --calls 36 --runs 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config.rubric import SHIPPED_RUBRIC_DIR, Rubric, load_rubric  # noqa: E402
from evaluators.base import Transcript, TurnView, Unscored  # noqa: E402
from evaluators.embeddings import SentenceEncoder, split_sentences  # noqa: E402
from evaluators.offline import OfflineJudge  # noqa: E402
from ingest.demo.generator import DemoOptions, generate_demo  # noqa: E402

RESULTS = Path(__file__).parent / "results"
EVAL_DIR = Path(__file__).resolve().parents[2] / "shared" / "eval"


def demo_calls(count: int, turns: int) -> list[Transcript]:
    """`count` support calls of `turns` turns, built from the demo's support calls."""
    demo = generate_demo(DemoOptions(end_date=date(2026, 3, 13), reps=24, days=30, seed=7))
    roles = {p.external_id: p.role for p in demo.org.people}
    support = [c["turns"] for c in demo.calls if roles.get(c["rep"]) == "support"]
    if len(support) < 2:
        raise SystemExit("the demo generator produced too few support calls")
    out: list[Transcript] = []
    n = 0
    while len(out) < count:
        joined: list[dict[str, Any]] = []
        while len(joined) < turns:
            joined.extend(support[n % len(support)])
            n += 1
        out.append(_transcript(len(out) + 1, joined[:turns]))
    return out


def annomi_calls(count: int, turns: int) -> list[Transcript]:
    """Calls of real conversation: the distinct turns of the AnnoMI set, in order, `turns`
    at a time (no sentence is repeated on purpose: the worst case for a sentence cache)."""
    path = EVAL_DIR / "annomi_reflection.dev.jsonl"
    if not path.is_file():
        raise SystemExit(f"{path} is absent: the AnnoMI corpus needs ../shared/eval/")
    seen: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        for turn in json.loads(line)["turns"]:
            seen.setdefault(turn["text"], turn["speaker"])
    pool = [{"speaker": speaker, "text": text} for text, speaker in seen.items()]
    available = len(pool) // turns
    if available < count:
        print(f"AnnoMI has {len(pool)} distinct turns: {available} calls of {turns}")
    return [_transcript(i + 1, pool[i * turns : (i + 1) * turns]) for i in range(available)][:count]


def _transcript(number: int, turns: list[dict[str, Any]]) -> Transcript:
    views = [
        TurnView(
            idx=i,
            speaker=t["speaker"],
            text=t["text"],
            start_s=t.get("start_s"),
            end_s=t.get("end_s"),
        )
        for i, t in enumerate(turns)
    ]
    return Transcript(turns=views, interaction_id=number, role="support")


def peak_rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def batches(items: list[Transcript], size: int) -> list[list[Transcript]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def sentences_of(calls: list[Transcript]) -> list[str]:
    return [
        turn.text[lo:hi] for t in calls for turn in t.turns for lo, hi in split_sentences(turn.text)
    ]


def raw_pass(encoder: SentenceEncoder, calls: list[Transcript], batch: int) -> float:
    """Seconds to embed every sentence of the calls, batch by batch, and nothing else."""
    started = time.perf_counter()
    for chunk in batches(calls, batch):
        encoder.encode(sentences_of(chunk))
    return time.perf_counter() - started


def judge_pass(judge: OfflineJudge, rubric: Rubric, calls: list[Transcript], batch: int) -> float:
    async def run() -> None:
        for chunk in batches(calls, batch):
            verdicts = await judge.evaluate_many(chunk, rubric)
            failed = [v for v in verdicts if isinstance(v, Unscored)]
            if failed:
                raise SystemExit(f"{len(failed)} calls were not scored: {failed[0].reason}")

    started = time.perf_counter()
    asyncio.run(run())
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=160)
    parser.add_argument("--turns", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=32, help="Calls per judge batch.")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime threads.")
    parser.add_argument("--corpus", choices=["demo", "annomi"], default="demo")
    args = parser.parse_args()
    logging.disable(logging.WARNING)

    make = demo_calls if args.corpus == "demo" else annomi_calls
    calls = make(args.calls, args.turns)
    pieces = sentences_of(calls)
    sentences = len(pieces)
    embedded = sum(len(set(sentences_of(chunk))) for chunk in batches(calls, args.batch_size))
    words = sum(len(turn.text.split()) for t in calls for turn in t.turns)
    load = os.getloadavg()
    encoder = SentenceEncoder(threads=args.threads)
    cached = OfflineJudge(encoder, cache_turns=True)
    uncached = OfflineJudge(encoder, cache_turns=False)
    rubric = load_rubric(SHIPPED_RUBRIC_DIR / "support.yaml")
    print(
        f"{len(calls)} {args.corpus} calls x {args.turns} turns: {sentences / len(calls):.1f} "
        f"sentences a call, {words / len(calls) / args.turns:.1f} words a turn; "
        f"{100 * embedded / sentences:.0f}% of the sentences are distinct within their batch, "
        f"{100 * len(set(pieces)) / sentences:.0f}% in all. Rubric `{rubric.role}` with "
        f"{len(rubric.criteria)} criteria, batch {args.batch_size}, {args.threads} threads"
    )
    # warm-up: the rubric's exemplars are embedded once, onnxruntime allocates its arenas
    warm = calls[: args.batch_size]
    judge_pass(cached, rubric, warm, args.batch_size)
    judge_pass(uncached, rubric, warm, args.batch_size)
    raw_pass(encoder, warm, args.batch_size)

    times: dict[str, list[float]] = {"raw": [], "judge_uncached": [], "judge_cached": []}
    hit_rates: list[float] = []
    for run in range(args.runs):
        times["raw"].append(raw_pass(encoder, calls, args.batch_size))
        times["judge_uncached"].append(judge_pass(uncached, rubric, calls, args.batch_size))
        encoder.clear_cache()  # every run starts cold: no vector from an earlier run
        times["judge_cached"].append(judge_pass(cached, rubric, calls, args.batch_size))
        hit_rates.append(encoder.cache_hits / sentences)
        print(
            "  run "
            f"{run + 1}: "
            + ", ".join(f"{k} {len(calls) / v[-1]:.1f} calls/s" for k, v in times.items())
            + f"; cache hits {100 * hit_rates[-1]:.0f}% of sentences",
            flush=True,
        )
    median = {k: statistics.median(v) for k, v in times.items()}
    figures: dict[str, Any] = {
        "corpus": args.corpus,
        "calls": len(calls),
        "turns": args.turns,
        "sentences_per_call": sentences / len(calls),
        "distinct_in_batch": embedded / sentences,
        "raw_sentences_per_s": sentences / median["raw"],
        "raw_embedded_per_s": embedded / median["raw"],
        "calls_per_s": {k: len(calls) / v for k, v in median.items()},
        "of_raw": {k: median["raw"] / v for k, v in median.items()},
        "of_raw_per_run": {
            k: [r / j for r, j in zip(times["raw"], v, strict=True)] for k, v in times.items()
        },
        "cache_hit_rate": statistics.median(hit_rates),
        "cache_entries": encoder.cached,
        "peak_rss_mb": peak_rss_mb(),
        "loadavg_start": load,
        "loadavg_end": os.getloadavg(),
        "runs": times,
    }
    print(
        f"median of {args.runs}: raw {figures['raw_sentences_per_s']:.0f} sentences/s "
        f"({figures['raw_embedded_per_s']:.0f} distinct ones through the model) = "
        f"{figures['calls_per_s']['raw']:.1f} calls/s"
    )
    for k in ("judge_uncached", "judge_cached"):
        print(
            f"  {k}: {figures['calls_per_s'][k]:.1f} calls/s = "
            f"{100 * figures['of_raw'][k]:.0f}% of raw"
        )
    print(
        f"cache hits {100 * figures['cache_hit_rate']:.0f}%; peak RSS "
        f"{figures['peak_rss_mb']:.0f} MB; load {load[0]:.1f} -> {os.getloadavg()[0]:.1f}"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"offline_judge-{args.corpus}.json"
    out.write_text(json.dumps(figures, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
