"""Persona files: the shipped library loads, and mistakes fail at load time with a field path."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from config.company import CompanyProfile, load_company
from personas import (
    EMOTIONS,
    PersonaError,
    PersonaLibrary,
    PersonaNotFoundError,
    emotion_for,
    load_persona,
)
from personas.library import SHIPPED_PERSONA_DIR


@pytest.fixture(scope="module")
def company() -> CompanyProfile:
    return load_company()


def _shipped(slug: str) -> dict[str, object]:
    data = yaml.safe_load((SHIPPED_PERSONA_DIR / f"{slug}.yaml").read_text())
    assert isinstance(data, dict)
    return data


def _write(tmp_path: Path, data: object, name: str = "persona.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_shipped_personas_load(company: CompanyProfile) -> None:
    library = PersonaLibrary.from_dir(company)

    assert library.errors == []
    assert len(library) >= 8
    assert {p.kind for p in library.all()} == {"customer", "advisor"}
    assert {p.difficulty for p in library.all()} == {"easy", "medium", "hard"}
    for persona in library.all():
        assert persona.deflections and persona.nudges
        for item in persona.held_back:
            assert item.markers, f"{persona.slug}.{item.id} has no leak markers"


def test_company_placeholders_are_filled(company: CompanyProfile) -> None:
    margaret = PersonaLibrary.from_dir(company).get("margaret-okafor")

    assert "{" not in margaret.role + margaret.company_context
    assert "Harbor Fibre 150" in margaret.role
    assert "27.99" in margaret.company_context


@pytest.mark.parametrize(
    ("change", "where", "message"),
    [
        ({"emotional_strat": 3}, "emotional_strat", "Extra inputs are not permitted"),
        ({"emotional_start": 14}, "emotional_start", "less than or equal to 10"),
        ({"difficulty": "brutal"}, "difficulty", "'easy', 'medium' or 'hard'"),
        ({"nudges": []}, "nudges", "at least 1 item"),
        ({"slug": "Margaret Okafor"}, "slug", "String should match pattern"),
    ],
)
def test_mistakes_fail_with_the_field_path(
    tmp_path: Path, company: CompanyProfile, change: dict[str, object], where: str, message: str
) -> None:
    data = _shipped("margaret-okafor") | change
    if "emotional_strat" in change:
        del data["emotional_start"]

    with pytest.raises(PersonaError) as info:
        load_persona(_write(tmp_path, data), company)

    assert f"  - {where}: " in str(info.value)
    assert message in str(info.value)
    assert str(tmp_path / "persona.yaml") in str(info.value)


def test_typo_inside_held_back_names_the_nested_path(
    tmp_path: Path, company: CompanyProfile
) -> None:
    data = _shipped("dev-patel")
    held = data["held_back"]
    assert isinstance(held, list)
    held[0]["earnd_by"] = held[0].pop("earned_by")

    with pytest.raises(PersonaError) as info:
        load_persona(_write(tmp_path, data), company)

    assert "held_back.0.earnd_by: Extra inputs are not permitted" in str(info.value)
    assert "held_back.0.earned_by: Field required" in str(info.value)


def test_unknown_company_reference_is_named(tmp_path: Path, company: CompanyProfile) -> None:
    data = _shipped("margaret-okafor") | {"role": "customer on {product:fibre-2000}"}

    with pytest.raises(PersonaError, match=r"role: No product `fibre-2000`"):
        load_persona(_write(tmp_path, data), company)


def test_not_yaml_and_missing_files_are_clear(tmp_path: Path, company: CompanyProfile) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("slug: [unclosed\n")

    with pytest.raises(PersonaError, match="not valid YAML"):
        load_persona(broken, company)
    with pytest.raises(PersonaError, match="no such persona file"):
        load_persona(tmp_path / "missing.yaml", company)


def test_a_bad_file_is_set_aside_and_the_rest_load(tmp_path: Path, company: CompanyProfile) -> None:
    _write(tmp_path, _shipped("margaret-okafor"), "margaret-okafor.yaml")
    _write(tmp_path, _shipped("dev-patel") | {"volatility": 9}, "dev-patel.yaml")

    library = PersonaLibrary.from_dir(company, tmp_path)

    assert library.slugs == ["margaret-okafor"]
    assert len(library.errors) == 1 and "volatility" in library.errors[0]
    with pytest.raises(PersonaNotFoundError, match="available personas: margaret-okafor"):
        library.get("dev-patel")


@pytest.mark.parametrize(
    ("meter", "emotion"),
    [(0, "calm"), (3, "calm"), (4, "frustrated"), (7, "frustrated"), (8, "angry"), (10, "angry")],
)
def test_emotional_states_from_the_meter(meter: int, emotion: str) -> None:
    assert emotion_for(meter) == emotion
    assert emotion in EMOTIONS
