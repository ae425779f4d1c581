"""Scoring and coaching as jobs on a Celery queue, for when one machine is not enough.

```python
jobs = create_job_app(settings)          # broker from COACHLOOP_JOBS__BROKER_URL
enqueue_pending(jobs, engine, settings)   # every call not yet scored and coached
jobs.worker_main(["worker", "--concurrency", "2"])
```

A job takes a batch of calls, scores those not yet scored with the workers' judge, then runs
the coaching pipeline for the scored ones: the same functions `coachloop score` and
`coachloop coach` call. Running a job twice changes nothing (one evaluation per call, rubric
version and judge; one pipeline run per call; every message deduplicated in the outbox), so
messages are acknowledged only when the job has finished: a worker that dies mid-job has its
job delivered to another worker, which picks up where the first one stopped.
"""

from __future__ import annotations

import asyncio
import logging
import random
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from celery import Celery, Task
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, or_, select

from coaching.catalogue import ScenarioCatalogue, load_catalogue
from coaching.graph import open_pipeline
from config.coaching import CoachingRules, load_coaching_rules
from config.rubric import RubricLibrary
from config.settings import Settings
from evaluators.base import Judge
from evaluators.judges import make_judge
from evaluators.scoring import score_pending
from store.db import make_engine
from store.models import CoachingRun, Evaluation, Interaction

logger = logging.getLogger(__name__)

SCORE_AND_COACH = "coachloop.score_and_coach"
RETRY_BACKOFF_MAX_S = 300
_RUNTIMES: weakref.WeakKeyDictionary[Celery, JobRuntime] = weakref.WeakKeyDictionary()
_SCENARIO_DIR = Path(__file__).resolve().parents[1] / "scenarios" / "data"


class JobQueueError(Exception):
    """The job queue cannot be used as configured; the message names the setting."""


@dataclass
class JobRuntime:
    """What a worker process needs for its jobs, built on the first job and kept."""

    settings: Settings
    engine: Engine | None = None
    rubrics: RubricLibrary | None = None
    rules: CoachingRules | None = None
    catalogue: ScenarioCatalogue | None = None
    judge: Judge | None = None

    @cached_property
    def _loop(self) -> asyncio.AbstractEventLoop:
        # one loop per worker process, kept, so a judge's HTTP client outlives a job
        return asyncio.new_event_loop()

    @cached_property
    def _engine(self) -> Engine:
        return self.engine or make_engine(self.settings.resolved_database_url)

    @cached_property
    def _rubrics(self) -> RubricLibrary:
        return self.rubrics or RubricLibrary.from_dir(self.settings.rubric_dir)

    @cached_property
    def _rules(self) -> CoachingRules:
        return self.rules or load_coaching_rules()

    @cached_property
    def _catalogue(self) -> ScenarioCatalogue:
        return self.catalogue or load_catalogue(_SCENARIO_DIR)

    @cached_property
    def _judge(self) -> Judge:
        if self.judge is not None:
            return self.judge
        return make_judge(
            self.settings.jobs.judge, self.settings, self.settings.data_dir / "models"
        )

    def score_and_coach(self, interaction_ids: Sequence[int]) -> dict[str, int]:
        """Score the calls not yet scored, then coach every scored one not yet coached."""
        report = self._loop.run_until_complete(
            score_pending(
                self._engine,
                self._judge,
                self._rubrics,
                batch_size=max(len(interaction_ids), 1),
                interaction_ids=interaction_ids,
            )
        )
        scored = _scored_among(self._engine, interaction_ids)
        with open_pipeline(
            self._engine,
            self.settings.data_dir,
            rules=self._rules,
            catalogue=self._catalogue,
        ) as pipeline:
            coached = pipeline.run(scored)
        summary = {
            "scored": report.scored,
            "unscored": report.unscored,
            "coached": coached.count("done"),
            "awaiting_approval": coached.count("awaiting_approval"),
            "already_coached": coached.count("skipped"),
            "failed": coached.count("failed"),
        }
        logger.info("job finished", extra={"interactions": len(interaction_ids), **summary})
        return summary

    def close(self) -> None:
        """Close what the jobs opened: the judge's client, the loop, the database pool."""
        close = getattr(self.__dict__.get("_judge"), "aclose", None)
        if close is not None:
            self._loop.run_until_complete(close())
        if "_loop" in self.__dict__:
            self._loop.close()
        if self.engine is None and "_engine" in self.__dict__:
            self.__dict__["_engine"].dispose()


def _scored_among(engine: Engine, interaction_ids: Sequence[int]) -> list[int]:
    with Session(engine) as session:
        rows = session.exec(
            select(Evaluation.interaction_id)
            .where(col(Evaluation.interaction_id).in_(list(interaction_ids)))
            .where(Evaluation.status == "scored")
            .distinct()
        ).all()
    return sorted(int(r) for r in rows)


def pending_for_jobs(engine: Engine, *, limit: int | None = None) -> list[int]:
    """Calls the pipeline has not finished, oldest first: unscored, or scored and not coached."""
    query = (
        select(Interaction.id)
        .outerjoin(CoachingRun, col(CoachingRun.interaction_id) == col(Interaction.id))
        .where(
            or_(
                col(CoachingRun.interaction_id).is_(None),
                col(CoachingRun.status).in_(["running", "failed"]),
            )
        )
        .order_by(col(Interaction.started_at), col(Interaction.id))
    )
    if limit is not None:
        query = query.limit(limit)
    with Session(engine) as session:
        return [int(i) for i in session.exec(query).all() if i is not None]


def create_job_app(settings: Settings, runtime: JobRuntime | None = None) -> Celery:
    """The Celery app for the configured broker, with the scoring and coaching job.

    Raises:
        JobQueueError: No broker is configured.
    """
    broker = settings.jobs.broker_url
    if not broker:
        raise JobQueueError(
            "No job queue is configured; set COACHLOOP_JOBS__BROKER_URL (for example "
            "redis://127.0.0.1:6379/0 or amqp://guest:guest@127.0.0.1:5672//), or run "
            "`coachloop score` and `coachloop coach` in one process instead"
        )
    jobs = Celery("coachloop", broker=broker, set_as_current=False)
    jobs.conf.update(
        task_default_queue=settings.jobs.queue,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        enable_utc=True,
    )
    state = runtime or JobRuntime(settings)
    _RUNTIMES[jobs] = state

    @jobs.task(name=SCORE_AND_COACH, bind=True, max_retries=settings.jobs.max_retries)
    def score_and_coach(task: Task[Any, Any], interaction_ids: list[int]) -> dict[str, int]:
        try:
            return state.score_and_coach(interaction_ids)
        except Exception as exc:
            logger.exception(
                "job failed",
                extra={"interactions": len(interaction_ids), "attempt": task.request.retries + 1},
            )
            backoff_s = min(RETRY_BACKOFF_MAX_S, 2**task.request.retries) * random.uniform(0.5, 1)
            raise task.retry(exc=exc, countdown=backoff_s) from exc

    return jobs


def runtime_of(jobs: Celery) -> JobRuntime:
    """The runtime the app's jobs run with, to close it when a worker process stops."""
    return _RUNTIMES[jobs]


def enqueue(jobs: Celery, interaction_ids: Sequence[int], *, batch_size: int) -> int:
    """Send the calls to the workers in jobs of `batch_size`; returns the number of jobs."""
    ids = list(interaction_ids)
    sent = 0
    for start in range(0, len(ids), batch_size):
        jobs.send_task(SCORE_AND_COACH, args=[ids[start : start + batch_size]])
        sent += 1
    logger.info("jobs queued", extra={"jobs": sent, "interactions": len(ids)})
    return sent


def enqueue_pending(
    jobs: Celery, engine: Engine, settings: Settings, *, limit: int | None = None
) -> tuple[int, int]:
    """Queue every call not yet scored and coached; returns (calls, jobs)."""
    ids = pending_for_jobs(engine, limit=limit)
    return len(ids), enqueue(jobs, ids, batch_size=settings.jobs.batch_size)
