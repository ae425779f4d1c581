"""Scoring and coaching as Celery jobs, through the real Redis and RabbitMQ brokers.

Workers are `coachloop jobs worker` processes, as an operator runs them. The demo
organisation is scored with the offline judge and coached; then every job is delivered
again, and a worker is killed mid-job, and nothing is written twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select
from typer.testing import CliRunner

from app import app
from coaching.graph import open_pipeline
from coaching.jobs import (
    JobQueueError,
    JobRuntime,
    create_job_app,
    enqueue,
    pending_for_jobs,
)
from config.settings import JobSettings, Settings, get_settings
from store.models import CoachingRun, Evaluation, Interaction, OutboxMessage

BROKERS = {
    "redis": "redis://127.0.0.1:6379/15",
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672//",
}
DEMO = ["demo", "--reps", "9", "--days", "7", "--end-date", "2026-11-27"]
WAIT_S = 240.0
REPO = Path(__file__).resolve().parents[2]


def url_of(engine: Engine) -> str:
    """The engine's URL for another process; on PostgreSQL with the test's schema in it."""
    url = engine.url
    if url.get_backend_name() == "postgresql":
        with engine.connect() as connection:
            schema = connection.execute(text("SHOW search_path")).scalar_one()
        url = url.update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


def settings_for(broker: str, engine: Engine, data_dir: Path, batch_size: int = 10) -> Settings:
    queue = f"coachloop-test-{uuid.uuid4().hex[:10]}"
    return Settings(
        data_dir=data_dir,
        database_url=url_of(engine),
        jobs=JobSettings(broker_url=broker, queue=queue, batch_size=batch_size, max_retries=3),
    )


def load_demo(engine: Engine, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COACHLOOP_DATA_DIR", str(data_dir))
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["--database-url", url_of(engine), *DEMO])
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output


def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


class Workers:
    """`coachloop jobs worker` processes for one queue; stopped and the queue deleted after."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COACHLOOP_")}
        env |= {
            "COACHLOOP_DATA_DIR": str(self.settings.data_dir),
            "COACHLOOP_DATABASE_URL": self.settings.database_url,
            "COACHLOOP_JOBS__BROKER_URL": self.settings.jobs.broker_url or "",
            "COACHLOOP_JOBS__QUEUE": self.settings.jobs.queue,
            "COACHLOOP_JOBS__MAX_RETRIES": "3",
        }
        log = (self.log_dir / f"worker-{len(self.running)}.log").open("wb")
        worker = subprocess.Popen(
            [sys.executable, "-m", "app", "jobs", "worker"],
            env=env,
            stdout=log,
            stderr=log,
            cwd=REPO,
        )
        self.running.append(worker)
        return worker

    def stop(self, worker: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
        worker.send_signal(sig)
        worker.wait(timeout=60)

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.log_dir.glob("worker-*.log"))

    def close(self) -> None:
        for worker in self.running:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        jobs = create_job_app(self.settings)
        with jobs.connection_for_write() as connection:
            channel: Any = connection.default_channel
            channel.queue_delete(self.settings.jobs.queue)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[[Settings], Workers]]:
    made: list[Workers] = []

    def make(settings: Settings) -> Workers:
        made.append(Workers(settings, tmp_path))
        return made[-1]

    yield make
    for w in made:
        w.close()


def totals(engine: Engine) -> dict[str, int]:
    with Session(engine) as session:
        return {
            "evaluations": session.exec(select(func.count(col(Evaluation.id)))).one(),
            "runs_done": session.exec(
                select(func.count(col(CoachingRun.interaction_id))).where(
                    col(CoachingRun.status).in_(["done", "awaiting_approval"])
                )
            ).one(),
            "messages": session.exec(select(func.count(col(OutboxMessage.id)))).one(),
        }


def coached(engine: Engine, interaction_id: int) -> bool:
    with Session(engine) as session:
        run = session.get(CoachingRun, interaction_id)
    return run is not None and run.status in ("done", "awaiting_approval")


def one_evaluation_each(engine: Engine) -> bool:
    with Session(engine) as session:
        counts = session.exec(
            select(func.count(col(Evaluation.id))).group_by(col(Evaluation.interaction_id))
        ).all()
    return set(counts) <= {1}


@pytest.mark.parametrize("broker", list(BROKERS))
def test_workers_score_and_coach_once_even_when_every_job_comes_twice(
    broker: str,
    sqlite_engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    workers: Callable[[Settings], Workers],
) -> None:
    load_demo(sqlite_engine, tmp_path / "data", monkeypatch)
    settings = settings_for(BROKERS[broker], sqlite_engine, tmp_path / "data")
    jobs = create_job_app(settings)
    *ids, sentinel = pending_for_jobs(sqlite_engine)[:21]
    pool = workers(settings)

    pool.start()
    sent = enqueue(jobs, ids, batch_size=settings.jobs.batch_size)
    eventually(lambda: totals(sqlite_engine)["runs_done"] == len(ids), "the first round")
    first = totals(sqlite_engine)
    # every call again, then one new call: one worker takes jobs in order, so when the new
    # call is coached the repeated jobs are done too
    enqueue(jobs, ids, batch_size=7)
    enqueue(jobs, [sentinel], batch_size=1)
    eventually(lambda: coached(sqlite_engine, sentinel), "the repeated jobs")
    second = totals(sqlite_engine)

    assert sent == 2
    assert first["evaluations"] == first["runs_done"] == len(ids)
    assert first["messages"] >= len(ids)  # feedback for every call, plus any alerts
    assert second["evaluations"] == first["evaluations"] + 1
    assert second["runs_done"] == first["runs_done"] + 1
    assert one_evaluation_each(sqlite_engine)
    assert set(ids + [sentinel]).isdisjoint(pending_for_jobs(sqlite_engine))
    assert "job failed" not in pool.logs()


@pytest.mark.parametrize("db_engine", ["postgres"], indirect=True)
def test_a_worker_killed_mid_job_leaves_the_job_to_the_next_worker(
    db_engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    workers: Callable[[Settings], Workers],
) -> None:
    load_demo(db_engine, tmp_path / "data", monkeypatch)
    settings = settings_for(BROKERS["rabbitmq"], db_engine, tmp_path / "data", batch_size=12)
    jobs = create_job_app(settings)
    ids = pending_for_jobs(db_engine)[:12]
    pool = workers(settings)
    enqueue(jobs, ids, batch_size=12)

    first = pool.start()
    eventually(lambda: totals(db_engine)["evaluations"] > 0, "the first worker to score")
    pool.stop(first, signal.SIGKILL)
    before = totals(db_engine)
    pool.start()
    eventually(lambda: totals(db_engine)["runs_done"] == len(ids), "the second worker")

    after = totals(db_engine)
    assert before["runs_done"] < len(ids)  # killed before the job was finished
    assert after["evaluations"] == len(ids)
    assert one_evaluation_each(db_engine)
    with Session(db_engine) as session:
        keys = session.exec(select(OutboxMessage.dedupe_key)).all()
    assert len(keys) == len(set(keys)) >= len(ids)


def test_a_job_that_failed_half_way_finishes_when_run_again(
    sqlite_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_demo(sqlite_engine, tmp_path / "data", monkeypatch)
    settings = settings_for(BROKERS["redis"], sqlite_engine, tmp_path / "data")
    runtime = JobRuntime(settings, engine=sqlite_engine)
    ids = pending_for_jobs(sqlite_engine)[:6]
    attempts: list[int] = []

    def fails_once(*args: Any, **kwargs: Any) -> Any:
        attempts.append(len(attempts) + 1)
        if len(attempts) == 1:
            raise ConnectionError("database went away after scoring")
        return open_pipeline(*args, **kwargs)

    monkeypatch.setattr("coaching.jobs.open_pipeline", fails_once)
    with pytest.raises(ConnectionError):
        runtime.score_and_coach(ids)
    after_failure = totals(sqlite_engine)
    summary = runtime.score_and_coach(ids)  # what the retry runs
    runtime.close()

    assert after_failure["evaluations"] == 6 and after_failure["runs_done"] == 0
    assert summary == {
        "scored": 0,
        "unscored": 0,
        "coached": 6,
        "awaiting_approval": 0,
        "already_coached": 0,
        "failed": 0,
    }
    assert totals(sqlite_engine)["evaluations"] == 6
    assert one_evaluation_each(sqlite_engine)


def test_without_a_broker_the_commands_say_what_to_set(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    result = CliRunner().invoke(app, ["--database-url", url_of(sqlite_engine), "jobs", "enqueue"])

    assert result.exit_code == 1
    assert "COACHLOOP_JOBS__BROKER_URL" in result.output
    with pytest.raises(JobQueueError, match="COACHLOOP_JOBS__BROKER_URL"):
        create_job_app(Settings(data_dir=tmp_path))


def test_enqueue_command_queues_every_pending_call(
    sqlite_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_demo(sqlite_engine, tmp_path / "data", monkeypatch)
    settings = settings_for(BROKERS["redis"], sqlite_engine, tmp_path / "data")
    monkeypatch.setenv("COACHLOOP_JOBS__BROKER_URL", BROKERS["redis"])
    monkeypatch.setenv("COACHLOOP_JOBS__QUEUE", settings.jobs.queue)
    get_settings.cache_clear()
    with Session(sqlite_engine) as session:
        calls = session.exec(select(func.count(col(Interaction.id)))).one()
    expected_jobs = -(-calls // 16)

    result = CliRunner().invoke(app, ["--database-url", url_of(sqlite_engine), "jobs", "enqueue"])
    get_settings.cache_clear()

    assert result.exit_code == 0, result.output
    assert f"queued {calls} calls in {expected_jobs} jobs" in result.output
    jobs = create_job_app(settings)
    with jobs.connection_for_write() as connection:
        channel: Any = connection.default_channel
        waiting = channel.queue_declare(settings.jobs.queue, passive=True).message_count
        channel.queue_delete(settings.jobs.queue)
    assert waiting == expected_jobs
