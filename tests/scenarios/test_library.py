"""The scenario library: size, coverage of every shipped rubric, schema errors, catalogue."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from coaching.catalogue import ScenarioCatalogue, load_catalogue
from config.company import CompanyProfile
from config.rubric import SHIPPED_RUBRIC_DIR, RubricLibrary
from personas import PersonaLibrary
from scenarios import SHIPPED_SCENARIO_DIR, ScenarioError, ScenarioLibrary, load_scenario


def _shipped(slug: str) -> dict[str, object]:
    data = yaml.safe_load((SHIPPED_SCENARIO_DIR / f"{slug}.yaml").read_text())
    assert isinstance(data, dict)
    return data


def _write(tmp_path: Path, data: object, name: str = "scenario.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_library_size_and_roles(library: ScenarioLibrary, personas: PersonaLibrary) -> None:
    assert library.errors == []
    assert len(library) >= 12
    assert len(personas) >= 8
    assert {s.role for s in library.all()} >= {"support", "sales", "team-lead"}


def test_every_shipped_criterion_is_practised_at_two_difficulties(
    library: ScenarioLibrary,
) -> None:
    shipped = RubricLibrary.from_dir(SHIPPED_RUBRIC_DIR)
    covered = library.coverage()

    missing = {
        (role, c.id): sorted(covered.get((role, c.id), set()))
        for rubric in shipped.rubrics
        for role in rubric.served_roles
        for c in rubric.criteria_for(role)
        if len(covered.get((role, c.id), set())) < 2
    }

    assert {r.role for r in shipped.rubrics} >= {"support", "sales", "team-lead"}
    assert missing == {}


def test_every_scenario_has_the_four_parts(library: ScenarioLibrary) -> None:
    for scenario in library.all():
        assert scenario.briefing.strip(), scenario.slug
        assert library.persona_for(scenario), scenario.slug
        assert scenario.criteria, scenario.slug
        for cid in scenario.criterion_ids:
            anchor = scenario.anchors[cid]
            assert anchor.good.examples and anchor.poor.examples, (scenario.slug, cid)


def test_scripted_lines_are_in_the_company_language(library: ScenarioLibrary) -> None:
    """No placeholder is left unrendered, and no line uses a word the company replaces."""
    for scenario in library.all():
        text = yaml.safe_dump(scenario.model_dump(mode="json"))
        assert "{product:" not in text and "{price:" not in text, scenario.slug
        lines = [scenario.opening_line] + [
            line for stage in scenario.stages for lines in stage.lines.values() for line in lines
        ]
        for line in lines:
            assert library.company.avoided_terms(line) == [], (scenario.slug, line)


def test_find_by_role_criterion_and_difficulty(library: ScenarioLibrary) -> None:
    found = library.find(role="support", criterion="verify_identity")

    assert {s.slug for s in found} == {
        "support-double-charge",
        "support-bill-went-up",
        "support-calling-for-mother",
    }
    assert [s.slug for s in library.find(criterion="verify_identity", difficulty="easy")] == [
        "support-double-charge"
    ]
    assert library.find(role="nobody") == []


def test_the_library_is_the_coaching_catalogue(library: ScenarioLibrary) -> None:
    assert isinstance(library, ScenarioCatalogue)
    ours = {
        (s.slug, s.role, s.criteria, s.difficulty, s.title, s.rank) for s in library.scenarios()
    }
    read_by_coaching = {
        (s.slug, s.role, s.criteria, s.difficulty, s.title, s.rank)
        for s in load_catalogue(SHIPPED_SCENARIO_DIR).scenarios()
    }

    assert ours == read_by_coaching


@pytest.mark.parametrize(
    ("slug", "edit", "message"),
    [
        (
            "support-double-charge",
            lambda d: d["anchors"]["verify_identity"]["good"].update(
                exmaples=d["anchors"]["verify_identity"]["good"].pop("examples")
            ),
            "anchors.verify_identity.good.exmaples: Extra inputs are not permitted",
        ),
        (
            "support-double-charge",
            lambda d: d.update(turn_limit=0),
            "turn_limit: Input should be greater than or equal to 2",
        ),
        (
            "support-double-charge",
            lambda d: d["anchors"].pop("confirm_resolution"),
            "criteria ['confirm_resolution'] have no anchors",
        ),
        (
            "sales-flat-share-gaming",
            lambda d: d["stages"][0]["lines"].update(furious=["..."]),
            "stages.0.lines.furious.[key]: Input should be 'calm', 'frustrated' or 'angry'",
        ),
        (
            "sales-flat-share-gaming",
            lambda d: d.update(persona="jon-bakker"),
            "persona: no persona `jon-bakker`",
        ),
        (
            "sales-flat-share-gaming",
            lambda d: d.update(products=["fibre-2000"]),
            "products.0: No product `fibre-2000`",
        ),
        (
            "feedback-new-advisor-reference",
            lambda d: d.update(opening_line="On {product:harbor-radio}"),
            "opening_line: No product `harbor-radio`",
        ),
    ],
)
def test_mistakes_fail_at_load_with_the_field_path(
    tmp_path: Path,
    company: CompanyProfile,
    personas: PersonaLibrary,
    slug: str,
    edit: object,
    message: str,
) -> None:
    data = _shipped(slug)
    assert callable(edit)
    edit(data)

    with pytest.raises(ScenarioError) as info:
        load_scenario(_write(tmp_path, data), company, personas)

    assert message in str(info.value)


def test_a_bad_file_is_set_aside_and_the_rest_load(
    tmp_path: Path, company: CompanyProfile, personas: PersonaLibrary
) -> None:
    _write(tmp_path, _shipped("support-double-charge"), "good.yaml")
    _write(tmp_path, _shipped("sales-flat-share-gaming") | {"difficulty": "brutal"}, "bad.yaml")

    library = ScenarioLibrary.from_dir(company, personas, tmp_path)

    assert library.slugs == ["support-double-charge"]
    assert len(library.errors) == 1 and "bad.yaml" in library.errors[0]
