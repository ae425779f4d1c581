from pathlib import Path

import pytest
import yaml

from config.company import SHIPPED_COMPANY_FILE, CompanyError, load_company


def test_shipped_profile_has_the_products_policies_and_values() -> None:
    company = load_company()

    assert company.name == "Harbor Broadband"
    assert {p.id for p in company.products} >= {
        "fibre-150",
        "fibre-500",
        "fibre-900",
        "harbor-tv",
        "mobile-sim-30",
    }
    assert {p.id for p in company.policies} >= {
        "cooling-off",
        "price-rise",
        "engineer-visits",
        "refunds",
    }
    assert [v.name for v in company.values] == ["Fix it first time", "Say what happens next"]


def test_placeholders_render_from_the_profile() -> None:
    company = load_company()

    text = company.render("{product:fibre-500} is {price:fibre-500} for {term:fibre-500} months")

    assert text == "Harbor Fibre 500 is 34.99 for 24 months"
    assert company.render("{company.short}: {policy:cooling-off}") == (
        "Harbor: 14-day cooling-off period"
    )


def test_unknown_placeholder_names_the_field() -> None:
    company = load_company()

    with pytest.raises(CompanyError, match=r"stages\.0\.lines: No policy `refund-in-a-day`"):
        company.render_tree({"stages": [{"lines": "{policy:refund-in-a-day}"}]})


def test_generic_words_are_found() -> None:
    company = load_company()

    assert company.avoided_terms("Your ticket number is 4") == [
        ("ticket number", "reference number"),
        ("ticket", "reference number"),
    ]


def test_typo_in_profile_fails_with_path(tmp_path: Path) -> None:
    data = yaml.safe_load(SHIPPED_COMPANY_FILE.read_text())
    data["products"][0]["monthly_prise"] = 1
    path = tmp_path / "company.yaml"
    path.write_text(yaml.safe_dump(data))

    with pytest.raises(CompanyError, match=r"products\.0\.monthly_prise: Extra inputs"):
        load_company(path)
