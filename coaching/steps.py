"""The pipeline's steps as plain functions: `step(context, state) -> state update`.

The graph's nodes are thin wrappers around these, and a job queue can call them directly.
Every step is safe to run twice on the same state: the rollups are applied under a flag set in
the same transaction, and triggers, decisions, assignments and messages are each written
once per dedupe key.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_
from sqlmodel import Session, col, select

from coaching._sql import insert_ignore
from coaching.assignment import (
    assign_practice,
    choose_scenario,
    complete_from_practice,
    target_difficulty,
    weakest_criterion,
)
from coaching.context import CoachingContext
from coaching.feedback import (
    assignment_ref,
    cohort_alert,
    manager_alert,
    person_ref,
    rep_feedback,
)
from coaching.outbox import alert_mode, cancel_pending, enqueue
from coaching.rubrics import good_looks_like
from coaching.scored import (
    NotScoredError,
    ScoredInteraction,
    latest_evaluation_id,
    load_scored,
)
from coaching.trends import apply_scores, rep_window, window_days
from coaching.triggers import evaluate_triggers
from store.db import session_scope
from store.models import (
    Assignment,
    CoachingRun,
    CoachingTrigger,
    CohortDecision,
    OutboxMessage,
    Person,
    Team,
    TeamManager,
)

logger = logging.getLogger(__name__)

INDIVIDUAL_KINDS = ("individual", "decline")
ACTIVE_COHORT = ("pending", "approved", "auto_approved")


def thread_id_for(interaction_id: int) -> str:
    return f"interaction-{interaction_id}"


def _scored(state: dict[str, Any]) -> ScoredInteraction:
    return ScoredInteraction.from_state(state["scored"])


def _triggers(session: Session, ids: list[int]) -> list[CoachingTrigger]:
    if not ids:
        return []
    rows = session.exec(select(CoachingTrigger).where(col(CoachingTrigger.id).in_(ids))).all()
    order = {tid: i for i, tid in enumerate(ids)}
    return sorted(rows, key=lambda t: order.get(t.id or 0, 0))


def _criterion_name(ctx: CoachingContext, version: str, criterion_id: str | None) -> str | None:
    rubric = ctx.rubric(version)
    if rubric is None or criterion_id is None:
        return criterion_id
    return next((c.name for c in rubric.criteria if c.id == criterion_id), criterion_id)


def managers_for_rep(session: Session, rep: Person | None) -> list[int]:
    """The rep's own manager, or else the managers of the rep's team."""
    if rep is None:
        return []
    if rep.manager_id is not None:
        return [rep.manager_id]
    if rep.team_id is None:
        return []
    return managers_for_team(session, rep.team_id)


def managers_for_team(session: Session, team_id: int) -> list[int]:
    """The team's managers, or else the managers its reps report to."""
    ids = session.exec(
        select(TeamManager.person_id)
        .where(TeamManager.team_id == team_id)
        .order_by(col(TeamManager.person_id))
    ).all()
    if ids:
        return list(ids)
    rows = session.exec(
        select(Person.manager_id)
        .where(Person.team_id == team_id, col(Person.manager_id).is_not(None))
        .distinct()
    ).all()
    return sorted(int(r) for r in rows if r is not None)


# -- run bookkeeping ------------------------------------------------------------------------


def start_run(ctx: CoachingContext, interaction_id: int) -> CoachingRun:
    """Record that coaching of an interaction starts (or starts again after a failure)."""
    now = ctx.now()
    with session_scope(ctx.engine) as session:
        run = session.get(CoachingRun, interaction_id)
        if run is None:
            evaluation_id = latest_evaluation_id(session, interaction_id)
            if evaluation_id is None:
                raise NotScoredError(
                    f"Interaction `{interaction_id}` has no scored evaluation; run the scorer first"
                )
            run = CoachingRun(
                interaction_id=interaction_id,
                evaluation_id=evaluation_id,
                thread_id=thread_id_for(interaction_id),
                status="running",
                attempts=1,
                started_at=now,
            )
        elif run.status in ("running", "failed"):
            run.status = "running"
            run.attempts += 1
            run.error = None
        session.add(run)
        return run


def finish_run(ctx: CoachingContext, interaction_id: int, status: str, **fields: Any) -> None:
    with session_scope(ctx.engine) as session:
        run = session.get(CoachingRun, interaction_id)
        if run is None:
            return
        run.status = status
        for key, value in fields.items():
            setattr(run, key, value)
        if status in ("done", "failed"):
            run.finished_at = ctx.now()
        session.add(run)


def process_interaction(ctx: CoachingContext, interaction_id: int) -> dict[str, Any]:
    """Run every step for one interaction without the graph, as a job queue worker would.

    A cohort response it opens stays pending; `apply_cohort_decision` answers it later.
    Safe to call again after a failure: each step skips what an earlier attempt did.
    """
    run = start_run(ctx, interaction_id)
    state: dict[str, Any] = {"interaction_id": interaction_id, "evaluation_id": run.evaluation_id}
    if run.status in ("done", "awaiting_approval"):
        return state
    try:
        for step in PIPELINE:
            state.update(step(ctx, state))
    except Exception as exc:
        finish_run(ctx, interaction_id, "failed", error=f"{type(exc).__name__}: {exc}"[:500])
        raise
    finish_run(ctx, interaction_id, "done", decision=state.get("decision"))
    return state


# -- 1. scored ------------------------------------------------------------------------------


def load_step(ctx: CoachingContext, state: dict[str, Any]) -> dict[str, Any]:
    """Read the interaction and the scores the run coaches on."""
    with Session(ctx.engine) as session:
        scored = load_scored(session, state["interaction_id"], state.get("evaluation_id"))
    return {"scored": scored.to_state(), "evaluation_id": scored.evaluation_id}


# -- 2. update trends -----------------------------------------------------------------------


def update_trends_step(ctx: CoachingContext, state: dict[str, Any]) -> dict[str, Any]:
    """Add the scores to the rep's daily rollups and recent levels (exactly once)."""
    with session_scope(ctx.engine) as session:
        applied = apply_scores(session, _scored(state))
    return {"trends_applied": True, "trends_added_now": applied}


# -- 3. evaluate triggers -------------------------------------------------------------------


def evaluate_triggers_step(ctx: CoachingContext, state: dict[str, Any]) -> dict[str, Any]:
    scored = _scored(state)
    rules = ctx.rules.for_role(scored.role)
    with session_scope(ctx.engine) as session:
        ids = evaluate_triggers(
            session, scored, rules, ctx.rubric(scored.rubric_version), ctx.now()
        )
    return {"trigger_ids": ids}


# -- 4. decide ------------------------------------------------------------------------------


def _active_cohort(
    session: Session, team_id: int, criterion_id: str, at: datetime, days: int
) -> CohortDecision | None:
    stmt = (
        select(CohortDecision)
        .join(CoachingTrigger, col(CoachingTrigger.id) == col(CohortDecision.trigger_id))
        .where(
            CohortDecision.team_id == team_id,
            CohortDecision.criterion_id == criterion_id,
            col(CohortDecision.status).in_(ACTIVE_COHORT),
            col(CoachingTrigger.observed_at) > at - timedelta(days=max(days, 1)),
            col(CoachingTrigger.observed_at) <= at + timedelta(days=max(days, 1)),
        )
        .order_by(col(CohortDecision.id).desc())
        .limit(1)
    )
    return session.exec(stmt).first()


def _open_cohort_decision(
    ctx: CoachingContext, session: Session, trigger: CoachingTrigger, interaction_id: int
) -> int:
    assert trigger.id is not None and trigger.team_id is not None
    now = ctx.now()
    below = [r["rep_id"] for r in trigger.why.get("reps", []) if r.get("below")]
    insert_ignore(
        session,
        CohortDecision,
        [
            {
                "trigger_id": trigger.id,
                "team_id": trigger.team_id,
                "criterion_id": trigger.criterion_id,
                "scenario_slug": None,
                "rep_ids": below,
                "suggestion": {},
                "status": "pending",
                "thread_id": thread_id_for(interaction_id),
                "requested_at": now,
                "expires_at": now + timedelta(hours=ctx.rules.cohort.auto_approve_hours),
                "decided_at": None,
                "decided_by": None,
            }
        ],
        keys=["trigger_id"],
    )
    decision_id = session.exec(
        select(CohortDecision.id).where(CohortDecision.trigger_id == trigger.id)
    ).one()
    trigger.cohort_decision_id = decision_id
    session.add(trigger)
    # Reps of the team already flagged on this criterion in the window are covered too.
    if trigger.window_start is not None and trigger.criterion_id is not None:
        covered = session.exec(
            select(CoachingTrigger).where(
                CoachingTrigger.team_id == trigger.team_id,
                CoachingTrigger.criterion_id == trigger.criterion_id,
                col(CoachingTrigger.kind).in_(INDIVIDUAL_KINDS),
                CoachingTrigger.status == "open",
                col(CoachingTrigger.observed_at) >= trigger.window_start,
                col(CoachingTrigger.observed_at) <= trigger.observed_at,
            )
        ).all()
        for other in covered:
            other.status = "merged"
            other.cohort_decision_id = decision_id
            session.add(other)
    assert decision_id is not None
    return decision_id


def decide_step(ctx: CoachingContext, state: dict[str, Any]) -> dict[str, Any]:
    """Feedback only, individual coaching or a cohort response (which covers the team's
    individual triggers on the same criterion)."""
    if not state.get("trigger_ids"):
        return {"decision": "feedback_only", "cohort_decision_ids": []}
    scored = _scored(state)
    rules = ctx.rules.for_role(scored.role)
    decisions: list[int] = []
    with session_scope(ctx.engine) as session:
        triggers = _triggers(session, state.get("trigger_ids", []))
        for trigger in triggers:
            if trigger.kind == "cohort":
                decisions.append(
                    _open_cohort_decision(ctx, session, trigger, scored.interaction_id)
                )
        individual_open = False
        for trigger in triggers:
            if trigger.kind not in INDIVIDUAL_KINDS or trigger.criterion_id is None:
                continue
            if trigger.status == "open" and trigger.team_id is not None:
                cohort = _active_cohort(
                    session,
                    trigger.team_id,
                    trigger.criterion_id,
                    trigger.observed_at,
                    rules.cohort_cooldown_days,
                )
                if cohort is not None:
                    trigger.status = "merged"
                    trigger.cohort_decision_id = cohort.id
                    session.add(trigger)
            individual_open = individual_open or trigger.status == "open"
    if decisions:
        decision = "cohort_response"
    elif individual_open:
        decision = "individual_coaching"
    else:
        decision = "feedback_only"
    logger.debug(
        "coaching decided",
        extra={"interaction_id": scored.interaction_id, "decision": decision},
    )
    return {"decision": decision, "cohort_decision_ids": decisions}


# -- 5. assign scenario ---------------------------------------------------------------------


def assign_step(ctx: CoachingContext, state: dict[str, Any]) -> dict[str, Any]:
    """Practice for the rep's weakest criterion when individual coaching is due; the shared
    scenario and the suggested team session for a cohort response; a finished practice
    session closes its assignment."""
    scored = _scored(state)
    if scored.is_call and not state.get("trigger_ids"):
        return {"assignment_ids": [], "assignment_notes": [], "completed_assignment_id": None}
    rules = ctx.rules.for_role(scored.role)
    now = ctx.now()
    assignment_ids: list[int] = []
    notes: list[str] = []
    completed: int | None = None
    with session_scope(ctx.engine) as session:
        if not scored.is_call:
            completed = complete_from_practice(
                session,
                rep_id=scored.rep_id,
                practice_interaction_id=scored.interaction_id,
                meta=scored.meta,
                now=now,
            )
            return {
                "assignment_ids": [],
                "assignment_notes": [],
                "completed_assignment_id": completed,
            }
        triggers = _triggers(session, state.get("trigger_ids", []))
        open_individual = [t for t in triggers if t.kind in INDIVIDUAL_KINDS and t.status == "open"]
        if open_individual:
            first = open_individual[0]
            start, end = window_days(scored.started_at, rules.window_days)
            window = rep_window(session, scored.rep_id, start, end)
            rubric = ctx.rubric(scored.rubric_version)
            triggered = [t.criterion_id for t in open_individual if t.criterion_id]
            role_criteria = (
                [c.id for c in rubric.criteria_for(scored.role)] if rubric is not None else []
            )
            order = triggered + [c for c in role_criteria if c not in triggered]
            weakest = weakest_criterion(window, order, min_sessions=rules.min_sessions)
            criterion_id, counts = weakest if weakest else (triggered[0], window.get(triggered[0]))
            why = f"{first.kind} trigger on `{first.criterion_id}`; weakest criterion `{criterion_id}`"
            result = assign_practice(
                session,
                ctx.catalogue,
                rep_id=scored.rep_id,
                role=scored.role,
                criterion_id=criterion_id,
                counts=counts,
                dedupe_key=f"trigger:{first.id}",
                why=why,
                now=now,
                trigger_id=first.id,
            )
            if result.assignment_id is not None:
                assignment_ids.append(result.assignment_id)
            notes.append(result.reason)
        for decision_id in state.get("cohort_decision_ids", []):
            _suggest_for_cohort(ctx, session, decision_id, scored)
    return {
        "assignment_ids": assignment_ids,
        "assignment_notes": notes,
        "completed_assignment_id": completed,
    }


def _suggest_for_cohort(
    ctx: CoachingContext, session: Session, decision_id: int, scored: ScoredInteraction
) -> None:
    decision = session.get(CohortDecision, decision_id)
    if decision is None or decision.suggestion:
        return
    trigger = session.get(CoachingTrigger, decision.trigger_id)
    why = trigger.why if trigger is not None else {}
    below = [r for r in why.get("reps", []) if r.get("below")]
    mean = sum(r["mean"] for r in below) / len(below) if below else None
    difficulty = target_difficulty(mean)
    scenario = choose_scenario(
        ctx.catalogue.scenarios(),
        role=scored.role,
        criterion_id=decision.criterion_id,
        difficulty=difficulty,
    )
    rubric = ctx.rubric(scored.rubric_version)
    criterion = (
        next((c for c in rubric.criteria if c.id == decision.criterion_id), None)
        if rubric is not None
        else None
    )
    name = criterion.name if criterion else decision.criterion_id
    decision.scenario_slug = scenario.slug if scenario else None
    decision.suggestion = {
        "scenario": scenario.slug if scenario else None,
        "scenario_title": scenario.title if scenario else None,
        "difficulty": scenario.difficulty if scenario else difficulty,
        "note": None if scenario else f"no scenario targets `{decision.criterion_id}` yet",
        "team_session": {
            "title": f"Team session: {name}",
            "minutes": ctx.rules.cohort.team_session_minutes,
            "agenda": [
                "Play back two of the moments below and ask what the customer heard",
                "Agree what good looks like, in the team's own words",
                "Practise the shared scenario in pairs, then swap",
            ],
            "good_looks_like": good_looks_like(criterion),
            "moments": why.get("moments", []),
        },
    }
    session.add(decision)


# -- 6. queue notifications -----------------------------------------------------------------


def notify_step(ctx: CoachingContext, state: dict[str, Any]) -> dict[str, Any]:
    """Queue the rep's feedback, the managers' alerts (immediate or held for the digest) and
    the cohort alert; alerts a cohort response covers are cancelled if not yet sent."""
    scored = _scored(state)
    rules = ctx.rules.for_role(scored.role)
    now = ctx.now()
    message_ids: list[int] = []
    rubric = ctx.rubric(scored.rubric_version)
    with session_scope(ctx.engine) as session:
        rep = session.get(Person, scored.rep_id)
        assignment = None
        for assignment_id in state.get("assignment_ids", []):
            assignment = session.get(Assignment, assignment_id)
            break
        assignment_payload = assignment_ref(assignment, _title(ctx, assignment))
        payload = rep_feedback(
            scored, rubric, flag_below=rules.session_flag_below, assignment=assignment_payload
        )
        message_id, _ = enqueue(
            session,
            kind="rep_feedback",
            recipient_id=scored.rep_id,
            payload=payload,
            dedupe_key=f"rep_feedback:{scored.interaction_id}",
            now=now,
            interaction_id=scored.interaction_id,
            interaction_started_at=scored.started_at,
        )
        message_ids.append(message_id)

        managers = managers_for_rep(session, rep)
        if not managers and state.get("trigger_ids"):
            logger.warning("no manager to alert", extra={"rep_id": scored.rep_id})
        for trigger in _triggers(session, state.get("trigger_ids", [])):
            if trigger.kind == "cohort":
                continue
            if trigger.status != "open":
                continue
            if trigger.kind == "session_flag" and ctx.rules.alerts.session_flags == "off":
                continue
            alert = manager_alert(
                trigger,
                rep=rep,
                criterion_name=_criterion_name(ctx, scored.rubric_version, trigger.criterion_id),
                assignment=assignment_payload if trigger.kind in INDIVIDUAL_KINDS else None,
            )
            for manager_id in managers:
                mode: str
                if trigger.kind == "session_flag":
                    mode = ctx.rules.alerts.session_flags
                else:
                    mode = alert_mode(session, manager_id, ctx.rules.alerts.default_mode)
                message_id, _ = enqueue(
                    session,
                    kind="manager_alert",
                    recipient_id=manager_id,
                    payload=alert,
                    dedupe_key=f"manager_alert:{trigger.id}:{manager_id}",
                    now=now,
                    status="held" if mode == "digest" else "queued",
                    interaction_id=scored.interaction_id,
                    interaction_started_at=scored.started_at,
                )
                message_ids.append(message_id)

        for decision_id in state.get("cohort_decision_ids", []):
            message_ids.extend(_queue_cohort_alert(ctx, session, decision_id, scored, now))
    return {"message_ids": message_ids}


def _title(ctx: CoachingContext, assignment: Assignment | None) -> str:
    if assignment is None:
        return ""
    for scenario in ctx.catalogue.scenarios():
        if scenario.slug == assignment.scenario_slug:
            return scenario.title
    return ""


def _queue_cohort_alert(
    ctx: CoachingContext,
    session: Session,
    decision_id: int,
    scored: ScoredInteraction,
    now: datetime,
) -> list[int]:
    decision = session.get(CohortDecision, decision_id)
    if decision is None:
        return []
    trigger = session.get(CoachingTrigger, decision.trigger_id)
    assert trigger is not None
    rep_ids = [r["rep_id"] for r in trigger.why.get("reps", [])]
    reps = {
        p.id: p
        for p in session.exec(select(Person).where(col(Person.id).in_(rep_ids))).all()
        if p.id is not None
    }
    payload = cohort_alert(
        decision,
        trigger,
        team=session.get(Team, decision.team_id),
        criterion_name=_criterion_name(ctx, scored.rubric_version, decision.criterion_id),
        reps=reps,
    )
    ids = []
    for manager_id in managers_for_team(session, decision.team_id):
        message_id, _ = enqueue(
            session,
            kind="cohort_alert",
            recipient_id=manager_id,
            payload=payload,
            dedupe_key=f"cohort_alert:{decision_id}:{manager_id}",
            now=now,
        )
        ids.append(message_id)
    covered = session.exec(
        select(CoachingTrigger.id).where(
            CoachingTrigger.cohort_decision_id == decision_id,
            col(CoachingTrigger.kind).in_(INDIVIDUAL_KINDS),
        )
    ).all()
    if covered:
        keys = session.exec(
            select(OutboxMessage.dedupe_key).where(
                or_(
                    *[
                        col(OutboxMessage.dedupe_key).startswith(f"manager_alert:{tid}:")
                        for tid in covered
                    ]
                )
            )
        ).all()
        cancelled = cancel_pending(session, list(keys), f"covered by cohort decision {decision_id}")
        if cancelled:
            logger.info(
                "alerts covered by cohort response",
                extra={"decision_id": decision_id, "cancelled": cancelled},
            )
    return ids


# -- 7. after the manager's answer ----------------------------------------------------------


def apply_cohort_decision(
    ctx: CoachingContext, decision_id: int, answer: dict[str, Any]
) -> dict[str, Any]:
    """Record the manager's answer; on approval assign the shared scenario to every rep the
    cohort covers and tell each of them. Safe to repeat."""
    approved = bool(answer.get("approved"))
    auto = bool(answer.get("auto"))
    at = datetime.fromisoformat(answer["at"]) if answer.get("at") else ctx.now()
    by = answer.get("by")
    assignment_ids: list[int] = []
    message_ids: list[int] = []
    with session_scope(ctx.engine) as session:
        decision = session.get(CohortDecision, decision_id)
        if decision is None:
            raise LookupError(f"No cohort decision `{decision_id}`")
        if decision.status == "pending":
            decision.status = ("auto_approved" if auto else "approved") if approved else "declined"
            decision.decided_at = at
            decision.decided_by = by
            session.add(decision)
            logger.info(
                "cohort decision taken",
                extra={"decision_id": decision_id, "status": decision.status},
            )
        if decision.status not in ("approved", "auto_approved"):
            return {"decision_id": decision_id, "status": decision.status, "assignment_ids": []}
        scenario = next(
            (s for s in ctx.catalogue.scenarios() if s.slug == decision.scenario_slug), None
        )
        trigger = session.get(CoachingTrigger, decision.trigger_id)
        counts_by_rep = {r["rep_id"]: r for r in (trigger.why.get("reps", []) if trigger else [])}
        for rep_id in decision.rep_ids:
            rep = session.get(Person, rep_id)
            if rep is None:
                continue
            result = assign_practice(
                session,
                ctx.catalogue,
                rep_id=rep_id,
                role=rep.role,
                criterion_id=decision.criterion_id,
                counts=None,
                dedupe_key=f"cohort:{decision_id}:{rep_id}",
                why=(
                    f"team gap on `{decision.criterion_id}`: your mean "
                    f"{counts_by_rep.get(rep_id, {}).get('mean', 0):.2f}"
                ),
                now=at,
                cohort_decision_id=decision_id,
                scenario=scenario,
            )
            if result.assignment_id is None:
                continue
            assignment_ids.append(result.assignment_id)
            assignment = session.get(Assignment, result.assignment_id)
            if assignment is None or assignment.cohort_decision_id != decision_id:
                continue
            payload = {
                "type": "assignment",
                **(assignment_ref(assignment, scenario.title if scenario else "") or {}),
                "rep": person_ref(rep),
                "cohort_decision_id": decision_id,
            }
            message_id, _ = enqueue(
                session,
                kind="assignment",
                recipient_id=rep_id,
                payload=payload,
                dedupe_key=f"assignment:{result.assignment_id}",
                now=at,
            )
            message_ids.append(message_id)
        status = decision.status
    return {
        "decision_id": decision_id,
        "status": status,
        "assignment_ids": assignment_ids,
        "message_ids": message_ids,
    }


PIPELINE = (
    load_step,
    update_trends_step,
    evaluate_triggers_step,
    decide_step,
    assign_step,
    notify_step,
)
"""The steps in order, as the graph runs them before any approval."""
