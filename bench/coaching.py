"""Coaching engine at organisation scale: incremental update after one new score, and the
team-gaps report for a 50-rep team, on SQLite and PostgreSQL.

    uv run python bench/coaching.py --db sqlite
    uv run python bench/coaching.py --db postgres
    uv run python bench/coaching.py --db both --reps 1000 --interactions 100000   # quick
    uv run python bench/coaching.py --db sqlite --prepare-only   # generate and stop

The organisation (10,000 reps in 200 teams of 50, 1,000,000 scored calls over 180 days, four
criteria each) is generated once with bulk inserts and kept: the SQLite file under
`bench/results/`, the PostgreSQL copy in the schema `bench_coaching_<reps>x<interactions>` of
the test database. `--regenerate` builds it again.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import resource
import sqlite3
import statistics
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402
from sqlmodel import create_engine  # noqa: E402

from coaching import steps  # noqa: E402
from coaching.catalogue import ScenarioSummary, StaticCatalogue  # noqa: E402
from coaching.context import CoachingContext  # noqa: E402
from coaching.graph import open_pipeline  # noqa: E402
from coaching.reports import Period, team_gaps  # noqa: E402
from config.coaching import CoachingRules  # noqa: E402
from config.rubric import SHIPPED_RUBRIC_DIR, load_rubric  # noqa: E402
from store.db import make_engine, migrate  # noqa: E402
from store.models import utcnow  # noqa: E402

RESULTS = Path(__file__).parent / "results"
POSTGRES_URL = os.environ.get(
    "COACHLOOP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
END = datetime(2026, 11, 30, tzinfo=UTC)
DAYS = 180
TEAM_SIZE = 50
RUBRIC = load_rubric(SHIPPED_RUBRIC_DIR / "support.yaml")
CRITERIA = [c.id for c in RUBRIC.criteria]
CATALOGUE = StaticCatalogue(
    ScenarioSummary(f"bench-{c}-{d}", "support", (c,), d)
    for c in CRITERIA
    for d in ("easy", "medium", "hard")
)


def stamp(moment: datetime) -> str:
    """How SQLAlchemy stores a UTC datetime on SQLite."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


# -- the organisation -----------------------------------------------------------------------


def generate(
    reps: int, interactions: int, seed: int = 7
) -> Iterator[dict[str, list[tuple[Any, ...]]]]:
    """Rows to insert, a block of reps at a time, with every id assigned here."""
    rnd = random.Random(seed)
    teams = reps // TEAM_SIZE
    created = stamp(END)
    yield {
        "team": [(t + 1, f"team-{t + 1:04d}", f"Team {t + 1}", created) for t in range(teams)],
        "person": [
            (
                reps + t + 1,
                f"mgr-{t + 1:04d}",
                f"Manager {t + 1}",
                "manager",
                None,
                None,
                False,
                True,
                created,
            )
            for t in range(teams)
        ],
        "teammanager": [(t + 1, reps + t + 1) for t in range(teams)],
        "rubricversion": [
            (
                RUBRIC.version,
                RUBRIC.role,
                RUBRIC.name,
                json.dumps(RUBRIC.model_dump(mode="json")),
                True,
                created,
            )
        ],
    }
    per_rep, extra = divmod(interactions, reps)
    interaction_id = 0
    score_id = 0
    block: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for rep in range(1, reps + 1):
        team = (rep - 1) // TEAM_SIZE + 1
        block["person"].append(
            (
                rep,
                f"rep-{rep:05d}",
                f"Rep {rep}",
                "rep",
                "support",
                team,
                rep % 10 == 0,
                True,
                created,
            )
        )
        skill = {c: rnd.uniform(1.3, 2.9) for c in CRITERIA}
        count = per_rep + (1 if rep <= extra else 0)
        times = sorted(END - timedelta(seconds=rnd.randrange(DAYS * 86400)) for _ in range(count))
        daily: dict[tuple[str, date], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        recent: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for at in times:
            interaction_id += 1
            when = stamp(at)
            block["interaction"].append(
                (
                    interaction_id,
                    f"bench-{interaction_id}",
                    "bench",
                    "call",
                    "phone",
                    rep,
                    team,
                    when,
                    300.0,
                    f"{interaction_id:064x}",
                    40,
                    "{}",
                    when,
                )
            )
            block["evaluation"].append(
                (
                    interaction_id,
                    interaction_id,
                    RUBRIC.version,
                    "bench@1",
                    "scored",
                    False,
                    False,
                    0,
                    0,
                    when,
                )
            )
            block["coachingrun"].append(
                (
                    interaction_id,
                    interaction_id,
                    f"interaction-{interaction_id}",
                    "done",
                    "feedback_only",
                    True,
                    1,
                    when,
                    when,
                )
            )
            for c in CRITERIA:
                score_id += 1
                na = c == "acknowledge_concern" and rnd.random() < 0.1
                level = None if na else min(3, max(1, round(rnd.gauss(skill[c], 0.6))))
                block["score"].append(
                    (score_id, interaction_id, interaction_id, rep, c, level, 0.8, "[]", when)
                )
                counts = daily[(c, at.date())]
                counts[3 if level is None else level - 1] += 1
                if level is not None:
                    recent[c].append(
                        {"interaction_id": interaction_id, "level": level, "at": at.isoformat()}
                    )
        for (c, day), (n1, n2, n3, n_na) in daily.items():
            block["criteriondaily"].append(
                (rep, c, "call", day.isoformat(), team, n1, n2, n3, n_na)
            )
        for c, entries in recent.items():
            block["criteriontrend"].append(
                (rep, c, json.dumps(entries[-10:]), len(entries), created)
            )
        if len(block["score"]) >= 200_000 or rep == reps:
            yield block
            block = defaultdict(list)


COLUMNS = {
    "team": "id, slug, name, created_at",
    "person": "id, external_id, name, access, role, team_id, pilot, active, created_at",
    "teammanager": "team_id, person_id",
    "rubricversion": "version, role, name, content, live, created_at",
    "interaction": "id, external_id, source, kind, channel, rep_id, team_id, started_at, "
    "duration_s, content_hash, turn_count, meta, ingested_at",
    "evaluation": "id, interaction_id, rubric_version, judge, status, flagged, "
    "compliance_failed, prompt_tokens, completion_tokens, created_at",
    "coachingrun": "interaction_id, evaluation_id, thread_id, status, decision, "
    "trends_applied, attempts, started_at, finished_at",
    "score": "id, evaluation_id, interaction_id, rep_id, criterion_id, level, confidence, "
    "checks, scored_at",
    "criteriondaily": "rep_id, criterion_id, kind, day, team_id, n1, n2, n3, n_na",
    "criteriontrend": "rep_id, criterion_id, recent, sessions, updated_at",
}
ORDER = list(COLUMNS)


def load_sqlite(path: Path, reps: int, interactions: int) -> None:
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    engine.dispose()
    conn = sqlite3.connect(path)
    for pragma in (
        "synchronous=OFF",
        "journal_mode=OFF",
        "cache_size=-200000",
        "temp_store=MEMORY",
    ):
        conn.execute(f"PRAGMA {pragma}")
    # Indexes are built once after the load rather than row by row.
    indexes = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
    ).fetchall()
    for name, _ in indexes:
        conn.execute(f'DROP INDEX "{name}"')
    done = 0
    for block in generate(reps, interactions):
        for table in ORDER:
            rows = block.get(table)
            if rows:
                marks = ", ".join("?" * len(rows[0]))
                conn.executemany(f"INSERT INTO {table} ({COLUMNS[table]}) VALUES ({marks})", rows)
        conn.commit()
        done += len(block.get("interaction", []))
        print(f"  sqlite: {done:,} interactions", end="\r", flush=True)
    print(f"\n  sqlite: building {len(indexes)} indexes")
    for _, sql in indexes:
        conn.execute(sql)
    conn.execute("ANALYZE")
    conn.commit()
    conn.close()
    print()


def postgres_engine(schema: str, synchronous_commit: str = "on") -> Engine:
    options = f"-csearch_path={schema} -csynchronous_commit={synchronous_commit}"
    return create_engine(POSTGRES_URL, connect_args={"options": options}, pool_pre_ping=True)


def load_postgres(schema: str, reps: int, interactions: int) -> None:
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    engine = postgres_engine(schema)
    migrate(engine)
    raw = engine.raw_connection()
    pg: Any = raw.driver_connection
    done = 0
    with pg.cursor() as cur:
        for block in generate(reps, interactions):
            for table in ORDER:
                rows = block.get(table)
                if not rows:
                    continue
                with cur.copy(f"COPY {table} ({COLUMNS[table]}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            pg.commit()
            done += len(block.get("interaction", []))
            print(f"  postgres: {done:,} interactions", end="\r", flush=True)
        for table in ("team", "person", "interaction", "evaluation", "score"):
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        pg.commit()
        pg.autocommit = True
        cur.execute("VACUUM ANALYZE")
    raw.close()
    engine.dispose()
    print()


def count_interactions(engine: Engine) -> int:
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM interaction")).scalar_one())
    except Exception:
        return 0


def prepare(
    db: str, reps: int, interactions: int, regenerate: bool, synchronous_commit: str = "on"
) -> tuple[Engine, str]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    if db == "sqlite":
        path = RESULTS / f"coaching-{reps}x{interactions}.sqlite"
        if regenerate and path.exists():
            path.unlink()
        engine = make_engine(f"sqlite:///{path}")
        if count_interactions(engine) < interactions:
            engine.dispose()
            path.unlink(missing_ok=True)
            print(f"generating {path.name} ...")
            started = time.perf_counter()
            load_sqlite(path, reps, interactions)
            print(f"  generated in {time.perf_counter() - started:.0f} s")
            engine = make_engine(f"sqlite:///{path}")
        migrate(engine)
        return engine, str(path)
    schema = f"bench_coaching_{reps}x{interactions}"
    engine = postgres_engine(schema)
    if regenerate or count_interactions(engine) < interactions:
        engine.dispose()
        print(f"generating schema {schema} ...")
        started = time.perf_counter()
        load_postgres(schema, reps, interactions)
        print(f"  generated in {time.perf_counter() - started:.0f} s")
        engine = postgres_engine(schema)
    migrate(engine)
    if synchronous_commit != "on":
        engine.dispose()
        engine = postgres_engine(schema, synchronous_commit)
    return engine, schema


# -- measurements ---------------------------------------------------------------------------


def new_scored_call(engine: Engine, rnd: random.Random, reps: int) -> int:
    """Store one new scored call for a random rep (not timed)."""
    rep = rnd.randint(1, reps)
    team = (rep - 1) // TEAM_SIZE + 1
    at = END - timedelta(minutes=rnd.randrange(60 * 24 * 3))
    with engine.begin() as conn:
        iid = conn.execute(
            text(
                "INSERT INTO interaction (external_id, source, kind, channel, rep_id, team_id, "
                "started_at, duration_s, content_hash, turn_count, meta, ingested_at) VALUES "
                "(:x, 'bench-new', 'call', 'phone', :rep, :team, :at, 300, :h, 40, '{}', :at) "
                "RETURNING id"
            ),
            {
                # the organisation is kept between runs: ids must not repeat an earlier run's
                "x": f"new-{uuid.uuid4().hex}",
                "rep": rep,
                "team": team,
                "at": at,
                "h": uuid.uuid4().hex,
            },
        ).scalar_one()
        eid = conn.execute(
            text(
                "INSERT INTO evaluation (interaction_id, rubric_version, judge, status, flagged, "
                "compliance_failed, prompt_tokens, completion_tokens, created_at) VALUES "
                "(:iid, :v, 'bench@1', 'scored', false, false, 0, 0, :at) RETURNING id"
            ),
            {"iid": iid, "v": RUBRIC.version, "at": at},
        ).scalar_one()
        conn.execute(
            text(
                "INSERT INTO score (evaluation_id, interaction_id, rep_id, criterion_id, level, "
                "confidence, checks, scored_at) VALUES (:eid, :iid, :rep, :c, :lvl, 0.8, '[]', :at)"
            ),
            [
                {"eid": eid, "iid": iid, "rep": rep, "c": c, "lvl": rnd.randint(1, 3), "at": at}
                for c in CRITERIA
            ],
        )
    return int(iid)


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def summary(samples: list[float], cpu: list[float]) -> dict[str, float]:
    """Wall-clock median and p95, and the same of this thread's CPU time (which the other
    processes on a shared machine do not inflate; a PostgreSQL server's work is not in it)."""
    return {
        "n": len(samples),
        "median_ms": round(statistics.median(samples) * 1000, 2),
        "p95_ms": round(p95(samples) * 1000, 2),
        "cpu_median_ms": round(statistics.median(cpu) * 1000, 2),
        "cpu_p95_ms": round(p95(cpu) * 1000, 2),
    }


def timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """(wall seconds, thread CPU seconds) of one call."""
    started, cpu = time.perf_counter(), time.thread_time()
    fn()
    return time.perf_counter() - started, time.thread_time() - cpu


def measure(engine: Engine, reps: int, runs: int, graph_runs: int) -> dict[str, Any]:
    rnd = random.Random(11)
    ctx = CoachingContext(engine=engine, rules=CoachingRules(), catalogue=CATALOGUE, clock=utcnow)
    chain = {
        "update_trends": steps.update_trends_step,
        "evaluate_triggers": steps.evaluate_triggers_step,
        "decide": steps.decide_step,
        "assign_scenario": steps.assign_step,
        "queue_notifications": steps.notify_step,
    }
    times: dict[str, list[float]] = defaultdict(list)
    cpu: dict[str, list[float]] = defaultdict(list)
    for i in range(runs + 5):
        iid = new_scored_call(engine, rnd, reps)
        steps.start_run(ctx, iid)
        state: dict[str, Any] = {"interaction_id": iid}
        state.update(steps.load_step(ctx, state))
        total = total_cpu = 0.0
        for name, step in chain.items():
            took, took_cpu = timed(lambda: state.update(step(ctx, state)))  # noqa: B023
            total += took
            total_cpu += took_cpu
            if i >= 5:  # the first few warm the caches
                times[name].append(took)
                cpu[name].append(took_cpu)
        steps.finish_run(ctx, iid, "done", decision=state.get("decision"))
        if i >= 5:
            times["all_steps"].append(total)
            cpu["all_steps"].append(total_cpu)

    with open_pipeline(engine, RESULTS / "checkpoints", catalogue=CATALOGUE) as pipeline:
        for i in range(graph_runs + 2):
            iid = new_scored_call(engine, rnd, reps)
            took, took_cpu = timed(partial(pipeline.process, iid))
            if i >= 2:
                times["graph_run"].append(took)
                cpu["graph_run"].append(took_cpu)

    teams = reps // TEAM_SIZE
    period = Period.last_days(30, END.date())
    team_gaps(engine, "team-0001", period)
    for _ in range(runs):
        slug = f"team-{rnd.randint(1, teams):04d}"
        took, took_cpu = timed(partial(team_gaps, engine, slug, period))
        times["team_gaps"].append(took)
        cpu["team_gaps"].append(took_cpu)
    return {name: summary(samples, cpu[name]) for name, samples in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--reps", type=int, default=10_000)
    parser.add_argument("--interactions", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=200, help="Measurements per figure.")
    parser.add_argument("--graph-runs", type=int, default=50)
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument(
        "--prepare-only", action="store_true", help="Generate the organisation and stop."
    )
    parser.add_argument(
        "--pg-synchronous-commit",
        choices=["on", "off"],
        default="on",
        help="PostgreSQL's synchronous_commit for the measured sessions (off: to see what the "
        "WAL flush at each commit costs; not a setting to run with).",
    )
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    results: dict[str, Any] = {}
    for db in ["sqlite", "postgres"] if args.db == "both" else [args.db]:
        engine, where = prepare(
            db, args.reps, args.interactions, args.regenerate, args.pg_synchronous_commit
        )
        print(f"{db}: {where}")
        if args.prepare_only:
            engine.dispose()
            continue
        figures = measure(engine, args.reps, args.runs, args.graph_runs)
        engine.dispose()
        results[db] = figures
        for name, f in figures.items():
            print(
                f"  {name:<20} median {f['median_ms']:>8.2f} ms   p95 {f['p95_ms']:>8.2f} ms"
                f"   (CPU: median {f['cpu_median_ms']:>7.2f} ms, p95 {f['cpu_p95_ms']:>7.2f} ms)"
            )
    if args.prepare_only:
        return
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_mb:.0f} MB; load average {os.getloadavg()[0]:.1f}")
    commit = "" if args.pg_synchronous_commit == "on" else "-async-commit"
    out = RESULTS / f"coaching-{args.reps}x{args.interactions}-{args.db}{commit}.json"
    out.write_text(
        json.dumps(
            {
                "args": vars(args),
                "results": results,
                "peak_rss_mb": round(peak_mb),
                "loadavg": os.getloadavg(),
            },
            indent=2,
        ),
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
