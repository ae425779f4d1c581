"""Observing rep turns with the sentence encoder: checks, anchors, lines that show checks."""

from __future__ import annotations

from config.rubric import RubricLibrary
from scenarios import ScenarioLibrary, TurnObserver
from scenarios.observe import turn_units


def test_rubric_exemplars_are_found_inside_longer_sentences(
    observer: TurnObserver, library: ScenarioLibrary, rubrics: RubricLibrary
) -> None:
    scenario = library.get("support-double-charge")

    observation = observer.observe(
        "Right, it'll be back on your card within 3 to 5 working days, okay?",
        scenario,
        rubrics.for_role("support"),
    )

    assert "gives_timeframe" in observation.signals


def test_good_and_poor_anchors(
    observer: TurnObserver, library: ScenarioLibrary, rubrics: RubricLibrary
) -> None:
    scenario = library.get("support-evening-dropouts")
    rubric = rubrics.for_role("support")

    good = observer.observe(
        "So it's been dropping every evening from seven till nine and you've had to ring us "
        "twice this week about it.",
        scenario,
        rubric,
    )
    poor = observer.observe("Have you tried switching the hub off and back on?", scenario, rubric)
    neither = observer.observe("Bear with me one second.", scenario, rubric)

    assert "acknowledge_concern.good" in good.good
    assert "acknowledge_concern.poor" not in good.signals
    assert "acknowledge_concern.poor" in poor.poor
    assert poor.reaction is not None and "turned it off and on" in poor.reaction
    assert neither.good == () and neither.poor == ()


def test_an_anchor_line_shows_the_checks_its_author_declared(
    observer: TurnObserver, library: ScenarioLibrary, rubrics: RubricLibrary
) -> None:
    scenario = library.get("feedback-defensive-advisor-rushed-close")

    observation = observer.observe(
        "Before I say anything, talk me through that engineer booking call on Tuesday as you "
        "remember it.",
        scenario,
        rubrics.for_role("team-lead"),
    )

    assert {"asks_view_first.good", "asks_before_advice", "asks_view"} <= observation.signals
    assert observation.hits["asks_before_advice"].matched.startswith("Before I say anything")


def test_probes_and_wrap_up_are_observed(
    observer: TurnObserver, library: ScenarioLibrary, rubrics: RubricLibrary
) -> None:
    scenario = library.get("support-double-charge")
    rubric = rubrics.for_role("support")

    assert observer.observe("Are you a bot?", scenario, rubric).probe == "ai_question"
    assert observer.observe("OK, let's wrap up.", scenario, rubric).wrap_up


def test_turn_units_cover_clauses_and_windows() -> None:
    coarse, fine = turn_units("Thanks. It'll be back on your card within 3 to 5 working days.")

    assert coarse[:2] == ["Thanks.", "It'll be back on your card within 3 to 5 working days."]
    assert "within 3 to 5 working days." in " ".join(fine)
