from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from coaching.errors import OutcomeImportError
from coaching.outcomes import import_outcomes
from store.models import Outcome
from tests.coaching.conftest import T0, Org, rows

METRICS = ["csat", "resolution_rate", "qa_score"]


def write(tmp_path: Path, text: str, name: str = "outcomes.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_bad_rows_are_set_aside_and_the_rest_imported(
    org: Org, db_engine: Engine, tmp_path: Path
) -> None:
    team = org.team("north")
    org.rep(team, "Ada")
    org.rep(team, "Ben")
    path = write(
        tmp_path,
        "rep,period_start,period_end,metric,value\n"
        "ada,2026-11-01,2026-11-30,csat,81.5\n"
        "ben@example.com,2026-11-01,2026-11-30,resolution_rate,72%\n"
        "zed,2026-11-01,2026-11-30,csat,70\n"
        "ada,2026-11-31,2026-11-30,csat,70\n"
        "ada,2026-11-30,2026-11-01,csat,70\n"
        "ada,2026-11-01,2026-11-30,nps,40\n"
        "ada,2026-11-01,2026-11-30,qa_score,high\n"
        "ada,2026-11-01,2026-11-30,qa_score,91,extra\n",
    )

    result = import_outcomes(db_engine, path, metrics=METRICS, now=T0)

    assert (result.new, result.updated, result.unchanged) == (2, 0, 0)
    reasons = {r.line: r.reason for r in result.rejected}
    assert sorted(reasons) == [4, 5, 6, 7, 8, 9]
    assert "no rep `zed`" in reasons[4]
    assert "`period_start` is `2026-11-31`" in reasons[5]
    assert "before period_start" in reasons[6]
    assert "unknown metric `nps`" in reasons[7]
    assert "`qa_score` is `high`, not a number" in reasons[8]
    assert "more fields than the header" in reasons[9]
    stored = {(o.metric, o.value) for o in rows(db_engine, Outcome)}
    assert stored == {("csat", 81.5), ("resolution_rate", 72.0)}


def test_wide_format_and_reimport_is_idempotent(
    org: Org, db_engine: Engine, tmp_path: Path
) -> None:
    org.rep(org.team("north"), "Ada")
    text = "external_id,period_start,period_end,csat,qa_score\nada,2026-11-01,2026-11-30,80,\n"
    path = write(tmp_path, text)

    first = import_outcomes(db_engine, path, metrics=METRICS, now=T0)
    again = import_outcomes(db_engine, path, metrics=METRICS, now=T0)
    changed = import_outcomes(
        db_engine, write(tmp_path, text.replace(",80,", ",84,")), metrics=METRICS, now=T0
    )

    assert (first.new, again.new, again.unchanged) == (1, 0, 1)
    assert (changed.updated, changed.new) == (1, 0)
    assert [o.value for o in rows(db_engine, Outcome)] == [84.0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty; the first line must be a header"),
        ("who,period_start,period_end,csat\n", "the header lacks one of rep"),
        ("rep,period_start,csat\n", "the header lacks period_end"),
        ("rep,period_start,period_end,nps\n", "unknown metric columns nps"),
    ],
)
def test_unreadable_files_are_refused_with_the_reason(
    sqlite_engine: Engine, tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(OutcomeImportError, match=message):
        import_outcomes(sqlite_engine, write(tmp_path, text), metrics=METRICS, now=T0)


def test_non_utf8_file_is_refused(sqlite_engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(
        "rep,period_start,period_end,csat\nrené,2026-11-01,2026-11-30,80\n".encode("latin-1")
    )

    with pytest.raises(OutcomeImportError, match="not UTF-8"):
        import_outcomes(sqlite_engine, path, metrics=METRICS, now=T0)
