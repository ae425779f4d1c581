"""`/team-gaps` in Slack for a 50-rep team of the big organisation, on SQLite and PostgreSQL.

    uv run python bench/slack_team_gaps.py --db sqlite
    uv run python bench/slack_team_gaps.py --db postgres
    uv run python bench/slack_team_gaps.py --db both --reps 1000 --interactions 100000  # quick

The organisation is `bench/coaching.py`'s (10,000 reps in teams of 50, 1,000,000 scored
calls over 180 days), built by its `prepare` and shared with it; this benchmark only gives
the managers of the teams it asks about a Slack user id (`UBENCH<team>`), which the coaching
benchmark does not read.

The real Bolt app (`bot.app.build_app`) is served by uvicorn on 127.0.0.1 and its Web API
client points at the fake Slack API. Each request is a signed slash command over HTTP, as
Slack sends it, on a new connection; timed are the acknowledgement (the HTTP answer, which
Slack wants within 3 s), the answer posted to the `response_url` (recorded by the fake on
arrival), and the trend chart's upload to the manager's DM. `--concurrency N` sends N
managers' commands (N different teams) at once. `--mode socket` delivers each command as a
Socket Mode envelope over the fake's WebSocket instead; the acknowledgement is then the ack
arriving back with the envelope's id.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import logging
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from pydantic import SecretStr  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

from bench.coaching import END, TEAM_SIZE, prepare  # noqa: E402
from bot.app import build_app  # noqa: E402
from bot.http import create_asgi_app  # noqa: E402
from config.coaching import CoachingRules  # noqa: E402
from config.settings import SlackSettings  # noqa: E402
from tests.fakes.slack_api import FakeSlackApi  # noqa: E402

RESULTS = Path(__file__).parent / "results"
SECRET = "bench-signing-secret-0123456789ab"


def sign(body: str, timestamp: int) -> str:
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(SECRET.encode(), base, hashlib.sha256).hexdigest()


def map_managers(engine: Engine, teams: list[int]) -> dict[int, str]:
    """Give the managers of these teams a Slack id (idempotent)."""
    ids = {}
    with engine.begin() as conn:
        for team in teams:
            slack_id = f"UBENCH{team:04d}"
            conn.execute(
                text("UPDATE person SET slack_user_id = :s WHERE external_id = :e"),
                {"s": slack_id, "e": f"mgr-{team:04d}"},
            )
            ids[team] = slack_id
    return ids


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return ordered[index]


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "median_ms": round(statistics.median(samples) * 1000, 1),
        "p95_ms": round(percentile(samples, 0.95) * 1000, 1),
        "max_ms": round(max(samples) * 1000, 1),
    }


Send = Callable[[dict[str, str]], Awaitable[tuple[float, float]]]
"""Deliver a slash command to the app; returns when it was sent and acknowledged."""


def http_sender(http: httpx.AsyncClient, url: str) -> Send:
    async def send(form: dict[str, str]) -> tuple[float, float]:
        body = urlencode(form)
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": str(timestamp),
            "X-Slack-Signature": sign(body, timestamp),
        }
        sent = time.monotonic()
        response = await http.post(url, content=body.encode(), headers=headers)
        acked = time.monotonic()
        if response.status_code != 200:
            raise RuntimeError(f"the bot answered HTTP {response.status_code}")
        return sent, acked

    return send


def socket_sender(slack: FakeSlackApi) -> Send:
    async def send(form: dict[str, str]) -> tuple[float, float]:
        envelope_id = slack.send_envelope("slash_commands", form)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            timing = slack.envelope_timing(envelope_id)
            if timing is not None:
                return timing
            await asyncio.sleep(0.001)
        raise RuntimeError("the envelope was not acknowledged within 60 s")

    return send


async def one_command(
    send: Send, slack: FakeSlackApi, slack_user: str, team_slug: str, token: str
) -> tuple[float, float, float]:
    """(acknowledged, answered, chart uploaded) seconds after sending the command."""

    def uploads() -> list[Any]:
        return [
            c
            for c in slack.calls_to("files.completeUploadExternal", ok_only=True)
            if c.body.get("channel_id") == f"D{slack_user}"
        ]

    uploads_before = len(uploads())
    sent, acked = await send(
        {
            "token": "legacy",
            "team_id": "T0BENCH",
            "user_id": slack_user,
            "command": "/team-gaps",
            "text": f"{team_slug} 30d",
            "channel_id": "C0BENCH",
            "response_url": slack.response_url(token),
            "trigger_id": "trig-bench",
        }
    )
    deadline = sent + 120
    answered: float | None = None
    while time.monotonic() < deadline:
        if answered is None:
            arrival = next((t for k, t in slack.response_arrivals if k == token), None)
            if arrival is not None:
                answered = arrival - sent
                found = next(b for k, b in slack.responses if k == token)
                shown = json.dumps(found.get("blocks", []))
                if "Below the bar*" not in shown or "Largest gaps" not in shown:
                    raise RuntimeError(f"not a team-gaps answer with data: {shown[:300]}")
        done = uploads()
        if answered is not None and len(done) > uploads_before:
            return acked - sent, answered, done[-1].arrived_at - sent
        await asyncio.sleep(0.002)
    raise RuntimeError("no answer within 120 s")


@asynccontextmanager
async def serving(app: Any, mode: str, slack: FakeSlackApi) -> AsyncIterator[Send]:
    """The app reachable the way Slack reaches it: signed HTTP, or Socket Mode envelopes."""
    if mode == "socket":
        from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

        handler = AsyncSocketModeHandler(app, "xapp-1-bench")
        await handler.connect_async()  # type: ignore[no-untyped-call]
        try:
            yield socket_sender(slack)
        finally:
            await handler.close_async()  # type: ignore[no-untyped-call]
        return
    config = uvicorn.Config(
        create_asgi_app(app), host="127.0.0.1", port=0, log_level="warning", lifespan="off"
    )
    ready = asyncio.Event()

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            ready.set()

    server = Server(config)
    task = asyncio.create_task(server.serve())
    await ready.wait()
    port = server.servers[0].sockets[0].getsockname()[1]
    # a new connection per command, as Slack's requests arrive (and no keep-alive race)
    fresh = httpx.Limits(max_keepalive_connections=0)
    try:
        async with httpx.AsyncClient(timeout=60, limits=fresh) as http:
            yield http_sender(http, f"http://127.0.0.1:{port}/slack/events")
    finally:
        server.should_exit = True
        await task


async def measure(engine: Engine, requests: int, concurrency: int, mode: str) -> dict[str, Any]:
    teams = list(range(1, concurrency + 1))
    managers = map_managers(engine, teams)
    acks, answers, charts = [], [], []
    with FakeSlackApi() as slack:
        app = build_app(
            engine=engine,
            settings=SlackSettings(
                bot_token=SecretStr("xoxb-bench"),
                signing_secret=SecretStr(SECRET),
                api_base_url=slack.base_url,
            ),
            rules=CoachingRules(),
            clock=lambda: END - timedelta(hours=1),
        )
        async with serving(app, mode, slack) as send:
            warmup = 2
            for n in range(requests + warmup):
                batch = [
                    one_command(send, slack, managers[team], f"team-{team:04d}", f"r{n}-{i}-{team}")
                    for i, team in enumerate(teams)
                ]
                results = await asyncio.gather(*batch)
                if n >= warmup:
                    for ack, answer, chart in results:
                        acks.append(ack)
                        answers.append(answer)
                        charts.append(chart)
                print(f"  {n + 1}/{requests + warmup}", end="\r", flush=True)
    print()
    return {
        "mode": mode,
        "requests": len(acks),
        "concurrency": concurrency,
        "acknowledged": summary(acks),
        "answered": summary(answers),
        "chart_uploaded": summary(charts),
        "within_3_s": sum(a < 3.0 for a in acks) / len(acks),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--reps", type=int, default=10_000)
    parser.add_argument("--interactions", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=40, help="Rounds measured per db.")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument(
        "--mode", choices=("http", "socket"), default="http", help="How Slack reaches the app."
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.reps // TEAM_SIZE < args.concurrency:
        parser.error("--concurrency is more than the organisation's teams")

    results: dict[str, Any] = {
        "command": " ".join(["uv run python bench/slack_team_gaps.py", *sys.argv[1:]]),
        "reps": args.reps,
        "interactions": args.interactions,
        "load_before": os.getloadavg(),
    }
    for db in ("sqlite", "postgres") if args.db == "both" else (args.db,):
        engine, where = prepare(db, args.reps, args.interactions, regenerate=False)
        print(f"{db}: {where}")
        results[db] = asyncio.run(measure(engine, args.requests, args.concurrency, args.mode))
        engine.dispose()
        print(json.dumps(results[db], indent=2))
    results["load_after"] = os.getloadavg()
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = (
        f"slack-team-gaps-{args.reps}x{args.interactions}-c{args.concurrency}-{args.db}"
        f"-{args.mode}.json"
    )
    (RESULTS / name).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
