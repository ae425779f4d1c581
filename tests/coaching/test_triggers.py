"""Each trigger rule, on both databases: thresholds at the boundary, minimum sessions,
windows, per-role overrides, decline, session flags and cool-downs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine

from coaching.triggers import is_decline
from config.coaching import CoachingRules, parse_coaching_rules
from store.models import CoachingTrigger, CriterionDaily, OutboxMessage
from tests.coaching.conftest import CRITERIA, T0, Coach, Org, rows

ACK = "acknowledge_concern"


def kinds(engine: Engine, kind: str) -> list[CoachingTrigger]:
    return [t for t in rows(engine, CoachingTrigger) if t.kind == kind]


def test_mean_exactly_at_threshold_does_not_trigger(
    org: Org, coach: Coach, db_engine: Engine
) -> None:
    ada = org.rep(org.team("north"), "Ada")
    org.calls(ada, [2, 2, 2, 1, 2])  # mean 1.8

    coach()

    assert kinds(db_engine, "individual") == []


def test_mean_below_threshold_triggers_with_the_sessions_and_moments(
    org: Org, coach: Coach, db_engine: Engine
) -> None:
    ada = org.rep(org.team("north"), "Ada")
    ids = org.calls(ada, [2, 2, 1, 1, 2])  # mean 1.6

    coach()

    [trigger] = kinds(db_engine, "individual")
    assert trigger.rep_id == ada.id and trigger.criterion_id == ACK
    assert trigger.interaction_id == ids[-1]
    assert trigger.value == pytest.approx(1.6)
    assert trigger.why["n"] == 5
    assert trigger.why["distribution"] == {"1": 2, "2": 3, "3": 0}
    assert sorted(s["interaction_id"] for s in trigger.why["sessions"]) == sorted(ids)
    moments = trigger.why["moments"]
    assert moments[0]["level"] == 1
    assert moments[0]["quote"] == f"{ACK} said at level 1"
    assert moments[0]["turn"] == 3


def test_no_trigger_before_the_minimum_sessions(org: Org, coach: Coach, db_engine: Engine) -> None:
    ada = org.rep(org.team("north"), "Ada")
    first = org.calls(ada, [1, 1, 1, 1])

    coach()
    assert kinds(db_engine, "individual") == []

    fifth = org.call(ada, T0 + timedelta(days=4), {**dict.fromkeys(CRITERIA, 3), ACK: 1})
    coach()

    [trigger] = kinds(db_engine, "individual")
    assert trigger.interaction_id == fifth and fifth not in first


def test_sessions_outside_the_window_do_not_count(
    org: Org, coach: Coach, db_engine: Engine
) -> None:
    ada = org.rep(org.team("north"), "Ada")
    org.calls(ada, [1, 1, 1], start=T0)
    org.calls(ada, [1, 1], start=T0 + timedelta(days=40))

    coach()

    assert kinds(db_engine, "individual") == []


@pytest.mark.parametrize(
    "rules",
    [parse_coaching_rules({"roles": {"support": {"min_sessions": 3}}})],
)
def test_role_override_applies_to_that_role_only(
    org: Org, coach: Coach, db_engine: Engine, rules: CoachingRules
) -> None:
    team = org.team("north")
    ada = org.rep(team, "Ada", role="support")
    ben = org.rep(team, "Ben", role="senior")
    org.calls(ada, [1, 1, 1])
    org.calls(ben, [1, 1, 1])

    coach()

    assert [t.rep_id for t in kinds(db_engine, "individual")] == [ada.id]


@pytest.mark.parametrize("rules", [parse_coaching_rules({"triggers": {"min_sessions": 3}})])
@pytest.mark.parametrize(
    ("levels", "fires"),
    [([3, 2, 1], True), ([3, 3, 2], False)],
)
def test_decline_across_three_sessions(
    org: Org,
    coach: Coach,
    db_engine: Engine,
    rules: CoachingRules,
    levels: list[int],
    fires: bool,
) -> None:
    ada = org.rep(org.team("north"), "Ada")
    ids = org.calls(ada, levels, criterion="confirm_resolution")

    coach()

    found = kinds(db_engine, "decline")
    assert bool(found) is fires
    if fires:
        assert found[0].interaction_id == ids[-1]
        assert [s["level"] for s in found[0].why["sessions"]] == levels


@pytest.mark.parametrize(
    ("levels", "strict", "expected"),
    [
        ([3, 2, 1], True, True),
        ([3, 3, 2], True, False),
        ([3, 3, 2], False, True),
        ([3, 2, 2], False, True),
        ([2, 2, 2], False, False),
        ([1, 2, 3], False, False),
        ([3, 1, 2], False, False),
        ([2, 2], False, False),
    ],
)
def test_decline_rule(levels: list[int], strict: bool, expected: bool) -> None:
    assert is_decline(levels, strict=strict) is expected


def test_session_flag_goes_to_the_managers_digest(
    org: Org, coach: Coach, db_engine: Engine
) -> None:
    team = org.team("north")
    ada = org.rep(team, "Ada")
    call = org.call(ada, T0, {**dict.fromkeys(CRITERIA, 3), "verify_identity": 1})
    org.call(ada, T0 + timedelta(hours=1), dict.fromkeys(CRITERIA, 2))

    coach()

    [flag] = kinds(db_engine, "session_flag")
    assert flag.interaction_id == call
    assert [c["criterion_id"] for c in flag.why["criteria"]] == ["verify_identity"]
    alerts = [m for m in rows(db_engine, OutboxMessage) if m.kind == "manager_alert"]
    assert [(a.recipient_id, a.status) for a in alerts] == [(org.managers["north"].id, "held")]


@pytest.mark.parametrize(
    "rules",
    [parse_coaching_rules({"triggers": {"min_sessions": 2, "individual_cooldown_days": 3}})],
)
def test_a_fired_rule_stays_quiet_for_its_cool_down(
    org: Org, coach: Coach, db_engine: Engine, rules: CoachingRules
) -> None:
    ada = org.rep(org.team("north"), "Ada")
    org.calls(ada, [1] * 6)  # one a day: fires on day 2, quiet to day 4, fires on day 5

    coach()

    fired = sorted(t.observed_at for t in kinds(db_engine, "individual"))
    assert fired == [T0 + timedelta(days=1), T0 + timedelta(days=4)]


def test_not_applicable_levels_are_counted_apart(org: Org, coach: Coach, db_engine: Engine) -> None:
    ada = org.rep(org.team("north"), "Ada")
    org.calls(ada, [None, None, 1, 1, None])

    coach()

    daily = [d for d in rows(db_engine, CriterionDaily) if d.criterion_id == ACK]
    assert sum(d.n_na for d in daily) == 3
    assert sum(d.n1 for d in daily) == 2
    assert kinds(db_engine, "individual") == []
