"""Message content: structured payloads that Slack, the web app and the command line each
render, plus a plain-text rendering for the terminal."""

from __future__ import annotations

from typing import Any

from coaching.rubrics import good_looks_like, moment_for
from coaching.scored import ScoredInteraction
from config.rubric import Rubric
from store.models import Assignment, CoachingTrigger, CohortDecision, Person, Team


def person_ref(person: Person | None) -> dict[str, Any] | None:
    if person is None:
        return None
    return {
        "id": person.id,
        "external_id": person.external_id,
        "name": person.name,
        "slack_user_id": person.slack_user_id,
    }


def assignment_ref(assignment: Assignment | None, title: str = "") -> dict[str, Any] | None:
    if assignment is None:
        return None
    return {
        "id": assignment.id,
        "scenario": assignment.scenario_slug,
        "title": title,
        "criterion_id": assignment.criterion_id,
        "difficulty": assignment.difficulty,
        "reason": assignment.reason,
    }


def format_time(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


def rep_feedback(
    scored: ScoredInteraction,
    rubric: Rubric | None,
    *,
    flag_below: float,
    assignment: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Feedback for one scored interaction: each criterion's level, the moment behind it and
    what good looks like (the level-3 anchor)."""
    criteria = []
    for score in scored.scores:
        criterion = None
        if rubric is not None:
            criterion = next((c for c in rubric.criteria if c.id == score.criterion_id), None)
        moment = moment_for(criterion, score.level, score.checks)
        if moment is not None:
            moment["time"] = format_time(moment.get("start_s"))
        criteria.append(
            {
                "id": score.criterion_id,
                "name": criterion.name if criterion else score.criterion_id,
                "level": score.level,
                "not_applicable": score.level is None,
                "gap": score.level is not None and score.level < flag_below,
                "moment": moment,
                "good_looks_like": good_looks_like(criterion),
            }
        )
    gaps = [str(c["name"]) for c in criteria if c["gap"]]
    headline = (
        f"{len(gaps)} to work on: {', '.join(gaps)}" if gaps else "Every criterion at the bar"
    )
    return {
        "type": "rep_feedback",
        "interaction": {
            "id": scored.interaction_id,
            "kind": scored.kind,
            "started_at": scored.started_at.isoformat(),
        },
        "rubric": {"version": scored.rubric_version, "name": rubric.name if rubric else None},
        "headline": headline,
        "criteria": criteria,
        "assignment": assignment,
    }


def manager_alert(
    trigger: CoachingTrigger,
    *,
    rep: Person | None,
    criterion_name: str | None,
    assignment: dict[str, Any] | None,
) -> dict[str, Any]:
    titles = {
        "individual": "Individual coaching",
        "decline": "Declining criterion",
        "session_flag": "Flagged interaction",
    }
    return {
        "type": trigger.kind,
        "title": titles.get(trigger.kind, trigger.kind),
        "trigger_id": trigger.id,
        "rep": person_ref(rep),
        "criterion": {"id": trigger.criterion_id, "name": criterion_name or trigger.criterion_id},
        "interaction_id": trigger.interaction_id,
        "observed_at": trigger.observed_at.isoformat(),
        "summary": trigger.why.get("summary", ""),
        "why": trigger.why,
        "assignment": assignment,
    }


def cohort_alert(
    decision: CohortDecision,
    trigger: CoachingTrigger,
    *,
    team: Team | None,
    criterion_name: str | None,
    reps: dict[int, Person],
) -> dict[str, Any]:
    why = trigger.why
    return {
        "type": "cohort",
        "title": "Team gap: one response for the team",
        "decision_id": decision.id,
        "trigger_id": trigger.id,
        "team": {
            "id": decision.team_id,
            "slug": team.slug if team else None,
            "name": team.name if team else None,
        },
        "criterion": {"id": decision.criterion_id, "name": criterion_name or decision.criterion_id},
        "summary": why.get("summary", ""),
        "share": why.get("share"),
        "below": why.get("below"),
        "eligible": why.get("eligible"),
        "reps": [
            {
                **(person_ref(reps.get(r["rep_id"])) or {"id": r["rep_id"]}),
                "mean": r["mean"],
                "n": r["n"],
            }
            for r in why.get("reps", [])
            if r.get("below")
        ],
        "moments": why.get("moments", []),
        "suggestion": decision.suggestion,
        "auto_approve_at": decision.expires_at.isoformat(),
        "actions": ["approve", "decline"],
    }


def render_text(kind: str, payload: dict[str, Any]) -> str:
    """A plain-text rendering of any outbox payload, for the terminal."""
    lines: list[str] = []
    if kind in ("rep_feedback",):
        lines.append(payload.get("headline", ""))
        for c in payload.get("criteria", []):
            level = "N/A" if c.get("not_applicable") else f"{c.get('level')}/3"
            lines.append(f"- {c.get('name')}: {level}")
            moment = c.get("moment")
            if moment and moment.get("quote") and c.get("gap"):
                at = moment.get("time") or f"turn {moment.get('turn')}"
                lines.append(f'    at {at}: "{moment["quote"]}"')
            good = c.get("good_looks_like")
            if good and c.get("gap"):
                lines.append(f"    what good looks like: {good['anchor']}")
        assignment = payload.get("assignment")
        if assignment:
            lines.append(f"Practice: {assignment['scenario']} ({assignment['reason']})")
    elif kind in ("manager_alert",):
        rep = payload.get("rep") or {}
        lines.append(f"{payload.get('title')}: {rep.get('name')} - {payload['criterion']['name']}")
        lines.append(f"  {payload.get('summary')}")
        for m in payload.get("why", {}).get("moments", [])[:2]:
            lines.append(f'  interaction {m.get("interaction_id")}: "{m.get("quote")}"')
        if payload.get("assignment"):
            lines.append(f"  practice assigned: {payload['assignment']['scenario']}")
    elif kind == "cohort_alert":
        team = payload.get("team") or {}
        lines.append(f"{payload.get('title')}: {team.get('name')} - {payload['criterion']['name']}")
        lines.append(f"  {payload.get('summary')}")
        suggestion = payload.get("suggestion") or {}
        if suggestion.get("scenario"):
            lines.append(f"  shared scenario: {suggestion['scenario']}")
        if suggestion.get("team_session"):
            lines.append(f"  team session: {suggestion['team_session'].get('title')}")
        lines.append(
            f"  approve or decline decision {payload.get('decision_id')}; "
            f"goes ahead on its own at {payload.get('auto_approve_at')}"
        )
    elif kind == "assignment":
        lines.append(f"Practice assigned: {payload.get('scenario')} ({payload.get('reason')})")
    elif kind == "digest":
        lines.append(f"Daily digest {payload.get('day')}: {payload.get('count')} alerts")
        for item in payload.get("items", []):
            rep = item.get("rep") or {}
            criterion = item.get("criterion") or {}
            lines.append(f"- {item.get('title')}: {rep.get('name')} - {criterion.get('name')}")
    elif kind == "dispute":
        lines.append(
            f"Dispute on interaction {payload.get('interaction_id')}, "
            f"{payload.get('criterion_id')} (level {payload.get('level')})"
        )
        lines.append(f"  reason: {payload.get('reason')}")
    else:
        lines.append(str(payload))
    return "\n".join(line for line in lines if line is not None)
