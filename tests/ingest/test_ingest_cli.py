"""`coachloop ingest` end to end through the real command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

import app as cli
from app import app
from config.settings import get_settings
from store.db import make_engine
from store.models import Interaction


def test_cli_ingests_reports_and_exits_non_zero_only_when_all_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COACHLOOP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(cli.console, "width", 240)
    folder = tmp_path / "calls"
    folder.mkdir()
    (folder / "a.txt").write_text(
        "# started_at: 2026-03-02T09:30:00Z\nAgent: Hello, Harbor.\nCustomer: Hi.\n"
    )
    (folder / "b.vtt").write_text("not a caption file\n")
    mapping = Path("ingest/mappings/diarised-segments.yaml")
    diarised = tmp_path / "rec.json"
    diarised.write_text(
        json.dumps([{"speaker_label": "spk_0", "start_time": 0, "transcript": "Hi"}])
    )
    get_settings.cache_clear()

    first = CliRunner().invoke(app, ["ingest", str(folder), "--rep", "r-1", "--team", "north"])
    again = CliRunner().invoke(app, ["ingest", str(folder / "b.vtt")])
    mapped = CliRunner().invoke(
        app, ["ingest", str(diarised), "--mapping", str(mapping), "--rep", "r-2"]
    )
    bad_mapping = CliRunner().invoke(app, ["ingest", str(folder), "--mapping", "nope.yaml"])
    get_settings.cache_clear()

    assert first.exit_code == 0, first.output
    assert "│   1 │         0 │        1 │" in first.output
    assert "the first line must be `WEBVTT`" in first.output
    assert again.exit_code == 1
    assert mapped.exit_code == 1  # the mapping has no start time and the file name none either
    assert "missing required field `started_at`" in mapped.output
    assert bad_mapping.exit_code == 1
    assert "Mapping file `nope.yaml` does not exist" in bad_mapping.output
    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'coachloop.db'}")
    with Session(engine) as session:
        [call] = session.exec(select(Interaction)).all()
    engine.dispose()
    assert (call.source, call.team_id is not None) == ("txt", True)
    assert (tmp_path / "data" / "rejected" / "b.vtt.reason.txt").exists()
