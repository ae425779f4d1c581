"""Throughput of the LLM judge under its concurrency and requests-per-minute limits.

Scores N synthetic 40-turn support calls with the shipped support rubric against the scripted
OpenAI-compatible server on 127.0.0.1, which answers every request with a valid reply after a
fixed latency. Reports, per rate limit, the median wall time of several runs against the ideal
(the fastest schedule the two limits allow), the most requests the server saw in any window of
the limit, and the most requests it was working on at once. The server runs in a child
process, as a real endpoint would not share the judge's interpreter.

    uv run python bench/llm_judge.py --calls 1000 --latency 0.5 --concurrency 16 --rpm 3000 600
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import platform
import statistics
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pydantic import SecretStr  # noqa: E402

from config.rubric import SHIPPED_RUBRIC_DIR, load_rubric  # noqa: E402
from config.settings import LlmSettings  # noqa: E402
from evaluators.base import Transcript, TurnView, Verdict  # noqa: E402
from evaluators.llm import LlmJudge, RunUsage  # noqa: E402
from tests.fakes.openai_server import FakeOpenAIServer, careful_judge  # noqa: E402

AGENT_LINES = [
    "Thanks for calling Harbor Broadband, this call is recorded for training and quality.",
    "Before I go into the account can I take the postcode on the account please?",
    "Thanks, and could you confirm your date of birth for me as well?",
    "So the connection has dropped every evening while you're trying to work.",
    "I'm running a line test now, it should only take a moment.",
    "I can see the line test shows drops at around seven each night.",
    "I've booked an engineer visit for Thursday between 8 and 12.",
    "Your reference number is HB-40213, I'll spell that out for you.",
]
CUSTOMER_LINES = [
    "Hi, my internet keeps dropping out and I work from home.",
    "It's SW1A 1AA.",
    "The fourth of May, nineteen eighty.",
    "Yes, every single evening this week, it's really frustrating.",
    "Okay, Thursday morning works for me.",
]


def make_calls(n: int, turns: int) -> list[Transcript]:
    calls = []
    for i in range(n):
        rows = []
        for t in range(turns):
            agent = t % 2 == 0
            lines = AGENT_LINES if agent else CUSTOMER_LINES
            text = f"{lines[(t // 2 + i) % len(lines)]} (call {i}, turn {t})"
            rows.append(TurnView(t, "agent" if agent else "customer", text, t * 7.5, t * 7.5 + 7))
        calls.append(Transcript(turns=rows, interaction_id=i, role="support"))
    return calls


def ideal_seconds(n: int, latency_s: float, concurrency: int, limit: int, window_s: float) -> float:
    """Finish time of the fastest schedule: request k starts no sooner than request k-C ends
    and no sooner than one window after request k-L started."""
    starts: list[float] = []
    for k in range(n):
        start = 0.0
        if k >= concurrency:
            start = max(start, starts[k - concurrency] + latency_s)
        if k >= limit:
            start = max(start, starts[k - limit] + window_s)
        starts.append(start)
    return starts[-1] + latency_s


def busiest_window(arrivals: list[float], window_s: float) -> int:
    times = sorted(arrivals)
    best = 0
    lo = 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window_s:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def serve(latency_s: float, conn: Connection) -> None:
    """Run the scripted server in its own process, so it does not share the judge's GIL."""
    with FakeOpenAIServer(handler=careful_judge(latency_s)) as server:
        conn.send(server.base_url)
        conn.recv()
        conn.send(([r.arrived_at for r in server.chat_requests], server.max_in_flight))


async def judge_all(
    calls: list[Transcript], base_url: str, concurrency: int, rpm: int, window_s: float
) -> tuple[float, float, int, int]:
    rubric = load_rubric(SHIPPED_RUBRIC_DIR / "support.yaml")
    settings = LlmSettings(
        base_url=base_url,
        api_key=SecretStr("bench"),
        model="bench-judge",
        max_concurrency=concurrency,
        requests_per_minute=rpm,
        max_retries=2,
        timeout_s=30,
    )
    usage = RunUsage()
    async with LlmJudge(settings, rate_window_s=window_s) as judge:
        began, cpu_began = time.perf_counter(), time.process_time()
        results = await judge.evaluate_many(calls, rubric, usage=usage)
        wall, cpu = time.perf_counter() - began, time.process_time() - cpu_began
    return wall, cpu, sum(isinstance(r, Verdict) for r in results), usage.requests


def one_run(
    calls: list[Transcript], latency_s: float, concurrency: int, rpm: int, window_s: float
) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    server = ctx.Process(target=serve, args=(latency_s, theirs), daemon=True)
    server.start()
    try:
        base_url = ours.recv()
        wall, cpu, scored, requests = asyncio.run(
            judge_all(calls, base_url, concurrency, rpm, window_s)
        )
        ours.send("stop")
        arrivals, max_in_flight = ours.recv()
    finally:
        server.join(10)
        if server.is_alive():
            server.terminate()
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "scored": scored,
        "requests": requests,
        "busiest_window": busiest_window(arrivals, window_s),
        "max_in_flight": max_in_flight,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--turns", type=int, default=40)
    parser.add_argument("--latency", type=float, default=0.5, help="seconds added per request")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rpm", type=int, nargs="+", default=[3000, 600])
    parser.add_argument(
        "--window", type=float, default=60.0, help="rate window in seconds (60 = per minute)"
    )
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    calls = make_calls(args.calls, args.turns)
    print(
        f"LLM judge: {args.calls} calls x {args.turns} turns, {args.latency * 1000:.0f} ms per "
        f"request, concurrency {args.concurrency}, window {args.window:g} s, "
        f"{args.runs} runs; {platform.python_version()} on {platform.machine()}"
    )
    header = (
        "| limit / window | median wall | ideal | wall / ideal | busiest window | "
        "max in flight | judge CPU per call | scored |"
    )
    print(header)
    print("|---|---|---|---|---|---|---|---|")
    for rpm in args.rpm:
        runs = [
            one_run(calls, args.latency, args.concurrency, rpm, args.window)
            for _ in range(args.runs)
        ]
        wall = statistics.median(r["wall_s"] for r in runs)
        ideal = ideal_seconds(args.calls, args.latency, args.concurrency, rpm, args.window)
        busiest = max(r["busiest_window"] for r in runs)
        in_flight = max(r["max_in_flight"] for r in runs)
        scored = min(r["scored"] for r in runs)
        cpu_ms = statistics.median(r["cpu_s"] for r in runs) / args.calls * 1000
        print(
            f"| {rpm} / {args.window:g} s | {wall:.2f} s | {ideal:.2f} s | {wall / ideal:.3f} | "
            f"{busiest} (limit {rpm}) | {in_flight} (limit {args.concurrency}) | "
            f"{cpu_ms:.1f} ms | {scored}/{args.calls} |",
            flush=True,
        )
        extra = [r["requests"] for r in runs if r["requests"] != args.calls]
        if extra:
            print(f"  note: request counts with retries: {extra}")


if __name__ == "__main__":
    main()
