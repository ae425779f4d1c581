"""The per-interaction coaching pipeline as a LangGraph graph.

scored -> update trends -> evaluate triggers -> decide -> assign scenario -> queue
notifications, then (only for a cohort response) wait for the manager's approval.

Each interaction runs on its own thread (`interaction-<id>`), checkpointed after every step:
in the SQLite saver by default, in the Postgres saver when the database is PostgreSQL. A run
that crashed resumes at the step that failed; the steps themselves are idempotent and the
outbox's dedupe key is the final guard, so nothing is sent twice. A cohort decision waits in
a LangGraph `interrupt` until `decide_cohort` (the manager) or `resume_expired_approvals`
(the clock) answers it.
"""

from __future__ import annotations

import logging
import operator
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Protocol, TypedDict, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command, Send, interrupt
from sqlalchemy import or_
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from coaching import steps
from coaching.catalogue import ScenarioCatalogue, StaticCatalogue
from coaching.context import CoachingContext
from coaching.errors import ApprovalError
from coaching.scored import NotScoredError
from config.coaching import CoachingRules
from store.models import CoachingRun, CohortDecision, Evaluation, Interaction, utcnow

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoints.sqlite"


class PipelineState(TypedDict, total=False):
    interaction_id: int
    evaluation_id: int | None
    scored: dict[str, Any]
    trends_applied: bool
    trends_added_now: bool
    trigger_ids: list[int]
    decision: str
    cohort_decision_ids: list[int]
    assignment_ids: list[int]
    assignment_notes: list[str]
    completed_assignment_id: int | None
    message_ids: list[int]
    approvals: Annotated[list[dict[str, Any]], operator.add]


class ApprovalTask(TypedDict):
    decision_id: int
    interaction_id: int


Step = Callable[[CoachingContext, dict[str, Any]], dict[str, Any]]


class _NodeFn(Protocol):
    def __call__(
        self, state: PipelineState, *, runtime: Runtime[CoachingContext]
    ) -> dict[str, Any]: ...


def _node(step: Step) -> _NodeFn:
    def run(state: PipelineState, *, runtime: Runtime[CoachingContext]) -> dict[str, Any]:
        return step(runtime.context, dict(state))

    run.__name__ = step.__name__
    return run


def await_approval(task: ApprovalTask, *, runtime: Runtime[CoachingContext]) -> dict[str, Any]:
    """Wait for the manager's answer to one cohort decision, then apply it."""
    ctx = runtime.context
    with Session(ctx.engine) as session:
        decision = session.get(CohortDecision, task["decision_id"])
    if decision is None:
        return {"approvals": []}
    if decision.status == "pending":
        answer = interrupt(
            {
                "decision_id": decision.id,
                "team_id": decision.team_id,
                "criterion_id": decision.criterion_id,
                "scenario": decision.scenario_slug,
                "expires_at": decision.expires_at.isoformat(),
            }
        )
    else:
        answer = {"approved": decision.status != "declined", "at": None}
    result = steps.apply_cohort_decision(ctx, task["decision_id"], dict(answer))
    return {"approvals": [result]}


def _route_after_notify(state: PipelineState) -> list[Send] | str:
    pending = state.get("cohort_decision_ids") or []
    if not pending:
        return END
    return [
        Send("await_approval", {"decision_id": d, "interaction_id": state["interaction_id"]})
        for d in pending
    ]


def build_graph() -> StateGraph[PipelineState, CoachingContext, PipelineState, PipelineState]:
    graph = StateGraph(PipelineState, context_schema=CoachingContext)
    graph.add_node("load", _node(steps.load_step))
    graph.add_node("update_trends", _node(steps.update_trends_step))
    graph.add_node("evaluate_triggers", _node(steps.evaluate_triggers_step))
    graph.add_node("decide", _node(steps.decide_step))
    graph.add_node("assign_scenario", _node(steps.assign_step))
    graph.add_node("queue_notifications", _node(steps.notify_step))
    # A `Send` hands this node its own task dict rather than the graph state.
    graph.add_node("await_approval", cast(_NodeFn, await_approval))
    graph.add_edge(START, "load")
    graph.add_edge("load", "update_trends")
    graph.add_edge("update_trends", "evaluate_triggers")
    graph.add_edge("evaluate_triggers", "decide")
    graph.add_edge("decide", "assign_scenario")
    graph.add_edge("assign_scenario", "queue_notifications")
    graph.add_conditional_edges("queue_notifications", _route_after_notify, ["await_approval", END])
    graph.add_edge("await_approval", END)
    return graph


@contextmanager
def open_checkpointer(engine: Engine, data_dir: Path) -> Iterator[BaseCheckpointSaver[Any]]:
    """The Postgres saver on the same database when it is PostgreSQL, else the SQLite saver
    on a file under `data_dir`."""
    if engine.dialect.name == "postgresql":
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg.rows import dict_row

        # A connection of the engine's own pool, detached, keeps its connect arguments
        # (search path, SSL) without parsing the URL again.
        pooled = engine.raw_connection()
        conn: Any = pooled.driver_connection
        pooled.detach()
        conn.rollback()
        conn.autocommit = True
        conn.row_factory = dict_row
        # Checkpoints are a resume point, not the record: the steps are idempotent and the
        # outbox's dedupe key guards delivery, so a server crash losing the last few
        # checkpoints only means re-running a step. Skipping the WAL flush per write saves
        # most of their cost.
        conn.execute("SET synchronous_commit TO OFF")
        try:
            saver: BaseCheckpointSaver[Any] = PostgresSaver(conn)
            saver.setup()  # type: ignore[attr-defined]
            yield saver
        finally:
            conn.close()
        return
    from langgraph.checkpoint.sqlite import SqliteSaver

    data_dir.mkdir(parents=True, exist_ok=True)
    sqlite_conn = sqlite3.connect(str(data_dir / CHECKPOINT_FILE), check_same_thread=False)
    sqlite_conn.execute("PRAGMA journal_mode=WAL")
    sqlite_conn.execute("PRAGMA synchronous=NORMAL")
    try:
        sqlite_saver = SqliteSaver(sqlite_conn)
        sqlite_saver.setup()
        yield sqlite_saver
    finally:
        sqlite_conn.close()


@dataclass
class RunResult:
    interaction_id: int
    status: str
    """`done`, `awaiting_approval`, `failed` or `skipped` (already coached)."""
    decision: str | None = None
    trigger_ids: list[int] = field(default_factory=list)
    assignment_ids: list[int] = field(default_factory=list)
    message_ids: list[int] = field(default_factory=list)
    cohort_decision_ids: list[int] = field(default_factory=list)
    error: str | None = None


@dataclass
class PipelineReport:
    results: list[RunResult] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def trigger_ids(self) -> list[int]:
        return sorted({t for r in self.results for t in r.trigger_ids})

    @property
    def assignment_ids(self) -> list[int]:
        return sorted({a for r in self.results for a in r.assignment_ids})

    @property
    def message_ids(self) -> list[int]:
        return sorted({m for r in self.results for m in r.message_ids})

    @property
    def cohort_decision_ids(self) -> list[int]:
        return sorted({d for r in self.results for d in r.cohort_decision_ids})

    @property
    def failures(self) -> list[RunResult]:
        return [r for r in self.results if r.status == "failed"]


Progress = Callable[[int, int, RunResult], None]


def pending_interactions(engine: Engine, *, limit: int | None = None) -> list[int]:
    """Scored interactions the pipeline has not finished, oldest first: never started, or
    interrupted by a crash or an error."""
    e, r, i = Evaluation, CoachingRun, Interaction
    stmt = (
        select(e.interaction_id, i.started_at)
        .join(i, col(i.id) == col(e.interaction_id))
        .outerjoin(r, col(r.interaction_id) == col(e.interaction_id))
        .where(
            e.status == "scored",
            or_(col(r.interaction_id).is_(None), col(r.status).in_(["running", "failed"])),
        )
        .group_by(col(e.interaction_id), col(i.started_at))
        .order_by(col(i.started_at), col(e.interaction_id))
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    with Session(engine) as session:
        return [int(row[0]) for row in session.exec(stmt)]


class CoachingPipeline:
    """Runs the coaching graph for interactions and answers cohort approvals."""

    def __init__(self, context: CoachingContext, checkpointer: BaseCheckpointSaver[Any]) -> None:
        self.context = context
        self.checkpointer = checkpointer
        self.graph: CompiledStateGraph[Any, Any, Any, Any] = build_graph().compile(
            checkpointer=checkpointer
        )

    @property
    def engine(self) -> Engine:
        return self.context.engine

    def _config(self, thread_id: str) -> RunnableConfig:
        return {"configurable": {"thread_id": thread_id}}

    def _start(self, interaction_id: int) -> CoachingRun:
        return steps.start_run(self.context, interaction_id)

    def _finish(self, interaction_id: int, status: str, **fields: Any) -> None:
        steps.finish_run(self.context, interaction_id, status, **fields)

    def process(self, interaction_id: int) -> RunResult:
        """Run (or resume) the pipeline for one scored interaction."""
        try:
            run = self._start(interaction_id)
        except NotScoredError as exc:
            return RunResult(interaction_id, "failed", error=str(exc))
        if run.status in ("done", "awaiting_approval"):
            return RunResult(interaction_id, "skipped", decision=run.decision)
        config = self._config(run.thread_id)
        try:
            snapshot = self.graph.get_state(config)
            if snapshot.next:
                logger.info("pipeline resumed", extra={"interaction_id": interaction_id})
                self.graph.invoke(None, config, context=self.context, durability="sync")
            else:
                initial: PipelineState = {
                    "interaction_id": interaction_id,
                    "evaluation_id": run.evaluation_id,
                }
                self.graph.invoke(initial, config, context=self.context, durability="sync")
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
            logger.exception(
                "pipeline step failed",
                extra={"interaction_id": interaction_id, "error": type(exc).__name__},
            )
            self._finish(interaction_id, "failed", error=error)
            return RunResult(interaction_id, "failed", error=error)
        return self._settle(interaction_id, run.thread_id)

    def _settle(self, interaction_id: int, thread_id: str) -> RunResult:
        config = self._config(thread_id)
        snapshot = self.graph.get_state(config)
        values: dict[str, Any] = dict(snapshot.values or {})
        waiting = bool(snapshot.interrupts)
        status = "awaiting_approval" if waiting else "done"
        self._finish(interaction_id, status, decision=values.get("decision"))
        if not waiting:
            self.checkpointer.delete_thread(thread_id)
        approvals = values.get("approvals", [])
        return RunResult(
            interaction_id,
            status,
            decision=values.get("decision"),
            trigger_ids=list(values.get("trigger_ids", [])),
            assignment_ids=list(values.get("assignment_ids", []))
            + [a for r in approvals for a in r.get("assignment_ids", [])],
            message_ids=list(values.get("message_ids", []))
            + [m for r in approvals for m in r.get("message_ids", [])],
            cohort_decision_ids=list(values.get("cohort_decision_ids", [])),
        )

    def run(
        self,
        interaction_ids: Sequence[int] | None = None,
        *,
        limit: int | None = None,
        progress: Progress | None = None,
    ) -> PipelineReport:
        """Process the given interactions, or every pending one, oldest first; one failure
        is recorded and the rest go on."""
        ids = list(interaction_ids) if interaction_ids is not None else None
        if ids is None:
            ids = pending_interactions(self.engine, limit=limit)
        report = PipelineReport()
        for done, interaction_id in enumerate(ids, start=1):
            result = self.process(interaction_id)
            report.results.append(result)
            if progress is not None:
                progress(done, len(ids), result)
        logger.info(
            "pipeline run finished",
            extra={
                "interactions": len(ids),
                "failed": report.count("failed"),
                "awaiting_approval": report.count("awaiting_approval"),
            },
        )
        return report

    def decide_cohort(
        self,
        decision_id: int,
        *,
        approved: bool,
        by: int | None = None,
        now: datetime | None = None,
        auto: bool = False,
    ) -> dict[str, Any]:
        """Answer a pending cohort decision and resume the graph that waits for it."""
        now = now or self.context.now()
        with Session(self.engine) as session:
            decision = session.get(CohortDecision, decision_id)
        if decision is None:
            raise ApprovalError(
                f"No cohort decision `{decision_id}`; `coachloop approvals` lists pending ones"
            )
        if decision.status != "pending":
            raise ApprovalError(f"Cohort decision `{decision_id}` is already {decision.status}")
        answer = {"approved": approved, "by": by, "auto": auto, "at": now.isoformat()}
        config = self._config(decision.thread_id)
        snapshot = self.graph.get_state(config)
        waiting = [
            i for i in snapshot.interrupts if (i.value or {}).get("decision_id") == decision_id
        ]
        if waiting:
            self.graph.invoke(
                Command(resume={waiting[0].id: answer}),
                config,
                context=self.context,
                durability="sync",
            )
            interaction_id = int(decision.thread_id.rsplit("-", 1)[-1])
            self._settle(interaction_id, decision.thread_id)
            with Session(self.engine) as session:
                decided = session.get(CohortDecision, decision_id)
            return {"decision_id": decision_id, "status": decided.status if decided else None}
        # The waiting thread is gone (its checkpoints were lost): apply the answer directly.
        logger.warning("approval thread missing", extra={"decision_id": decision_id})
        return steps.apply_cohort_decision(self.context, decision_id, answer)

    def resume_expired_approvals(self, now: datetime | None = None) -> list[int]:
        """Auto-approve every cohort decision whose wait has run out; returns their ids."""
        now = now or self.context.now()
        with Session(self.engine) as session:
            expired = session.exec(
                select(CohortDecision.id)
                .where(CohortDecision.status == "pending", col(CohortDecision.expires_at) <= now)
                .order_by(col(CohortDecision.id))
            ).all()
        done = []
        for decision_id in expired:
            assert decision_id is not None
            self.decide_cohort(decision_id, approved=True, now=now, auto=True)
            logger.info("cohort decision auto-approved", extra={"decision_id": decision_id})
            done.append(decision_id)
        return done


@contextmanager
def open_pipeline(
    engine: Engine,
    data_dir: Path,
    *,
    rules: CoachingRules | None = None,
    catalogue: ScenarioCatalogue | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> Iterator[CoachingPipeline]:
    """A pipeline with its checkpointer open for the duration of the block."""
    context = CoachingContext(
        engine=engine,
        rules=rules or CoachingRules(),
        catalogue=catalogue or StaticCatalogue(),
        clock=clock,
    )
    with open_checkpointer(engine, data_dir) as saver:
        yield CoachingPipeline(context, saver)


def run_pipeline(
    engine: Engine,
    interaction_ids: Sequence[int] | None = None,
    *,
    data_dir: Path,
    rules: CoachingRules | None = None,
    catalogue: ScenarioCatalogue | None = None,
    clock: Callable[[], datetime] = utcnow,
    limit: int | None = None,
    progress: Progress | None = None,
) -> PipelineReport:
    """Coach the given interactions, or every scored one not yet processed."""
    with open_pipeline(engine, data_dir, rules=rules, catalogue=catalogue, clock=clock) as p:
        return p.run(interaction_ids, limit=limit, progress=progress)


def resume_expired_approvals(
    engine: Engine,
    now: datetime,
    *,
    data_dir: Path,
    rules: CoachingRules | None = None,
    catalogue: ScenarioCatalogue | None = None,
) -> list[int]:
    """Auto-approve the cohort decisions whose wait ran out by `now`."""
    with open_pipeline(engine, data_dir, rules=rules, catalogue=catalogue) as pipeline:
        return pipeline.resume_expired_approvals(now)
