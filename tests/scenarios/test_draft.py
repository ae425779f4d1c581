"""Drafting a scenario from a real low-scoring call."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from app import app
from config.rubric import RubricLibrary
from config.rubric_lint import Severity
from scenarios import ScenarioLibrary
from scenarios.draft import DraftError, draft_from_interaction
from scenarios.library import parse_scenario
from scenarios.lint import lint_scenario
from store.models import Speaker
from tests.scenarios.conftest import add_rep, add_scored_call

CALL = [
    (Speaker.agent, "Harbor Broadband, you're through to Tom."),
    (Speaker.customer, "Hi, I've been charged twice this month and I'm really worried about it."),
    (Speaker.agent, "I can see your bill here, and yes, there are two charges on it."),
    (
        Speaker.customer,
        "I need it back before my rent goes out. Call me on 07700 900123 if you need to, I'm at "
        "BS3 4QT.",
    ),
    (Speaker.agent, "I've raised a refund, it'll be back in 3 to 5 working days."),
    (Speaker.customer, "Will it definitely be back before Friday? I can't be short again."),
]
CHECKS = {
    "verify_identity": [
        {"id": "changes_without_verification", "observed": True, "turn": 2, "quote": CALL[2][1]},
        {"id": "asks_security_detail", "observed": False},
    ]
}


def _seed(engine: Engine, rubrics: RubricLibrary, levels: dict[str, int | None]) -> int:
    rep_id = add_rep(engine, "e-31", "support")
    return add_scored_call(
        engine,
        rubrics,
        rep_id=rep_id,
        role="support",
        levels=levels,
        turns=CALL,
        external_id="real-1",
        checks=CHECKS,
    )


LOW = {"verify_identity": 1, "acknowledge_concern": 2, "confirm_resolution": 2, "follow_process": 2}


def test_draft_keeps_the_customer_and_the_low_moment(
    db_engine: Engine, rubrics: RubricLibrary, library: ScenarioLibrary
) -> None:
    call_id = _seed(db_engine, rubrics, LOW)

    draft = draft_from_interaction(db_engine, call_id, rubrics, library)

    data = yaml.safe_load(draft.yaml_text)
    assert draft.criterion_id == "verify_identity" and draft.level == 1
    assert draft.yaml_text.startswith(f"# Draft scenario from interaction {call_id}")
    assert data["role"] == "support"
    assert data["opening_line"] == CALL[1][1]
    assert [c["id"] for c in data["criteria"]] == ["verify_identity"]
    poor = [e["text"] for e in data["anchors"]["verify_identity"]["poor"]["examples"]]
    assert CALL[2][1] in poor
    assert "07700 900123" not in draft.yaml_text and "BS3 4QT" not in draft.yaml_text
    assert "[PHONE]" in draft.yaml_text and "[POSTCODE]" in draft.yaml_text
    # it loads as a scenario and lints without errors
    scenario = parse_scenario(
        data, source=Path("draft.yaml"), company=library.company, personas=library.personas
    )
    drafted = ScenarioLibrary([scenario], personas=library.personas, company=library.company)
    errors = [f for f in lint_scenario(scenario, drafted, rubrics) if f.severity is Severity.error]
    assert errors == []
    assert library.persona_for(scenario).kind == "customer"


def test_draft_for_a_named_criterion(
    db_engine: Engine, rubrics: RubricLibrary, library: ScenarioLibrary
) -> None:
    call_id = _seed(db_engine, rubrics, LOW)

    draft = draft_from_interaction(
        db_engine, call_id, rubrics, library, criterion_id="confirm_resolution"
    )

    assert draft.criterion_id == "confirm_resolution"
    assert draft.slug == f"draft-confirm-resolution-{call_id}"


def test_draft_refuses_what_it_cannot_use(
    db_engine: Engine, rubrics: RubricLibrary, library: ScenarioLibrary
) -> None:
    call_id = _seed(db_engine, rubrics, dict.fromkeys(LOW, 3))

    with pytest.raises(DraftError, match="Every criterion scored 3"):
        draft_from_interaction(db_engine, call_id, rubrics, library)
    with pytest.raises(DraftError, match="No interaction 999"):
        draft_from_interaction(db_engine, 999, rubrics, library)
    with pytest.raises(DraftError, match="`handle_objection` was not scored"):
        draft_from_interaction(
            db_engine, call_id, rubrics, library, criterion_id="handle_objection"
        )


def test_draft_command_writes_the_file(
    tmp_path: Path, sqlite_engine: Engine, rubrics: RubricLibrary
) -> None:
    call_id = _seed(sqlite_engine, rubrics, LOW)
    url = str(sqlite_engine.url)
    out = tmp_path / "drafted.yaml"
    runner = CliRunner()

    printed = runner.invoke(
        app, ["--database-url", url, "scenario", "draft", "--from-interaction", str(call_id)]
    )
    written = runner.invoke(
        app,
        [
            "--database-url",
            url,
            "scenario",
            "draft",
            "--from-interaction",
            str(call_id),
            "--out",
            str(out),
        ],
    )
    again = runner.invoke(
        app,
        [
            "--database-url",
            url,
            "scenario",
            "draft",
            "--from-interaction",
            str(call_id),
            "--out",
            str(out),
        ],
    )
    missing = runner.invoke(
        app, ["--database-url", url, "scenario", "draft", "--from-interaction", "404"]
    )

    assert printed.exit_code == 0, printed.output
    assert "slug: draft-verify-identity-" in printed.output
    assert written.exit_code == 0 and out.read_text().startswith("# Draft scenario")
    assert again.exit_code == 1 and "already exists" in again.output
    assert missing.exit_code == 1 and "No interaction 404" in missing.output
