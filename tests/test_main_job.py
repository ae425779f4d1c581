"""The main job end to end on a small demo organisation, and again with nothing new to do."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session, col, func, select
from typer.testing import CliRunner

from app import app
from config.settings import get_settings
from store.db import make_engine
from store.models import CoachingRun, Evaluation, Interaction, OutboxMessage

RUN = ["run", "--no-serve", "--reps", "9", "--days", "7"]


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("COACHLOOP_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield tmp_path / "data"
    get_settings.cache_clear()


def counts(data_dir: Path) -> dict[str, int]:
    engine = make_engine(f"sqlite:///{data_dir / 'coachloop.db'}")
    with Session(engine) as session:
        found = {
            "calls": session.exec(select(func.count(col(Interaction.id)))).one(),
            "scored": session.exec(
                select(func.count(col(Evaluation.id))).where(Evaluation.status == "scored")
            ).one(),
            "coached": session.exec(select(func.count(col(CoachingRun.interaction_id)))).one(),
            "messages": session.exec(select(func.count(col(OutboxMessage.id)))).one(),
        }
    engine.dispose()
    return found


def test_main_job_builds_scores_coaches_and_says_how_to_sign_in(data_dir: Path) -> None:
    runner = CliRunner()

    first = runner.invoke(app, RUN)
    after_first = counts(data_dir)
    again = runner.invoke(app, RUN)

    assert first.exit_code == 0, first.output
    for step in ("1/4 demo organisation", "2/4 scoring", "3/4 coaching", "4/4 what coachloop"):
        assert step in first.output
    assert "sign in" in first.output and "coachloop serve" in first.output
    assert after_first["calls"] > 50
    assert after_first["scored"] == after_first["calls"]  # the offline judge scores them all
    assert after_first["coached"] == after_first["calls"]
    assert after_first["messages"] >= after_first["calls"]  # feedback for every call at least
    assert again.exit_code == 0, again.output
    assert "scored 0" in again.output and "coached 0" in again.output
    assert counts(data_dir) == after_first
