from pathlib import Path

import pytest

from config.coaching import (
    CoachingConfigError,
    CoachingRules,
    load_coaching_rules,
    parse_coaching_rules,
)


def test_shipped_rules_follow_the_method() -> None:
    rules = load_coaching_rules()

    assert rules.triggers.individual_below == 1.8
    assert rules.triggers.decline_sessions == 3
    assert rules.triggers.cohort_share == 0.4
    assert rules.feedback.sla_hours == 48
    assert rules.alerts.default_mode == "immediate"


def test_role_override_changes_only_its_keys() -> None:
    rules = parse_coaching_rules(
        {"triggers": {"window_days": 21}, "roles": {"sales": {"min_sessions": 3}}}
    )

    sales, support = rules.for_role("sales"), rules.for_role("support")

    assert (sales.min_sessions, sales.window_days) == (3, 21)
    assert (support.min_sessions, support.window_days) == (5, 21)
    assert rules.for_role(None) == support


def test_unknown_role_key_names_the_role_and_the_key() -> None:
    with pytest.raises(CoachingConfigError, match=r"roles\.sales.*min_session"):
        parse_coaching_rules({"roles": {"sales": {"min_session": 3}}})


def test_invalid_value_names_its_path(tmp_path: Path) -> None:
    path = tmp_path / "coaching.yaml"
    path.write_text("triggers:\n  cohort_share: 1.5\n", encoding="utf-8")

    with pytest.raises(CoachingConfigError, match=r"(?s)coaching\.yaml.*triggers\.cohort_share"):
        load_coaching_rules(path)


def test_invalid_role_override_value_is_reported() -> None:
    with pytest.raises(CoachingConfigError, match=r"roles\.sales\.individual_below"):
        parse_coaching_rules({"roles": {"sales": {"individual_below": 7}}})


def test_rules_are_frozen() -> None:
    rules = CoachingRules()

    with pytest.raises(ValueError, match="frozen"):
        rules.triggers.window_days = 3  # type: ignore[misc]
