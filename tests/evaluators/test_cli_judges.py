"""Both judges from the command line on a small demo organisation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session, col, func, select
from typer.testing import CliRunner

from app import app
from config.settings import get_settings
from store.db import make_engine
from store.models import Evaluation, Interaction
from tests.fakes.openai_server import FakeOpenAIServer, Reply, careful_judge

DEMO = ["demo", "--reps", "9", "--days", "7", "--end-date", "2026-11-27"]


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("COACHLOOP_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield tmp_path / "data"
    get_settings.cache_clear()


def counts(data_dir: Path) -> tuple[int, dict[str, int]]:
    engine = make_engine(f"sqlite:///{data_dir / 'coachloop.db'}")
    with Session(engine) as session:
        calls = session.exec(select(func.count(col(Interaction.id)))).one()
        by_status = dict(
            session.exec(
                select(Evaluation.status, func.count(col(Evaluation.id))).group_by(
                    col(Evaluation.status)
                )
            ).all()
        )
    engine.dispose()
    return calls, by_status


def test_llm_judge_scores_the_demo_through_an_openai_compatible_endpoint(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    assert runner.invoke(app, DEMO).exit_code == 0

    with FakeOpenAIServer(handler=careful_judge()) as server:
        # the first call gets a malformed reply: retried, then scored like the others
        server.push(Reply.malformed())
        monkeypatch.setenv("COACHLOOP_LLM__BASE_URL", server.base_url)
        monkeypatch.setenv("COACHLOOP_LLM__API_KEY", "local-test")
        get_settings.cache_clear()
        scored = runner.invoke(app, ["score", "--judge", "llm"])
        again = runner.invoke(app, ["score", "--judge", "llm"])
        requests = len(server.chat_requests)

    calls, by_status = counts(data_dir)
    assert scored.exit_code == 0, scored.output
    assert f"scored {calls}" in scored.output, scored.output
    assert by_status == {"scored": calls}
    assert requests == calls + 1  # one per call, plus the retried malformed reply
    assert again.exit_code == 0 and "scored 0" in again.output


def test_llm_judge_without_an_endpoint_says_what_to_set(data_dir: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app, DEMO).exit_code == 0

    result = runner.invoke(app, ["score", "--judge", "llm"])

    assert result.exit_code != 0
    assert "COACHLOOP_LLM__BASE_URL" in result.output
    assert counts(data_dir)[1] == {}
