"""The coaching commands, run through the real command line on SQLite."""

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from app import app
from config.settings import get_settings
from tests.coaching.conftest import CRITERIA, T0, Org

ACK = "acknowledge_concern"


@pytest.fixture
def cli(sqlite_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("COACHLOOP_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    runner = CliRunner()
    url = str(sqlite_engine.url)

    def invoke(*args: str):
        return runner.invoke(app, ["--database-url", url, *args])

    yield invoke
    get_settings.cache_clear()


def test_coach_then_read_the_outbox_reports_and_approvals(
    sqlite_engine: Engine, tmp_path: Path, cli
) -> None:
    org = Org(sqlite_engine)
    team = org.team("north")
    reps = [org.rep(team, name) for name in ("Ada", "Ben", "Cy", "Di")]
    for day in range(5):
        for i, rep in enumerate(reps):
            level = 3 if i == 3 else 1
            at = T0 + timedelta(days=day, minutes=i)
            org.call(rep, at, {**dict.fromkeys(CRITERIA, 3), ACK: level})

    coached = cli("coach")
    pending = cli("approvals")
    approved = cli("approvals", "approve", "1", "--by", "mgr-north")
    again = cli("approvals", "approve", "1")
    outbox = cli("outbox", "--kind", "cohort_alert")
    feedback = cli("outbox", "--show", "1")
    breaches = cli("outbox", "--breaches")
    gaps = cli("team-gaps", "--team", "north", "--period", "2026-11")
    unknown = cli("team-gaps", "--team", "nope")
    report = cli("report", "--team", "north", "--days", "60")
    bad_days = cli("report", "--days", "45")
    rerun = cli("coach", "--all")

    assert coached.exit_code == 0, coached.output
    assert "coached 19, awaiting approval 1" in coached.output
    assert "cohort" in coached.output and "rep_feedback" in coached.output
    assert pending.exit_code == 0 and "awaiting approval (1)" in pending.output
    assert approved.exit_code == 0, approved.output
    assert "cohort decision 1: approved" in approved.output
    assert again.exit_code == 1 and "already approved" in again.output
    assert outbox.exit_code == 0 and "Outbox (1 shown" in outbox.output
    assert feedback.exit_code == 0 and "to work on" in feedback.output
    assert breaches.exit_code == 0 and "Feedback past 48 hours (20)" in breaches.output
    assert gaps.exit_code == 0, gaps.output
    assert "Acknowledges" in gaps.output and "yes" in gaps.output
    assert unknown.exit_code == 1 and "No team `nope`; teams: north" in unknown.output
    assert report.exit_code == 0, report.output
    assert "30-day checkpoint" in report.output and "60-day checkpoint" in report.output
    assert bad_days.exit_code == 1 and "use 30 or 60" in bad_days.output
    assert rerun.exit_code == 0 and "coached 0" in rerun.output


def test_outcomes_import_reports_rows_set_aside(sqlite_engine: Engine, tmp_path: Path, cli) -> None:
    Org(sqlite_engine).rep(None, "Ada")
    path = tmp_path / "outcomes.csv"
    path.write_text(
        "rep,period_start,period_end,csat\nada,2026-11-01,2026-11-30,80\nzed,2026-11-01,2026-11-30,70\n",
        encoding="utf-8",
    )

    imported = cli("outcomes", "import", str(path))
    missing = cli("outcomes", "import", str(tmp_path / "nope.csv"))

    assert imported.exit_code == 0, imported.output
    assert "1 new, 0 updated, 0 unchanged, 1 rows set aside" in imported.output
    assert "no rep `zed`" in imported.output
    assert missing.exit_code == 1 and "no such file" in missing.output


def test_outbox_shows_why_a_message_failed(sqlite_engine: Engine, cli) -> None:
    from sqlmodel import Session

    from coaching.outbox import enqueue, mark_failed

    ada = Org(sqlite_engine).rep(None, "Ada")
    with Session(sqlite_engine) as session:
        message_id, _ = enqueue(
            session,
            kind="digest",
            recipient_id=ada.id,
            payload={},
            dedupe_key="digest-ada",
            now=T0,
        )
        session.commit()
    mark_failed(sqlite_engine, message_id, "user_not_found")

    listed = cli("outbox", "--status", "failed")
    shown = cli("outbox", "--show", str(message_id))

    assert listed.exit_code == 0, listed.output
    assert "user_not_found" in listed.output
    assert shown.exit_code == 0, shown.output
    assert "last error: user_not_found" in shown.output
