from pathlib import Path

import pytest

from coaching.assignment import choose_scenario, target_difficulty, weakest_criterion
from coaching.catalogue import ScenarioSummary, load_catalogue
from coaching.errors import CatalogueError
from coaching.trends import Counts
from tests.coaching.conftest import FIXTURES

ACK = "acknowledge_concern"


@pytest.fixture
def scenarios() -> list[ScenarioSummary]:
    return list(load_catalogue(FIXTURES / "scenarios").scenarios())


def test_catalogue_reads_summaries_and_skips_other_files(scenarios: list[ScenarioSummary]) -> None:
    by_slug = {s.slug: s for s in scenarios}

    assert "company" not in by_slug
    assert by_slug["support-ack-hard"].criteria == (ACK, "confirm_resolution")
    assert by_slug["support-ack-hard"].difficulty == "hard"
    assert by_slug["sales-objection-medium"].role == "sales"


def test_a_scenario_file_without_criteria_is_named(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("slug: broken\nrole: support\n", encoding="utf-8")

    with pytest.raises(CatalogueError, match="broken.yaml: no criteria"):
        load_catalogue(tmp_path)


@pytest.mark.parametrize(
    ("mean", "completed", "expected"),
    [(1.0, 0, "easy"), (1.6, 0, "medium"), (2.5, 0, "hard"), (1.0, 1, "medium"), (1.0, 5, "hard")],
)
def test_difficulty_rises_with_the_mean_and_completed_practice(
    mean: float, completed: int, expected: str
) -> None:
    assert target_difficulty(mean, completed) == expected


def test_choice_matches_role_criterion_and_difficulty(scenarios: list[ScenarioSummary]) -> None:
    pick = choose_scenario(scenarios, role="support", criterion_id=ACK, difficulty="medium")

    assert pick is not None and pick.slug == "support-ack-medium"
    assert choose_scenario(scenarios, role="sales", criterion_id=ACK, difficulty="easy") is None


def test_choice_avoids_repeats_then_repeats_the_oldest(scenarios: list[ScenarioSummary]) -> None:
    first = choose_scenario(
        scenarios, role="support", criterion_id=ACK, difficulty="medium", had=["support-ack-medium"]
    )
    all_had = ["support-ack-hard", "support-ack-easy", "support-ack-medium"]
    repeat = choose_scenario(
        scenarios, role="support", criterion_id=ACK, difficulty="medium", had=all_had
    )

    assert first is not None and first.slug == "support-ack-easy"
    assert repeat is not None and repeat.slug == "support-ack-hard"


def test_weakest_criterion_needs_enough_sessions() -> None:
    window = {"a": Counts(n1=1), "b": Counts(n1=1, n2=2), "c": Counts(n3=4)}

    assert weakest_criterion(window, ["a", "b", "c"], min_sessions=2) == ("b", Counts(n1=1, n2=2))
    assert weakest_criterion(window, ["a", "b", "c"], min_sessions=1) == ("a", Counts(n1=1))
    assert weakest_criterion(window, ["x"]) is None
