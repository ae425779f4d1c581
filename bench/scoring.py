"""Scoring and calibration overhead: what coachloop adds around the judge.

Scores N calls with a judge that answers instantly (a fixed level 2 on every criterion), so
the figures are the cost of finding pending calls, loading turns, checking verdicts and
writing evaluations and scores: the floor under any real judge. Also times a re-run that
finds nothing to do, the coverage report, and a calibration report with bootstrap intervals.
Each figure is the median over the runs, each run on a fresh database.

    uv run python bench/scoring.py --calls 2000 --runs 3
    uv run python bench/scoring.py --calls 2000 --runs 3 --postgres
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config.rubric import Rubric, RubricLibrary  # noqa: E402
from config.settings import CalibrationSettings  # noqa: E402
from evaluators.base import CriterionVerdict, Transcript, Unscored, Verdict  # noqa: E402
from evaluators.calibration import calibration_report, import_ratings  # noqa: E402
from evaluators.scoring import coverage, score_pending  # noqa: E402
from store.db import make_engine, migrate  # noqa: E402
from store.models import Interaction, Person, Speaker, Team, Turn  # noqa: E402

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
RUBRICS = RubricLibrary.from_dir()


class InstantJudge:
    name = "instant@1"

    async def evaluate(self, transcript: Transcript, rubric: Rubric) -> Verdict:
        criteria = [CriterionVerdict(c.id, 2) for c in rubric.criteria_for(transcript.role)]
        return Verdict(self.name, criteria)

    async def evaluate_many(
        self, transcripts: Sequence[Transcript], rubric: Rubric
    ) -> list[Verdict | Unscored]:
        return [await self.evaluate(t, rubric) for t in transcripts]


def _seed(engine: Engine, calls: int, turns: int) -> None:
    start = datetime(2026, 9, 7, 8, tzinfo=UTC)
    with Session(engine) as session:
        team = Team(slug="north", name="North")
        session.add(team)
        session.flush()
        reps = []
        for i in range(40):
            rep = Person(external_id=f"rep-{i}", name=f"Rep {i}", role="support", team_id=team.id)
            session.add(rep)
            reps.append(rep)
        session.flush()
        for n in range(calls):
            call = Interaction(
                external_id=f"call-{n}",
                source="bench",
                rep_id=reps[n % len(reps)].id or 0,
                team_id=team.id,
                started_at=start + timedelta(minutes=13 * n),
                content_hash=f"h-{n}",
                turn_count=turns,
            )
            session.add(call)
            session.flush()
            session.add_all(
                Turn(
                    interaction_id=call.id or 0,
                    idx=i,
                    speaker=Speaker.agent if i % 2 == 0 else Speaker.customer,
                    start_s=i * 6.0,
                    text="Thanks for calling, let me check the account for you today.",
                )
                for i in range(turns)
            )
        session.commit()


def _timed(action: Callable[[], Any]) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def _engine(kind: str, tmp: Path) -> tuple[Engine, Callable[[], None]]:
    if kind == "sqlite":
        engine = make_engine(f"sqlite:///{tmp / f'{uuid.uuid4().hex}.db'}")
        migrate(engine)
        return engine, engine.dispose
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    from sqlmodel import create_engine

    engine = create_engine(POSTGRES_URL, connect_args={"options": f"-csearch_path={schema}"})
    migrate(engine)

    def drop() -> None:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return engine, drop


def _ratings_csv(path: Path, calls: int) -> None:
    criteria = [c.id for c in RUBRICS.for_role("support").criteria]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["rater", "interaction", "criterion", "level"])
        for n in range(calls):
            for criterion in criteria:
                for r, rater in enumerate(("ann", "bob", "cat")):
                    level = 1 + (n + (r if n % 5 == 0 else 0)) % 3
                    writer.writerow([rater, f"call-{n}", criterion, level])


def run_once(kind: str, calls: int, turns: int, batch: int, tmp: Path) -> dict[str, float]:
    engine, close = _engine(kind, tmp)
    try:
        _seed(engine, calls, turns)
        judge = InstantJudge()

        def score() -> None:
            asyncio.run(score_pending(engine, judge, RUBRICS, batch_size=batch))

        first = _timed(score)
        rerun = _timed(score)
        cover = _timed(lambda: coverage(engine, period="week", rubrics=RUBRICS))
        ratings = tmp / f"{uuid.uuid4().hex}.csv"
        _ratings_csv(ratings, 30)
        imported = _timed(lambda: import_ratings(engine, ratings, RUBRICS))
        settings = CalibrationSettings(bootstrap_resamples=1000)
        report = _timed(lambda: calibration_report(engine, RUBRICS, settings, record=False))
        return {
            "score_s": first,
            "calls_per_s": calls / first,
            "rerun_s": rerun,
            "coverage_s": cover,
            "import_360_ratings_s": imported,
            "calibration_report_s": report,
        }
    finally:
        close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgres", action="store_true", help="Also run on PostgreSQL.")
    args = parser.parse_args()

    kinds = ["sqlite", "postgres"] if args.postgres else ["sqlite"]
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            runs = [
                run_once(kind, args.calls, args.turns, args.batch_size, Path(tmp))
                for _ in range(args.runs)
            ]
            print(
                f"{kind}: {args.calls} calls x {args.turns} turns, batch {args.batch_size}, "
                f"median of {args.runs} runs"
            )
            for key in runs[0]:
                values = [run[key] for run in runs]
                print(f"  {key:24} {statistics.median(values):10.3f}")


if __name__ == "__main__":
    main()
