from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from app import app
from config.rubric import RubricLibrary, parse_rubric
from config.rubric_lint import Severity, has_errors, lint_rubric


def _rubric(**overrides: object) -> dict[str, object]:
    def level(n: int, cid: str) -> dict[str, object]:
        return {
            "anchor": f"level {n} of {cid}",
            "examples": ["Let me check that for you."],
            "checks": [
                {
                    "id": f"{cid}_{n}",
                    "question": f"Does the rep say the level {n} words for {cid}?",
                    "exemplars": [f"{cid} phrase {n}"],
                }
            ],
        }

    criteria = [
        {
            "id": cid,
            "name": name,
            "behaviour": behaviour,
            "weight": weight,
            "levels": {n: level(n, cid) for n in (1, 2, 3)},
        }
        for cid, name, behaviour, weight in [
            ("greet", "Greets by name", "uses the customer's name in the opening", 30),
            ("verify", "Verifies identity", "confirms two security details", 40),
            ("close", "Confirms next step", "states the next step with a date", 30),
        ]
    ]
    data: dict[str, object] = {"role": "support", "name": "R", "criteria": criteria}
    data.update(overrides)
    return data


def _findings(data: dict[str, object]) -> list[tuple[Severity, str, str]]:
    rubric = parse_rubric(data, source=Path("r.yaml"))
    return [(f.severity, f.where, f.problem) for f in lint_rubric(rubric)]


def test_shipped_rubrics_have_no_errors() -> None:
    for rubric in RubricLibrary.from_dir().rubrics:
        errors = [f for f in lint_rubric(rubric) if f.severity is Severity.error]
        assert errors == [], rubric.role


def test_clean_rubric_has_no_findings() -> None:
    assert _findings(_rubric()) == []


@pytest.mark.parametrize(
    "trait", ["Shows empathy", "Is friendly", "Positive attitude", "Good listener"]
)
def test_traits_are_errors_with_a_suggestion(trait: str) -> None:
    data = _rubric()
    data["criteria"][0]["name"] = trait  # type: ignore[index]

    rubric = parse_rubric(data, source=Path("r.yaml"))
    findings = [f for f in lint_rubric(rubric) if f.where == "criteria.greet.name"]

    assert findings and findings[0].severity is Severity.error
    assert "observable" in findings[0].problem
    assert "acknowledges the concern" in findings[0].suggestion


def test_level_without_checks_is_an_error() -> None:
    data = _rubric()
    data["criteria"][1]["levels"][3]["checks"] = []  # type: ignore[index]

    found = _findings(data)

    assert (
        Severity.error,
        "criteria.verify.levels.3",
        "level 3 has no checks, so nothing decides it",
    ) in found


@pytest.mark.parametrize(
    "question",
    [
        "Does the rep feel confident?",
        "Does the rep genuinely care about the customer?",
        "Is the tone of voice warm?",
        "Does the rep handle it appropriately?",
    ],
)
def test_unverifiable_checks_are_errors(question: str) -> None:
    data = _rubric()
    data["criteria"][2]["levels"][2]["checks"][0]["question"] = question  # type: ignore[index]

    found = _findings(data)

    assert any(sev is Severity.error and "verify from a transcript" in msg for sev, _, msg in found)


def test_weights_that_do_not_add_up() -> None:
    data = _rubric()
    data["criteria"][0]["weight"] = 10  # type: ignore[index]

    found = _findings(data)

    assert (Severity.error, "criteria.*.weight", "weights add up to 80, not 100") in found


def test_overlapping_criteria_are_flagged() -> None:
    data = _rubric()
    data["criteria"][2]["name"] = "Verifies identity details"  # type: ignore[index]
    data["criteria"][2]["behaviour"] = "confirms two security details"  # type: ignore[index]

    found = _findings(data)

    assert any("overlapping" in msg for _, _, msg in found)


def test_cli_exits_non_zero_on_errors(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(yaml.safe_dump(_rubric()))
    broken = _rubric()
    broken["criteria"][0]["behaviour"] = "shows empathy to callers"  # type: ignore[index]
    bad.write_text(yaml.safe_dump(broken))

    ok = CliRunner().invoke(app, ["rubric", "lint", str(good)])
    failed = CliRunner().invoke(app, ["rubric", "lint", str(bad)])

    assert ok.exit_code == 0, ok.output
    assert failed.exit_code == 1
    assert "trait" in failed.output


def test_cli_reports_unreadable_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["rubric", "lint", str(tmp_path / "missing.yaml")])

    assert result.exit_code == 1


def test_has_errors_ignores_warnings() -> None:
    data = _rubric()
    data["criteria"][0]["levels"][1]["checks"] = []  # type: ignore[index]

    rubric = parse_rubric(data, source=Path("r.yaml"))

    assert not has_errors(lint_rubric(rubric))
