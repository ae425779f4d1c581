"""The pipeline graph end to end: feedback, dedupe, crash and resume, cohort approvals,
digests and the feedback deadline, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from coaching import steps
from coaching.catalogue import StaticCatalogue
from coaching.errors import ApprovalError
from coaching.feedback import render_text
from coaching.graph import CoachingPipeline, open_pipeline, pending_interactions
from coaching.outbox import build_digests, enqueue, feedback_breaches, mark_sent, set_alert_mode
from config.coaching import CoachingRules, parse_coaching_rules
from store.db import session_scope
from store.models import (
    Assignment,
    CoachingRun,
    CoachingTrigger,
    CohortDecision,
    CriterionDaily,
    InteractionKind,
    OutboxMessage,
)
from tests.coaching.conftest import CRITERIA, SUPPORT, T0, Clock, Org, rows

ACK = "acknowledge_concern"
COHORT_RULES = parse_coaching_rules(
    {"triggers": {"min_sessions": 2, "cohort_min_reps": 3}, "cohort": {"auto_approve_hours": 24}}
)


def messages(engine: Engine, kind: str | None = None) -> list[OutboxMessage]:
    return [m for m in rows(engine, OutboxMessage) if kind is None or m.kind == kind]


def test_feedback_names_each_level_the_moment_and_what_good_looks_like(
    org: Org, pipeline: CoachingPipeline, db_engine: Engine
) -> None:
    ada = org.rep(org.team("north"), "Ada")
    call = org.call(
        ada,
        T0,
        {"verify_identity": 3, ACK: 1, "confirm_resolution": 2, "follow_process": None},
    )

    [result] = pipeline.run().results

    assert result.status == "done"
    [message] = messages(db_engine, "rep_feedback")
    assert message.recipient_id == ada.id
    assert message.interaction_id == call
    assert message.interaction_started_at == T0
    criteria = {c["id"]: c for c in message.payload["criteria"]}
    assert [c["level"] for c in message.payload["criteria"]] == [3, 1, 2, None]
    ack = criteria[ACK]
    assert ack["gap"] is True
    assert ack["moment"] == {
        "check": "straight_to_process",
        "observed": True,
        "turn": 3,
        "start_s": 75.0,
        "quote": f"{ACK} said at level 1",
        "time": "1:15",
    }
    assert ack["good_looks_like"]["anchor"] == SUPPORT.criterion(ACK).levels[3].anchor.strip()
    assert criteria["follow_process"]["not_applicable"] is True
    assert criteria["verify_identity"]["gap"] is False
    text = render_text(message.kind, message.payload)
    assert f'at 1:15: "{ACK} said at level 1"' in text


def test_a_rerun_produces_no_second_message(
    org: Org, pipeline: CoachingPipeline, db_engine: Engine
) -> None:
    ada = org.rep(org.team("north"), "Ada")
    ids = org.calls(ada, [1, 1, 1, 1, 1])
    pipeline.run()
    before = {m.dedupe_key for m in messages(db_engine)}
    triggers = len(rows(db_engine, CoachingTrigger))
    daily = sum(d.n1 for d in rows(db_engine, CriterionDaily))

    again = pipeline.run(ids)
    # A job queue retrying every step of the last interaction by hand:
    state: dict[str, Any] = {"interaction_id": ids[-1]}
    for step in (
        steps.load_step,
        steps.update_trends_step,
        steps.evaluate_triggers_step,
        steps.decide_step,
        steps.assign_step,
        steps.notify_step,
    ):
        state.update(step(pipeline.context, state))

    assert {r.status for r in again.results} == {"skipped"}
    assert pending_interactions(db_engine) == []
    assert sorted(m.dedupe_key for m in messages(db_engine)) == sorted(before)
    assert len(rows(db_engine, CoachingTrigger)) == triggers
    assert sum(d.n1 for d in rows(db_engine, CriterionDaily)) == daily
    assert len(rows(db_engine, Assignment)) == 1


class Crash(RuntimeError):
    pass


def _crash_on(engine: Engine, prefix: str) -> list[int]:
    """Raise once, inside the statement that starts with `prefix`."""
    fired: list[int] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not fired and statement.lstrip().upper().startswith(prefix):
            fired.append(1)
            raise Crash("simulated crash")

    event.listen(engine, "before_cursor_execute", before)
    return fired


def _count(engine: Engine, prefix: str) -> Counter[str]:
    seen: Counter[str] = Counter()

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(prefix):
            seen[prefix] += 1

    event.listen(engine, "before_cursor_execute", before)
    return seen


def test_crash_inside_a_node_resumes_there_without_duplicates(
    org: Org, db_engine: Engine, tmp_path: Path, rules: CoachingRules, catalogue: Any, clock: Clock
) -> None:
    ada = org.rep(org.team("north"), "Ada")
    ids = org.calls(ada, [1, 1, 1, 1, 1])
    with open_pipeline(
        db_engine, tmp_path / "data", rules=rules, catalogue=catalogue, clock=clock
    ) as p:
        p.run(ids[:-1])
    fired = _crash_on(db_engine, "INSERT INTO OUTBOXMESSAGE")

    with open_pipeline(
        db_engine, tmp_path / "data", rules=rules, catalogue=catalogue, clock=clock
    ) as p:
        [crashed] = p.run([ids[-1]]).results
    assert fired and crashed.status == "failed" and "simulated crash" in (crashed.error or "")
    assert [m for m in messages(db_engine) if m.interaction_id == ids[-1]] == []
    trends_applied = _count(db_engine, "UPDATE COACHINGRUN SET TRENDS_APPLIED")

    # A new process picks the interaction up again and resumes at the failed step.
    assert pending_interactions(db_engine) == [ids[-1]]
    with open_pipeline(
        db_engine, tmp_path / "data", rules=rules, catalogue=catalogue, clock=clock
    ) as p:
        [resumed] = p.run().results

    assert resumed.status == "done"
    assert trends_applied["UPDATE COACHINGRUN SET TRENDS_APPLIED"] == 0
    keys = [m.dedupe_key for m in messages(db_engine) if m.interaction_id == ids[-1]]
    assert len(keys) == len(set(keys))
    assert sorted(k.split(":")[0] for k in keys) == [
        "manager_alert",
        "manager_alert",
        "rep_feedback",
    ]
    [run] = rows(db_engine, CoachingRun, interaction_id=ids[-1])
    assert (run.status, run.attempts) == ("done", 2)
    assert sum(d.n1 for d in rows(db_engine, CriterionDaily) if d.criterion_id == ACK) == 5


def test_crash_after_a_step_committed_but_before_its_checkpoint_sends_nothing_twice(
    org: Org, db_engine: Engine, tmp_path: Path, rules: CoachingRules, catalogue: Any, clock: Clock
) -> None:
    ada = org.rep(org.team("north"), "Ada")
    ids = org.calls(ada, [1, 1, 1, 1, 1])
    with open_pipeline(
        db_engine, tmp_path / "data", rules=rules, catalogue=catalogue, clock=clock
    ) as p:
        p.run(ids[:-1])
        original = p.checkpointer.put_writes
        lost: list[int] = []

        def lose_notification_writes(config: Any, writes: Any, *args: Any, **kwargs: Any) -> None:
            if not lost and any(channel == "message_ids" for channel, _ in writes):
                lost.append(1)
                raise Crash("process died before the checkpoint")
            original(config, writes, *args, **kwargs)

        p.checkpointer.put_writes = lose_notification_writes  # type: ignore[method-assign]
        [crashed] = p.run([ids[-1]]).results
    assert lost and crashed.status == "failed"
    queued = sorted(m.dedupe_key for m in messages(db_engine))

    with open_pipeline(
        db_engine, tmp_path / "data", rules=rules, catalogue=catalogue, clock=clock
    ) as p:
        [resumed] = p.run().results

    assert resumed.status == "done"
    assert sorted(m.dedupe_key for m in messages(db_engine)) == queued
    assert len(rows(db_engine, CoachingTrigger, kind="individual")) == 1
    assert len(rows(db_engine, Assignment)) == 1


def test_an_unscored_interaction_is_not_coached(
    org: Org, pipeline: CoachingPipeline, db_engine: Engine
) -> None:
    ada = org.rep(org.team("north"), "Ada")
    org.call(ada, T0, dict.fromkeys(CRITERIA, 2), scored=False)

    assert pipeline.run().results == []
    [result] = pipeline.run([1]).results
    assert result.status == "failed" and "no scored evaluation" in (result.error or "")


# -- cohort response ------------------------------------------------------------------------


def _cohort_team(org: Org) -> tuple[list[Any], list[int]]:
    """Three of four reps below the bar on acknowledgement, two calls each."""
    team = org.team("north")
    reps = [org.rep(team, name) for name in ("Ada", "Ben", "Cy", "Di")]
    ids = []
    for day in range(2):
        for i, rep in enumerate(reps):
            level = 3 if i == 3 else 1
            at = T0 + timedelta(days=day, minutes=i)
            ids.append(org.call(rep, at, {**dict.fromkeys(CRITERIA, 3), ACK: level}))
    return reps, ids


@pytest.mark.parametrize("rules", [COHORT_RULES])
def test_a_shared_gap_gets_one_cohort_response_not_a_message_per_rep(
    org: Org, pipeline: CoachingPipeline, db_engine: Engine, rules: CoachingRules
) -> None:
    reps, ids = _cohort_team(org)

    report = pipeline.run()

    [decision] = rows(db_engine, CohortDecision)
    assert decision.status == "pending"
    assert sorted(decision.rep_ids) == sorted(r.id for r in reps[:3])
    assert decision.scenario_slug == "support-ack-easy"
    assert decision.suggestion["team_session"]["minutes"] == 30
    assert [r.status for r in report.results].count("awaiting_approval") == 1
    [alert] = messages(db_engine, "cohort_alert")
    assert alert.recipient_id == org.managers["north"].id
    assert alert.payload["decision_id"] == decision.id
    assert {r["name"] for r in alert.payload["reps"]} == {"Ada", "Ben", "Cy"}
    individual = [
        m
        for m in messages(db_engine, "manager_alert")
        if m.payload["type"] in ("individual", "decline")
    ]
    assert individual and {m.status for m in individual} == {"cancelled"}
    assert {t.status for t in rows(db_engine, CoachingTrigger, kind="individual")} == {"merged"}
    # The interrupted run waits; running again does not ask the manager twice.
    assert {r.status for r in pipeline.run(ids).results} == {"skipped"}
    assert len(messages(db_engine, "cohort_alert")) == 1


@pytest.mark.parametrize("rules", [COHORT_RULES])
def test_approval_resumes_the_graph_and_assigns_the_shared_scenario(
    org: Org, pipeline: CoachingPipeline, db_engine: Engine, rules: CoachingRules
) -> None:
    reps, _ = _cohort_team(org)
    pipeline.run()
    [decision] = rows(db_engine, CohortDecision)
    manager = org.managers["north"]

    result = pipeline.decide_cohort(decision.id, approved=True, by=manager.id)

    assert result["status"] == "approved"
    [decided] = rows(db_engine, CohortDecision)
    assert decided.decided_by == manager.id
    assigned = rows(db_engine, Assignment)
    assert {a.rep_id for a in assigned} == {r.id for r in reps[:3]}
    assert {a.scenario_slug for a in assigned} == {"support-ack-easy"}
    notes = messages(db_engine, "assignment")
    assert {m.recipient_id for m in notes} == {a.rep_id for a in assigned if a.cohort_decision_id}
    assert {r.status for r in rows(db_engine, CoachingRun)} == {"done"}
    with pytest.raises(ApprovalError, match="already approved"):
        pipeline.decide_cohort(decision.id, approved=False)


@pytest.mark.parametrize("rules", [COHORT_RULES])
def test_declining_assigns_nothing_to_the_team(
    org: Org, pipeline: CoachingPipeline, db_engine: Engine, rules: CoachingRules
) -> None:
    _cohort_team(org)
    pipeline.run()
    [decision] = rows(db_engine, CohortDecision)
    before = {a.id for a in rows(db_engine, Assignment)}

    result = pipeline.decide_cohort(decision.id, approved=False)

    assert result["status"] == "declined"
    assert {a.id for a in rows(db_engine, Assignment)} == before
    assert messages(db_engine, "assignment") == []
    assert {r.status for r in rows(db_engine, CoachingRun)} == {"done"}


@pytest.mark.parametrize("rules", [COHORT_RULES])
def test_an_unanswered_cohort_response_goes_ahead_after_the_wait(
    org: Org, pipeline: CoachingPipeline, db_engine: Engine, rules: CoachingRules, clock: Clock
) -> None:
    reps, _ = _cohort_team(org)
    pipeline.run()

    assert pipeline.resume_expired_approvals(clock.now + timedelta(hours=23)) == []
    [decision] = rows(db_engine, CohortDecision)
    assert decision.status == "pending"

    assert pipeline.resume_expired_approvals(clock.now + timedelta(hours=24)) == [decision.id]

    [decided] = rows(db_engine, CohortDecision)
    assert decided.status == "auto_approved"
    assert decided.decided_at == clock.now + timedelta(hours=24)
    assert {a.rep_id for a in rows(db_engine, Assignment)} == {r.id for r in reps[:3]}
    assert pipeline.resume_expired_approvals(clock.now + timedelta(days=3)) == []


def test_unknown_cohort_decision_is_a_clear_error(pipeline: CoachingPipeline) -> None:
    with pytest.raises(ApprovalError, match="No cohort decision `42`"):
        pipeline.decide_cohort(42, approved=True)


# -- assignments, practice and the catalogue -------------------------------------------------


def test_practice_session_closes_its_assignment_and_stays_out_of_call_trends(
    org: Org, pipeline: CoachingPipeline, db_engine: Engine
) -> None:
    ada = org.rep(org.team("north"), "Ada")
    org.calls(ada, [1, 1, 1, 1, 1])
    pipeline.run()
    [assignment] = rows(db_engine, Assignment)
    practice = org.call(
        ada,
        T0 + timedelta(days=6),
        dict.fromkeys(CRITERIA, 3),
        kind=InteractionKind.practice,
        meta={"scenario": assignment.scenario_slug},
    )

    [result] = pipeline.run().results

    [done] = rows(db_engine, Assignment)
    assert (done.status, done.practice_interaction_id) == ("completed", practice)
    assert result.trigger_ids == []
    assert {
        d.kind for d in rows(db_engine, CriterionDaily, day=(T0 + timedelta(days=6)).date())
    } == {"practice"}
    assert [m.interaction_id for m in messages(db_engine, "rep_feedback")][-1] == practice


def test_a_gap_with_no_matching_scenario_records_why(
    org: Org, db_engine: Engine, tmp_path: Path, clock: Clock
) -> None:
    ada = org.rep(org.team("north"), "Ada")
    org.calls(ada, [1, 1, 1, 1, 1])

    with open_pipeline(db_engine, tmp_path, catalogue=StaticCatalogue(), clock=clock) as p:
        p.run()

    assert rows(db_engine, Assignment) == []
    [alert] = [m for m in messages(db_engine, "manager_alert") if m.payload["type"] == "individual"]
    assert alert.payload["assignment"] is None


# -- alerts, digests and the feedback deadline -----------------------------------------------


def test_digest_managers_get_one_message_a_day(
    org: Org, pipeline: CoachingPipeline, db_engine: Engine, clock: Clock
) -> None:
    team = org.team("north")
    set_alert_mode(db_engine, org.managers["north"].id, "digest", clock.now)
    for name in ("Ada", "Ben"):
        org.calls(org.rep(team, name), [1, 1, 1, 1, 1])
    pipeline.run()
    held = [m for m in messages(db_engine, "manager_alert") if m.status == "held"]
    assert {m.payload["type"] for m in held} == {"individual", "session_flag"}
    assert messages(db_engine, "manager_alert") == held

    assert build_digests(db_engine, clock.now + timedelta(hours=1), hour_utc=8) == []
    next_morning = clock.now + timedelta(days=1)
    [digest_id] = build_digests(db_engine, next_morning, hour_utc=8)
    assert build_digests(db_engine, next_morning + timedelta(hours=2), hour_utc=8) == []

    [digest] = messages(db_engine, "digest")
    assert digest.id == digest_id and digest.status == "queued"
    assert digest.payload["count"] == len(held)
    assert {m.status for m in messages(db_engine, "manager_alert")} == {"digested"}


def test_feedback_older_than_48_hours_is_a_breach(
    org: Org, db_engine: Engine, clock: Clock
) -> None:
    ada = org.rep(org.team("north"), "Ada")
    now = clock.now
    cases = {
        "undelivered-late": (now - timedelta(hours=50), None),
        "undelivered-recent": (now - timedelta(hours=10), None),
        "delivered-in-time": (now - timedelta(hours=60), timedelta(hours=2)),
        "delivered-late": (now - timedelta(hours=100), timedelta(hours=49)),
    }
    ids = {}
    with session_scope(db_engine) as session:
        for key, (started, _) in cases.items():
            ids[key], _ = enqueue(
                session,
                kind="rep_feedback",
                recipient_id=ada.id,
                payload={},
                dedupe_key=key,
                now=started + timedelta(minutes=1),
                interaction_started_at=started,
            )
    for key, (started, delay) in cases.items():
        if delay is not None:
            mark_sent(db_engine, ids[key], started + delay)

    breaches = feedback_breaches(db_engine, now, sla_hours=48)

    assert {b.message_id for b in breaches} == {ids["undelivered-late"], ids["delivered-late"]}
    late = next(b for b in breaches if b.message_id == ids["delivered-late"])
    assert late.hours == 49.0
