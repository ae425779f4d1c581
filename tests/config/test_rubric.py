from pathlib import Path

import pytest

from config.rubric import RubricError, RubricLibrary, load_rubric, parse_rubric

SUPPORT = Path("config/data/rubrics/support.yaml")


def _criterion(cid: str, weight: float | None = None) -> dict[str, object]:
    def level(n: int) -> dict[str, object]:
        return {
            "anchor": f"anchor {n} for {cid}",
            "examples": ["example"],
            "checks": [{"id": f"{cid}_c{n}", "question": "Does the rep say it?"}],
        }

    data: dict[str, object] = {
        "id": cid,
        "name": f"Does {cid}",
        "behaviour": f"says {cid}",
        "levels": {1: level(1), 2: level(2), 3: level(3)},
    }
    if weight is not None:
        data["weight"] = weight
    return data


def test_shipped_rubrics_load_and_cover_three_roles() -> None:
    library = RubricLibrary.from_dir()

    assert {"support"} <= set(library.roles)
    for rubric in library.rubrics:
        assert 3 <= len(rubric.criteria) <= 5
        assert abs(sum(rubric.weights().values()) - 1) < 1e-9


def test_support_weights_follow_the_method() -> None:
    rubric = load_rubric(SUPPORT)

    assert rubric.weights() == {
        "verify_identity": 0.30,
        "acknowledge_concern": 0.25,
        "confirm_resolution": 0.25,
        "follow_process": 0.20,
    }


def test_version_is_a_content_hash() -> None:
    base = {"role": "support", "name": "R", "criteria": [_criterion("a"), _criterion("b")]}
    edited = {**base, "name": "R2"}

    first = parse_rubric(base, source=Path("x"))
    again = parse_rubric(dict(base), source=Path("x"))
    changed = parse_rubric(edited, source=Path("x"))

    assert first.version == again.version
    assert first.version != changed.version


def test_equal_weights_when_none_given() -> None:
    rubric = parse_rubric(
        {"role": "r", "name": "R", "criteria": [_criterion("a"), _criterion("b")]},
        source=Path("x"),
    )

    assert rubric.weights() == {"a": 0.5, "b": 0.5}


@pytest.mark.parametrize(
    ("observed", "level"),
    [
        ({}, 1),
        ({"a_c2": True}, 2),
        ({"a_c3": True}, 1),  # level 3 needs level 2's checks too
        ({"a_c2": True, "a_c3": True}, 3),
    ],
)
def test_level_follows_from_checks(observed: dict[str, bool], level: int) -> None:
    rubric = parse_rubric(
        {"role": "r", "name": "R", "criteria": [_criterion("a")]}, source=Path("x")
    )

    assert rubric.criteria[0].level_from_checks(observed) == level


def test_no_criteria_is_an_error_that_names_the_file() -> None:
    with pytest.raises(RubricError, match="(?s)bad.yaml.*at least one criterion"):
        parse_rubric({"role": "r", "name": "R", "criteria": []}, source=Path("bad.yaml"))


def test_more_than_five_criteria_warns(caplog: pytest.LogCaptureFixture) -> None:
    criteria = [_criterion(f"c{i}") for i in range(6)]

    parse_rubric({"role": "r", "name": "R", "criteria": criteria}, source=Path("x"))

    assert "more than five criteria" in caplog.text


def test_missing_level_names_the_field(tmp_path: Path) -> None:
    crit = _criterion("a")
    crit["levels"] = {1: crit["levels"][1]}  # type: ignore[index]
    path = tmp_path / "r.yaml"
    import yaml

    path.write_text(yaml.safe_dump({"role": "r", "name": "R", "criteria": [crit]}))

    with pytest.raises(RubricError, match=r"criteria\.0\.levels.*levels \[2, 3\] are missing"):
        load_rubric(path)


def test_typo_in_a_field_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("role: r\nname: R\ncritera: []\n")

    with pytest.raises(RubricError, match="critera"):
        load_rubric(path)


def test_weighted_total_skips_not_applicable() -> None:
    rubric = load_rubric(SUPPORT)
    levels = {
        "verify_identity": 3,
        "acknowledge_concern": None,
        "confirm_resolution": 1,
        "follow_process": 2,
    }

    total = rubric.weighted_total(levels)

    assert total == pytest.approx((0.3 * 3 + 0.25 * 1 + 0.2 * 2) / 0.75)
    assert rubric.fails_compliance({"verify_identity": 1})
