"""Delivery of feedback DMs from the outbox against a rate-limited Slack Web API.

    uv run python bench/slack_delivery.py                       # 1,000 DMs, 5 runs, SQLite
    uv run python bench/slack_delivery.py --db postgres --runs 3
    uv run python bench/slack_delivery.py --restart-after 400   # a restart mid-delivery

Each run queues `--messages` feedback DMs for `--reps` reps in a fresh database and runs the
delivery worker (`bot.delivery.DeliveryWorker.run`, as `coachloop slack` does) against the
fake Slack Web API on 127.0.0.1, which enforces `--limit-per-s` calls of `chat.postMessage`
and of `conversations.open` in any one-second window and one message per second per
conversation, answering more with HTTP 429 and `Retry-After`. The worker is given the budget
`--pace` times the limit.

From the fake's own records it then checks: every outbox id was posted exactly once, no
one-second window holds more accepted calls of a method than the limit, and no conversation
got two messages less than a second apart. Wall time is set against the ideal: the messages
at the full limit, or the busiest rep's messages one second apart, whichever is longer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from slack_sdk.web.async_client import AsyncWebClient  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402
from sqlmodel import Session, func, select  # noqa: E402

from bot.delivery import EVENT_TYPE, DeliveryOptions, DeliveryWorker  # noqa: E402
from coaching.feedback import rep_feedback  # noqa: E402
from coaching.outbox import enqueue  # noqa: E402
from coaching.scored import CriterionScore, ScoredInteraction  # noqa: E402
from config.rubric import SHIPPED_RUBRIC_DIR, load_rubric  # noqa: E402
from store.db import make_engine, migrate, session_scope  # noqa: E402
from store.models import OutboxMessage, Person, utcnow  # noqa: E402
from tests.fakes.slack_api import FakeSlackApi, RateLimit  # noqa: E402

RESULTS = Path(__file__).parent / "results"
POSTGRES_URL = os.environ.get(
    "COACHLOOP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
RUBRIC = load_rubric(SHIPPED_RUBRIC_DIR / "support.yaml")
METHODS = ("chat.postMessage", "conversations.open")
Level = Literal[1, 2, 3]
LEVELS: tuple[Level, ...] = (1, 2, 3)


def payload(interaction_id: int, rep_id: int, levels: list[Level]) -> dict[str, Any]:
    """A feedback DM as the coaching pipeline queues it, with a quoted moment per gap."""
    scores = []
    for i, (criterion, level) in enumerate(zip(RUBRIC.criteria, levels, strict=False)):
        check = criterion.levels[level].checks[0] if criterion.levels[level].checks else None
        checks = (
            [
                {
                    "id": check.id,
                    "observed": True,
                    "turn": 3 + i,
                    "start_s": 42.0 + 9 * i,
                    "quote": "I can see the second charge on your statement from Tuesday.",
                }
            ]
            if check is not None
            else []
        )
        scores.append(CriterionScore(i + 1, criterion.id, level, checks))
    scored = ScoredInteraction(
        interaction_id=interaction_id,
        evaluation_id=interaction_id,
        rubric_version=RUBRIC.version,
        rep_id=rep_id,
        team_id=None,
        role="support",
        kind="call",
        started_at=datetime(2026, 11, 30, 9, tzinfo=UTC),
        scores=scores,
    )
    return rep_feedback(scored, RUBRIC, flag_below=2.0)


def fresh_database(kind: str, folder: Path) -> tuple[Engine, str | None]:
    if kind == "sqlite":
        engine = make_engine(f"sqlite:///{folder / f'delivery-{uuid.uuid4().hex[:8]}.db'}")
        migrate(engine)
        return engine, None
    schema = f"bench_slack_{uuid.uuid4().hex[:10]}"
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    from sqlmodel import create_engine

    engine = create_engine(POSTGRES_URL, connect_args={"options": f"-csearch_path={schema}"})
    migrate(engine)
    return engine, schema


def drop_schema(schema: str) -> None:
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


def queue_messages(engine: Engine, reps: int, messages: int) -> list[int]:
    now = utcnow()
    with session_scope(engine) as session:
        people = [
            Person(external_id=f"rep-{i:05d}", name=f"Rep {i}", slack_user_id=f"UREP{i:05d}")
            for i in range(reps)
        ]
        session.add_all(people)
        session.flush()
        ids = [p.id for p in people]
    out = []
    with session_scope(engine) as session:
        for n in range(messages):
            rep_id = ids[n % reps]
            assert rep_id is not None
            levels = [LEVELS[(n + k) % 3] for k in range(len(RUBRIC.criteria))]
            message_id, _ = enqueue(
                session,
                kind="rep_feedback",
                recipient_id=rep_id,
                payload=payload(n + 1, rep_id, levels),
                dedupe_key=f"bench-feedback-{n}",
                now=now,
                interaction_id=None,
            )
            out.append(message_id)
    return out


def sent_count(engine: Engine) -> int:
    with Session(engine) as session:
        return int(
            session.exec(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.status == "sent")
            ).one()
        )


def max_in_window(times: list[float], window: float) -> int:
    """The most events in any half-open window of `window` seconds."""
    best, start = 0, 0
    for end in range(len(times)):
        while times[end] - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def verify(slack: FakeSlackApi, ids: list[int], limit: int) -> dict[str, Any]:
    accepted = [c for c in slack.calls if c.status == 200 and c.error is None]
    per_id = Counter(
        int(c.body["metadata"]["event_payload"]["outbox_id"])
        for c in accepted
        if c.method == "chat.postMessage"
        and (c.body.get("metadata") or {}).get("event_type") == EVENT_TYPE
    )
    by_method: dict[str, list[float]] = defaultdict(list)
    by_channel: dict[str, list[float]] = defaultdict(list)
    for c in accepted:
        by_method[c.method].append(c.arrived_at)
        if c.method == "chat.postMessage":
            by_channel[str(c.body.get("channel"))].append(c.arrived_at)
    closest = min(
        (b - a for times in by_channel.values() for a, b in zip(times, times[1:], strict=False)),
        default=float("inf"),
    )
    return {
        "delivered_once": sum(1 for i in ids if per_id.get(i) == 1),
        "missing": sum(1 for i in ids if i not in per_id),
        "duplicates": sum(1 for n in per_id.values() if n > 1),
        "max_per_window": {m: max_in_window(sorted(by_method[m]), 1.0) for m in METHODS},
        "limit_per_window": limit,
        "closest_same_channel_s": round(closest, 3),
        "answered_429": slack.rate_limited,
        "calls": dict(Counter(c.method for c in slack.calls)),
    }


async def deliver(
    engine: Engine,
    slack: FakeSlackApi,
    total: int,
    options: DeliveryOptions,
    restart_after: int | None,
) -> tuple[float, int]:
    """Run the worker until everything is sent; returns (seconds, restarts)."""
    client = AsyncWebClient(token="xoxb-bench", base_url=slack.base_url, retry_handlers=[])
    started = time.perf_counter()
    restarts = 0
    while True:
        stop = asyncio.Event()
        worker = DeliveryWorker(engine, client, options)
        task = asyncio.create_task(worker.run(stop))
        while not task.done():
            await asyncio.sleep(0.1)
            done = await asyncio.to_thread(sent_count, engine)
            if done >= total:
                stop.set()
            elif restart_after is not None and restarts == 0 and done >= restart_after:
                task.cancel()  # the process dies mid-delivery: claimed messages stay `sending`
                restarts += 1
                break
        try:
            await task
        except asyncio.CancelledError:
            continue
        return time.perf_counter() - started, restarts


def run_once(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    engine, schema = fresh_database(args.db, folder)
    try:
        ids = queue_messages(engine, args.reps, args.messages)
        with FakeSlackApi() as slack:
            for method in METHODS:
                slack.enforce(RateLimit(method, limit=args.limit_per_s, window_s=1.0))
            slack.enforce(RateLimit("chat.postMessage", limit=1, window_s=1.0, per_channel=True))
            options = DeliveryOptions(
                messages_per_minute=max(1, int(args.limit_per_s * 60 * args.pace)),
                channel_interval_s=1.0,
                lease_s=args.lease_s,
                poll_interval_s=0.2,
                digest_hour_utc=None,
            )
            seconds, restarts = asyncio.run(
                deliver(engine, slack, len(ids), options, args.restart_after)
            )
            checks = verify(slack, ids, args.limit_per_s)
    finally:
        engine.dispose()
        if schema:
            drop_schema(schema)
    per_rep = -(-args.messages // args.reps)
    ideal = max(args.messages / args.limit_per_s, float(per_rep - 1))
    return {"seconds": seconds, "ideal_s": ideal, "restarts": restarts, **checks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=250)
    parser.add_argument("--limit-per-s", type=int, default=20)
    parser.add_argument("--pace", type=float, default=0.95, help="Share of the limit to use.")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--restart-after", type=int, default=None)
    parser.add_argument("--lease-s", type=float, default=3.0)
    args = parser.parse_args()

    runs = []
    with tempfile.TemporaryDirectory() as folder:
        for i in range(args.runs):
            result = run_once(args, Path(folder))
            runs.append(result)
            print(
                f"run {i + 1}: {result['seconds']:.1f} s (ideal {result['ideal_s']:.1f} s), "
                f"delivered once {result['delivered_once']}/{args.messages}, duplicates "
                f"{result['duplicates']}, missing {result['missing']}, max per 1 s "
                f"{result['max_per_window']} (limit {args.limit_per_s}), closest to one rep "
                f"{result['closest_same_channel_s']} s, 429s {result['answered_429']}, "
                f"restarts {result['restarts']}",
                flush=True,
            )
    seconds = [r["seconds"] for r in runs]
    summary = {
        "command": " ".join(["uv run python bench/slack_delivery.py", *sys.argv[1:]]),
        "load": os.getloadavg(),
        "db": args.db,
        "messages": args.messages,
        "reps": args.reps,
        "limit_per_s": args.limit_per_s,
        "pace": args.pace,
        "median_s": statistics.median(seconds),
        "min_s": min(seconds),
        "max_s": max(seconds),
        "ideal_s": runs[0]["ideal_s"],
        "median_over_ideal": statistics.median(seconds) / runs[0]["ideal_s"],
        "all_delivered_once": all(
            r["delivered_once"] == args.messages and r["duplicates"] == 0 for r in runs
        ),
        "limit_kept": all(
            max(r["max_per_window"].values()) <= args.limit_per_s
            and r["closest_same_channel_s"] >= 1.0
            for r in runs
        ),
        "answered_429": [r["answered_429"] for r in runs],
        "runs": runs,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    tag = f"{args.db}-{args.messages}-pace{args.pace:g}"
    tag += f"-restart{args.restart_after}" if args.restart_after else ""
    (RESULTS / f"slack-delivery-{tag}.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=2))


if __name__ == "__main__":
    main()
