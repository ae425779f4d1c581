"""Team dashboard response time for a 50-rep team in a large organisation, on SQLite and
PostgreSQL, through the real web app.

    uv run python bench/dashboard.py --db both                      # 10,000 reps, 1,000,000 calls
    uv run python bench/dashboard.py --db sqlite --reps 1000 --interactions 100000   # quick
    uv run python bench/dashboard.py --db sqlite --profile          # where the time goes

The organisation is the coaching benchmark's (`bench/coaching.py`, generated once and kept:
10,000 reps in 200 teams of 50, 1,000,000 scored calls over 180 days). Managers of several
teams sign in through the login form; then each dashboard is loaded as a browser loads it,
sent in-process to the FastAPI app over `httpx.ASGITransport`, the teams taken in turn:
`GET /teams/<slug>` (last 30 days, the default view), then the 30- and 60-day checkpoint
report the page fetches after it has loaded. The server time is the app's own
`Server-Timing: app;dur=` (from the request arriving to the response headers, the page
rendered); the whole-request figure is the client's, the body included.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import logging
import os
import pstats
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
from pydantic import SecretStr  # noqa: E402
from sqlalchemy import event  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402
from sqlmodel import Session, col, select  # noqa: E402

from bench.coaching import END, RESULTS, TEAM_SIZE, prepare  # noqa: E402
from config.rubric import RubricLibrary  # noqa: E402
from config.settings import Settings, WebSettings  # noqa: E402
from store.models import Credential, Person  # noqa: E402
from web import create_app  # noqa: E402
from web.users import set_password  # noqa: E402

PASSWORD = "bench-dashboard-password"
TARGET_MS = 300.0
_TIMING = re.compile(r"app;dur=([0-9.]+)")
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "n": len(samples),
        "median_ms": round(statistics.median(samples), 1),
        "p95_ms": round(percentile(samples, 0.95), 1),
        "max_ms": round(max(samples), 1),
    }


def managers(engine: Engine, teams: int) -> list[tuple[str, str]]:
    """(manager external id, team slug) for `teams` teams spread across the organisation;
    each manager gets the benchmark password once."""
    with Session(engine) as session:
        total = len(session.exec(select(Person.id).where(Person.access == "manager")).all())
        step = max(1, total // teams)
        wanted = [f"mgr-{k:04d}" for k in range(1, total + 1, step)][:teams]
        people = session.exec(select(Person).where(col(Person.external_id).in_(wanted))).all()
        have = set(session.exec(select(Credential.person_id)).all())
    for person in people:
        if person.id not in have:
            set_password(engine, person.external_id, PASSWORD, now=END)
    return [(p.external_id, f"team-{p.external_id.removeprefix('mgr-')}") for p in people]


async def sign_in(app: Any, who: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 50000)),
        base_url="http://bench.local",
    )
    page = await client.get("/login")
    found = _TOKEN.search(page.text)
    assert found, "no CSRF token on the sign-in page"
    response = await client.post(
        "/login",
        data={"username": who, "password": PASSWORD, "csrf_token": found.group(1), "next": "/"},
    )
    if response.status_code != 303:
        raise RuntimeError(f"sign-in as {who} failed: {response.status_code} {response.text[:200]}")
    return client


_LATER = re.compile(r'data-load="([^"]+)"')


async def _get(
    client: httpx.AsyncClient, path: str, expect: str
) -> tuple[float, float, float, str]:
    """Server time, whole-request time and CPU time of one request, all in ms, and the body.

    The CPU time is this process's (the app's threads and, on SQLite, the database's work;
    not PostgreSQL's server): unlike the clock times it hardly grows when other programs
    keep the machine's cores busy."""
    cpu = time.process_time()
    started = time.perf_counter()
    response = await client.get(path)
    wall = (time.perf_counter() - started) * 1000
    cpu_ms = (time.process_time() - cpu) * 1000
    if response.status_code != 200 or expect not in response.text:
        raise RuntimeError(f"{path} answered {response.status_code}: {response.text[:300]}")
    timing = _TIMING.search(response.headers.get("server-timing", ""))
    assert timing, "no Server-Timing header"
    return float(timing.group(1)), wall, cpu_ms, response.text


async def one(client: httpx.AsyncClient, slug: str) -> dict[str, tuple[float, float, float]]:
    """The dashboard as a browser loads it: the page, then the checkpoint report it loads
    after itself. Server, whole-request and CPU milliseconds of each."""
    page_server, page_wall, page_cpu, html = await _get(client, f"/teams/{slug}", "heatmap")
    later = _LATER.search(html)
    if later is None:  # a dashboard that renders its checkpoints itself (before 0006)
        assert "checkpoint-leading" in html, "the dashboard shows no checkpoints"
        return {"page": (page_server, page_wall, page_cpu), "checkpoints": (0.0, 0.0, 0.0)}
    path = later.group(1).replace("&amp;", "&")
    cp_server, cp_wall, cp_cpu, _ = await _get(client, path, "checkpoint-leading")
    return {
        "page": (page_server, page_wall, page_cpu),
        "checkpoints": (cp_server, cp_wall, cp_cpu),
    }


def make_app(engine: Engine, data_dir: Path) -> Any:
    settings = Settings(
        data_dir=data_dir,
        web=WebSettings(secret_key=SecretStr("bench-" + "s" * 40), max_failed_logins=50),
    )
    return create_app(
        engine=engine, settings=settings, rubrics=RubricLibrary.from_dir(), clock=lambda: END
    )


@contextmanager
def sql_timings(engine: Engine) -> Iterator[dict[str, list[float]]]:
    """Time every SQL statement the app runs, by statement text."""
    found: dict[str, list[float]] = defaultdict(list)

    def before(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        conn.info.setdefault("bench_started", []).append(time.perf_counter())

    def after(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        started = conn.info["bench_started"].pop()
        found[statement].append((time.perf_counter() - started) * 1000)

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        yield found
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)


async def measure(
    engine: Engine, *, teams: int, requests: int, runs: int, warmup: int, profile: bool
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        app = make_app(engine, Path(tmp))
        pairs = managers(engine, teams)
        clients = [(await sign_in(app, who), slug) for who, slug in pairs]
        for k in range(warmup):
            client, slug = clients[k % len(clients)]
            await one(client, slug)
        if profile:
            return await _profile(app, engine, clients)
        per_run: list[dict[str, float]] = []
        samples: dict[str, list[float]] = defaultdict(list)
        for _ in range(runs):
            run: dict[str, list[float]] = defaultdict(list)
            for k in range(requests):
                client, slug = clients[k % len(clients)]
                got = await one(client, slug)
                for part, (server, wall, cpu) in got.items():
                    run[f"{part}_server"].append(server)
                    run[f"{part}_wall"].append(wall)
                    run[f"{part}_cpu"].append(cpu)
                run["both_server"].append(got["page"][0] + got["checkpoints"][0])
                run["both_cpu"].append(got["page"][2] + got["checkpoints"][2])
            per_run.append(
                {
                    f"{name}_{stat}_ms": round(fn(values), 1)
                    for name, values in run.items()
                    for stat, fn in (
                        ("median", statistics.median),
                        ("p95", lambda v: percentile(v, 0.95)),
                    )
                }
            )
            for name, values in run.items():
                samples[name] += values
        for client, _ in clients:
            await client.aclose()
    return {
        "teams": [slug for _, slug in pairs],
        "runs": per_run,
        **{name: summary(values) for name, values in samples.items()},
    }


async def _profile(
    app: Any, engine: Engine, clients: list[tuple[httpx.AsyncClient, str]]
) -> dict[str, Any]:
    """SQL statements over 10 requests, then a Python profile of the page's data gathering
    (the route runs it in a worker thread, out of the profiler's sight, so it is called
    here directly) and the remainder: rendering and the request's own overhead."""
    from web import queries, views
    from web.routes._common import period_of

    with sql_timings(engine) as statements:
        server = []
        for k in range(10):
            client, slug = clients[k % len(clients)]
            server.append((await one(client, slug))["page"][0])
    ranked = sorted(statements.items(), key=lambda item: -sum(item[1]))
    print(f"requests: median {statistics.median(server):.1f} ms server time")
    print("SQL by total time over 10 requests:")
    for statement, took in ranked[:15]:
        flat = " ".join(statement.split())
        print(f"  {sum(took):8.1f} ms  x{len(took):<4} {flat[:300]}")
    context = app.state.web
    period = period_of(None, context.today())
    profiler = cProfile.Profile()
    gathered: list[float] = []
    for _, slug in clients[:10]:
        with Session(engine) as session:
            team = queries.team_by_slug(session, slug)
            started = time.perf_counter()
            profiler.enable()
            views.dashboard(context, session, team, period)
            profiler.disable()
            gathered.append((time.perf_counter() - started) * 1000)
    print(f"views.dashboard alone: median {statistics.median(gathered):.1f} ms")
    pstats.Stats(profiler).sort_stats(os.environ.get("BENCH_SORT", "cumulative")).print_stats(40)
    return {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--reps", type=int, default=10_000)
    parser.add_argument("--interactions", type=int, default=1_000_000)
    parser.add_argument("--teams", type=int, default=10, help="Teams (and managers) in turn.")
    parser.add_argument("--requests", type=int, default=100, help="Requests per run.")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument("--profile", action="store_true", help="Profile 10 requests and stop.")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    if args.reps % TEAM_SIZE:
        parser.error(f"--reps must be a multiple of the team size, {TEAM_SIZE}")
    results: dict[str, Any] = {}
    for db in ["sqlite", "postgres"] if args.db == "both" else [args.db]:
        engine, where = prepare(db, args.reps, args.interactions, args.regenerate)
        print(f"{db}: {where}")
        figures = asyncio.run(
            measure(
                engine,
                teams=args.teams,
                requests=args.requests,
                runs=args.runs,
                warmup=args.warmup,
                profile=args.profile,
            )
        )
        engine.dispose()
        if args.profile:
            continue
        results[db] = figures
        for name, label in (
            ("page_server", "dashboard page, server"),
            ("page_wall", "dashboard page, whole request"),
            ("checkpoints_server", "checkpoints loaded after it, server"),
            ("both_server", "page and checkpoints, server"),
            ("page_cpu", "dashboard page, CPU of this process"),
            ("checkpoints_cpu", "checkpoints, CPU of this process"),
            ("both_cpu", "page and checkpoints, CPU of this process"),
        ):
            f = figures[name]
            per_run = ", ".join(str(r[f"{name}_p95_ms"]) for r in figures["runs"])
            print(
                f"  {label:<38} median {f['median_ms']:7.1f} ms  p95 {f['p95_ms']:7.1f} ms"
                f"  (p95 per run: {per_run})"
            )
        met = figures["page_server"]["p95_ms"] < TARGET_MS
        print(
            f"  target: page p95 under {TARGET_MS:.0f} ms server time: {'met' if met else 'missed'}"
        )
    if args.profile:
        return
    load = os.getloadavg()
    print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    out = RESULTS / f"dashboard-{args.db}-{args.reps}x{args.interactions}.json"
    out.write_text(
        json.dumps({"args": vars(args), "results": results, "loadavg": load}, indent=2),
        encoding="utf-8",
    )
    print(f"written {out}")


if __name__ == "__main__":
    main()
