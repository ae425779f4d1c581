"""Reports on a small hand-made organisation, with every figure worked out by hand."""

from __future__ import annotations

import json
import statistics
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from coaching.notes import add_note
from coaching.outbox import mark_sent
from coaching.outcomes import import_outcomes
from coaching.reports import FLAT_WARNING, Period, parse_period, pearson, report, team_gaps
from config.coaching import CoachingRules, parse_coaching_rules
from store.db import session_scope
from store.models import Assignment, OutboxMessage
from tests.coaching.conftest import T0, Clock, Coach, Org

ACK = "acknowledge_concern"
RULES = parse_coaching_rules({"triggers": {"min_sessions": 2}})
START = T0.date() + timedelta(days=30)
"""The report period is the 30 days from START; the baseline the 30 days before."""


def _day(n: int, hour: int = 0) -> object:
    return T0 + timedelta(days=n, hours=hour)


def build(org: Org, coach: Coach, tmp_path: Path, clock: Clock) -> dict[str, int]:
    """North: Ada (pilot) improves, Ben holds, Cy slips a little; South: Dee stays flat."""
    north, south = org.team("north"), org.team("south")
    ada = org.rep(north, "Ada", pilot=True)
    ben = org.rep(north, "Ben")
    cy = org.rep(north, "Cy")
    dee = org.rep(south, "Dee")
    ids: dict[str, int] = {}
    plan = [
        (ada, [1, 1], [2, 2], 1),
        (ben, [2, 2], [2, 2], 3),
        (cy, [3, 3], [2, 3], 5),
        (dee, [2, 2], [2, 2], 7),
    ]
    for rep, before, after, offset in plan:
        org.calls(rep, before, start=_day(offset))
        window = org.calls(rep, after, start=_day(30 + offset))
        ids[f"{rep.name}-window"] = window[0]
    coach()
    csv = tmp_path / "outcomes.csv"
    csv.write_text(
        "rep,period_start,period_end,csat\n"
        f"ada,{T0.date()},{START - timedelta(days=1)},70\n"
        f"ben,{T0.date()},{START - timedelta(days=1)},80\n"
        f"cy,{T0.date()},{START - timedelta(days=1)},90\n"
        f"ada,{START},{START + timedelta(days=29)},80\n"
        f"ben,{START},{START + timedelta(days=29)},82\n"
        f"cy,{START},{START + timedelta(days=29)},85\n",
        encoding="utf-8",
    )
    result = import_outcomes(org.engine, csv, metrics=["csat"], now=clock.now)
    assert (result.new, result.rejected) == (6, [])
    with session_scope(org.engine) as session:
        session.add(
            Assignment(
                rep_id=ada.id,
                scenario_slug="support-ack-easy",
                criterion_id=ACK,
                reason="test",
                status="completed",
                dedupe_key="a",
                created_at=_day(30, 1),
                completed_at=_day(30, 3),
            )
        )
        session.add(
            Assignment(
                rep_id=ben.id,
                scenario_slug="support-ack-easy",
                criterion_id=ACK,
                reason="test",
                dedupe_key="b",
                created_at=_day(30, 1),
            )
        )
    for rep in (ada, ben, cy, dee):
        assert rep.id is not None
        ids[rep.name.lower()] = rep.id
    return ids


@pytest.mark.parametrize("rules", [RULES])
def test_team_gaps_per_criterion_and_rep(
    org: Org, coach: Coach, db_engine: Engine, tmp_path: Path, clock: Clock, rules: CoachingRules
) -> None:
    ids = build(org, coach, tmp_path, clock)
    baseline = Period(START - timedelta(days=30), START)

    gaps = team_gaps(db_engine, "north", baseline, rules=rules)

    ack = next(c for c in gaps.criteria if c.criterion_id == ACK)
    assert (ack.sessions, ack.mean, ack.distribution) == (6, 2.0, {1: 2, 2: 2, 3: 2})
    assert ack.share_sessions_below == pytest.approx(0.333)
    assert (ack.reps, ack.reps_eligible, ack.reps_below) == (3, 3, 1)
    assert ack.share_reps_below == pytest.approx(0.333)
    assert (ack.previous_mean, ack.trend, ack.cohort) == (None, None, False)
    verify = next(c for c in gaps.criteria if c.criterion_id == "verify_identity")
    assert (verify.mean, verify.reps_below) == (3.0, 0)
    assert [c.criterion_id for c in gaps.criteria][:2] == ["verify_identity", ACK]
    assert gaps.largest_gaps[0]["rep_id"] == ids["ada"]
    assert gaps.largest_gaps[0]["mean"] == 1.0
    ada = next(r for r in gaps.reps if r.rep_id == ids["ada"])
    assert ada.pilot is True and ada.weakest == ACK
    assert {r.rep_id for r in gaps.reps} == {ids["ada"], ids["ben"], ids["cy"]}

    current = team_gaps(db_engine, "north", Period(START, START + timedelta(days=30)), rules=rules)
    ack_now = next(c for c in current.criteria if c.criterion_id == ACK)
    assert ack_now.mean == pytest.approx(2.167)
    assert ack_now.previous_mean == 2.0
    assert ack_now.trend == pytest.approx(0.167)
    assert ack_now.reps_below == 0
    json.dumps(current.as_dict())


@pytest.mark.parametrize("rules", [RULES])
def test_report_at_thirty_days(
    org: Org, coach: Coach, db_engine: Engine, tmp_path: Path, clock: Clock, rules: CoachingRules
) -> None:
    ids = build(org, coach, tmp_path, clock)
    with Session(db_engine) as session:
        feedback = {
            m.interaction_id: m
            for m in session.exec(
                select(OutboxMessage).where(OutboxMessage.kind == "rep_feedback")
            ).all()
        }
    ada_call, ben_call = feedback[ids["Ada-window"]], feedback[ids["Ben-window"]]
    assert ada_call.interaction_started_at and ben_call.interaction_started_at
    mark_sent(db_engine, ada_call.id, ada_call.interaction_started_at + timedelta(hours=2))
    mark_sent(db_engine, ben_call.id, ben_call.interaction_started_at + timedelta(hours=50))
    manager = org.managers["north"].id
    add_note(
        db_engine,
        author_id=manager,
        rep_id=ids["ada"],
        text="At 1:15 you went straight to the account number. Next time restate the problem first.",
        now=_day(35),
    )
    add_note(
        db_engine, author_id=manager, rep_id=ids["ada"], text="Be more empathetic.", now=_day(36)
    )

    result = report(
        db_engine, "north", START, START + timedelta(days=30), rules=rules, now=clock.now
    )

    [cp] = result.checkpoints
    assert (cp.days, cp.window, cp.baseline) == (
        30,
        Period(START, START + timedelta(days=30)),
        Period(START - timedelta(days=30), START),
    )
    ack = next(row for row in cp.leading if row.criterion_id == ACK)
    assert ack.baseline_mean == 2.0
    assert ack.mean == pytest.approx(2.167)
    assert ack.delta == pytest.approx(0.167)
    assert FLAT_WARNING not in result.warnings

    p = cp.process
    assert (p.interactions, p.scored, p.feedback_queued, p.feedback_delivered) == (6, 6, 6, 2)
    assert p.feedback_coverage == 1.0
    assert p.median_hours_to_feedback == 26.0
    assert p.p90_hours_to_feedback == 45.2
    assert p.sla_breaches == 5  # one delivered late, four undelivered for more than 48 hours
    assert (p.notes, p.note_quality_mean, p.notes_complete_share) == (2, 1.5, 0.5)

    [csat] = cp.lagging
    assert (csat.metric, csat.baseline_mean, csat.mean, csat.reps) == ("csat", 80.0, 82.333, 3)
    corr = next(c for c in cp.correlations if c.criterion_id == ACK)
    xs, ys = [1.0, 0.0, -0.5], [10.0, 2.0, -5.0]
    assert corr.n == 3 and corr.enough is False
    assert corr.r == pytest.approx(statistics.correlation(xs, ys), abs=1e-3)

    [transfer] = cp.transfer
    assert transfer.criterion_id == ACK
    done, not_done = transfer.completed, transfer.not_completed
    assert (done.reps, done.sessions_after, done.mean_before, done.mean_after) == (1, 2, 1.0, 2.0)
    assert done.change == 1.0
    assert (not_done.reps, not_done.sessions_after, not_done.change) == (1, 2, 0.0)

    pilot = next(c for c in cp.pilot if c.criterion_id == ACK)
    assert (pilot.pilot_reps, pilot.pilot_mean, pilot.pilot_delta) == (1, 2.0, 1.0)
    assert (pilot.rest_reps, pilot.rest_mean, pilot.rest_delta) == (2, 2.25, -0.25)
    json.dumps(result.as_dict())


@pytest.mark.parametrize("rules", [RULES])
def test_flat_leading_indicators_at_thirty_days_warn(
    org: Org, coach: Coach, db_engine: Engine, tmp_path: Path, clock: Clock, rules: CoachingRules
) -> None:
    build(org, coach, tmp_path, clock)

    south = report(
        db_engine, "south", START, START + timedelta(days=30), rules=rules, now=clock.now
    )
    whole = report(db_engine, None, START, START + timedelta(days=60), rules=rules, now=clock.now)

    assert FLAT_WARNING in south.warnings
    assert [cp.days for cp in whole.checkpoints] == [30, 60]
    assert whole.checkpoints[0].process.interactions == 8
    assert any("No lagging outcomes" in w for w in whole.checkpoints[1].warnings) is False


def test_pearson_needs_three_pairs_and_spread() -> None:
    assert pearson([1, 2], [1, 2]) is None
    assert pearson([1, 1, 1], [1, 2, 3]) is None
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", Period(date(2026, 11, 2), date(2026, 12, 2))),
        ("2026-11", Period(date(2026, 11, 1), date(2026, 12, 1))),
        ("2026-12", Period(date(2026, 12, 1), date(2027, 1, 1))),
        ("2026-11-03..2026-11-09", Period(date(2026, 11, 3), date(2026, 11, 10))),
    ],
)
def test_parse_period(text: str, expected: Period) -> None:
    assert parse_period(text, date(2026, 12, 1)) == expected


def test_parse_period_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="Period `last week` is not understood"):
        parse_period("last week", date(2026, 12, 1))


def test_unknown_team_lists_the_teams(org: Org, db_engine: Engine) -> None:
    org.team("north")

    with pytest.raises(Exception, match="No team `nope`; teams: north"):
        team_gaps(db_engine, "nope", Period(START, START + timedelta(days=1)))
