"""Scenario lint: criteria in the rubric, observable anchors, reachable signals, coverage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from app import app
from config.rubric import RubricLibrary
from config.rubric_lint import Finding, Severity
from personas import PersonaLibrary
from scenarios import SHIPPED_SCENARIO_DIR, ScenarioLibrary
from scenarios.library import parse_scenario
from scenarios.lint import lint_coverage, lint_library, lint_scenario


def _variant(library: ScenarioLibrary, slug: str, edit: object) -> ScenarioLibrary:
    data = yaml.safe_load((SHIPPED_SCENARIO_DIR / f"{slug}.yaml").read_text())
    assert callable(edit)
    edit(data)
    scenario = parse_scenario(
        data, source=Path(f"{slug}.yaml"), company=library.company, personas=library.personas
    )
    return ScenarioLibrary([scenario], personas=library.personas, company=library.company)


def _lint(library: ScenarioLibrary, rubrics: RubricLibrary) -> list[Finding]:
    (scenario,) = library.all()
    return lint_scenario(scenario, library, rubrics)


def test_shipped_library_lints_clean(library: ScenarioLibrary, rubrics: RubricLibrary) -> None:
    report = lint_library(library, rubrics)

    assert {slug: f for slug, f in report.items() if f} == {}


@pytest.mark.parametrize(
    ("edit", "where", "problem"),
    [
        (
            lambda d: (
                d["criteria"].append({"id": "handle_objection", "focus": "x"})
                or d["anchors"].update(handle_objection=d["anchors"]["verify_identity"])
            ),
            "criteria.2.id",
            "`handle_objection` is not a criterion of the `support` rubric",
        ),
        (
            lambda d: d["anchors"]["verify_identity"]["good"].update(
                behaviour="Shows empathy and is professional with Margaret."
            ),
            "anchors.verify_identity.good.behaviour",
            "describes a trait (empathy, manner)",
        ),
        (
            lambda d: d["anchors"]["confirm_resolution"]["good"].update(
                behaviour="Makes sure Margaret feels the refund is handled."
            ),
            "anchors.confirm_resolution.good.behaviour",
            "describes what someone feels",
        ),
        (
            lambda d: d["success"].update(all_of=["gives_timeframe", "customer_is_happy"]),
            "success.all_of",
            "`customer_is_happy` is neither a check",
        ),
        (
            lambda d: d["stages"][0].update(advance_when=["confirm_resolution.great"]),
            "stages.0.advance_when",
            "String should match pattern",
        ),
    ],
)
def test_lint_finds_errors(
    library: ScenarioLibrary,
    rubrics: RubricLibrary,
    edit: object,
    where: str,
    problem: str,
) -> None:
    try:
        variant = _variant(library, "support-double-charge", edit)
    except Exception as exc:  # a schema error is caught even before lint
        assert problem in str(exc) and where in str(exc)
        return

    errors = [f for f in _lint(variant, rubrics) if f.severity is Severity.error]

    assert any(f.where == where and problem in f.problem for f in errors), errors


def test_lint_warns_about_generic_words_and_missing_moods(
    library: ScenarioLibrary, rubrics: RubricLibrary
) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["stages"][1]["lines"] = {"calm": ["Can I have a ticket number for this, please?"]}

    findings = _lint(_variant(library, "support-double-charge", edit), rubrics)

    warnings = {(f.where, f.severity) for f in findings}
    assert ("stages.1.lines.calm.0", Severity.warning) in warnings
    assert ("stages.1.lines", Severity.warning) in warnings
    assert not [f for f in findings if f.severity is Severity.error]


def test_lint_warns_about_the_wrong_kind_of_persona(
    library: ScenarioLibrary, rubrics: RubricLibrary
) -> None:
    variant = _variant(library, "feedback-new-advisor-reference", lambda d: None)
    (scenario,) = variant.all()
    swapped = ScenarioLibrary(
        [scenario.model_copy(update={"persona": "margaret-okafor"})],
        personas=library.personas,
        company=library.company,
    )

    findings = _lint(swapped, rubrics)

    assert any(f.where == "persona" and "talks to an advisor" in f.problem for f in findings)


def test_coverage_warns_when_a_criterion_has_one_difficulty(
    library: ScenarioLibrary, personas: PersonaLibrary, rubrics: RubricLibrary
) -> None:
    only_easy = ScenarioLibrary(
        library.find(difficulty="easy"), personas=personas, company=library.company
    )

    findings = lint_coverage(only_easy, rubrics)

    where = {f.where for f in findings}
    assert "library: support.verify_identity" in where
    assert "library: sales.state_terms" in where
    assert all(f.severity is Severity.warning for f in findings)


def test_lint_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, library: ScenarioLibrary
) -> None:
    from config.settings import get_settings

    runner = CliRunner()
    bad = tmp_path / "scenarios"
    bad.mkdir()
    data = yaml.safe_load((SHIPPED_SCENARIO_DIR / "support-double-charge.yaml").read_text())
    data["criteria"][0]["id"] = "verify_identiy"
    data["anchors"]["verify_identiy"] = data["anchors"].pop("verify_identity")
    (bad / "typo.yaml").write_text(yaml.safe_dump(data))

    get_settings.cache_clear()
    clean = runner.invoke(app, ["scenario", "lint"])
    monkeypatch.setenv("COACHLOOP_PRACTICE__SCENARIO_DIR", str(bad))
    get_settings.cache_clear()
    try:
        failing = runner.invoke(app, ["scenario", "lint"])
    finally:
        get_settings.cache_clear()

    assert clean.exit_code == 0, clean.output
    assert f"{len(library)} scenarios, {len(library.personas)} personas" in clean.output
    assert failing.exit_code == 1
    assert "verify_identiy" in failing.output
