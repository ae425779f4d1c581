import csv
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from app import app
from config.rubric import RubricLibrary
from config.settings import CalibrationSettings, get_settings
from evaluators.calibration import (
    CalibrationError,
    calibration_report,
    consensus,
    draw_sample,
    import_ratings,
    parse_level,
)
from evaluators.scoring import score_pending
from store.models import CriterionGate, HumanRating, RubricVersion
from tests.evaluators.keyword_judge import KeywordJudge, Org, at, seed_org

RUBRICS = RubricLibrary.from_dir()
SUPPORT = RUBRICS.for_role("support")
CRITERIA = [c.id for c in SUPPORT.criteria]
KINDS = ("good", "fair", "poor")
# the keyword judge's levels per kind of call (see keyword_judge.py)
JUDGE_LEVEL: dict[str, dict[str, int | None]] = {
    "good": dict.fromkeys(CRITERIA, 3),
    "fair": dict.fromkeys(CRITERIA, 2),
    "poor": {**dict.fromkeys(CRITERIA, 1), "acknowledge_concern": None},
}
SETTINGS = CalibrationSettings(bootstrap_resamples=100)

Rate = Callable[[str, int, str, str], int | None]
"""(rater, call number, kind, criterion) -> level."""


def _calls(n: int, first_day: int = 2) -> list[tuple[str, str, object, str]]:
    return [
        (f"call-{first_day + i}", ("ana", "ben", "cy")[i % 3], at(first_day + i), KINDS[i % 3])
        for i in range(n)
    ]


def _as_judge(rater: str, number: int, kind: str, criterion: str) -> int | None:
    return JUDGE_LEVEL[kind][criterion]


def _write_ratings(
    path: Path, calls: list[tuple[str, str, object, str]], raters: list[str], rate: Rate
) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["rater", "interaction", "criterion", "level"])
        for number, (external_id, _, _, kind) in enumerate(calls):
            for criterion in CRITERIA:
                for rater in raters:
                    level = rate(rater, number, kind, criterion)
                    writer.writerow(
                        [rater, external_id, criterion, "N/A" if level is None else level]
                    )
    return path


async def _scored_org(engine: Engine, calls: list[tuple[str, str, object, str]]) -> Org:
    org = seed_org(engine, calls)
    await score_pending(engine, KeywordJudge(), RUBRICS, batch_size=8)
    return org


def _by_criterion(report, criterion: str):
    (rubric,) = report.rubrics
    return next(c for c in rubric.criteria if c.criterion.id == criterion)


# -- import ---------------------------------------------------------------------------------


def test_parse_level_accepts_levels_and_na_spellings() -> None:
    assert [parse_level(x) for x in ("1", " 2 ", "3.0", "N/A", "na", "", "-")] == [
        1,
        2,
        3,
        None,
        None,
        None,
        None,
    ]
    with pytest.raises(ValueError, match="level `4` is not 1, 2, 3 or N/A"):
        parse_level("4")
    with pytest.raises(ValueError, match="level `good`"):
        parse_level("good")


def test_consensus_is_the_lower_median_and_ties_are_counted() -> None:
    assert consensus([1, 2, 3]) == (2, False)
    assert consensus([1, 3]) == (1, True)
    assert consensus([2, 2, 3, 3]) == (2, True)
    assert consensus([None, None, 3]) == (None, False)
    assert consensus([None, 3]) == (3, False)
    assert consensus([]) == (None, False)


async def test_import_reports_bad_rows_by_line_and_is_idempotent(
    db_engine: Engine, tmp_path: Path
) -> None:
    seed_org(db_engine, [("c1", "ana", at(2), "good"), ("c2", "dee", at(3), "good")])
    path = tmp_path / "ratings.csv"
    path.write_text(
        "rater,interaction,criterion,level\n"
        "ann,c1,verify_identity,3\n"  # line 2
        "ann,c1,acknowledge_concern,N/A\n"
        "ann,c1,confirm_resolution,\n"
        "ann,nope,verify_identity,2\n"  # line 5
        "ann,c1,empathy,2\n"
        "ann,c1,follow_process,4\n"
        ",c1,follow_process,2\n"
        "ann,c2,verify_identity,2\n"  # line 9: rep without a role
        "bob,c1,verify_identity,3,extra\n"
        "ann,c1,verify_identity,2\n"  # line 11: conflicts with line 2
        "bob,c1,follow_process,3\n"
    )

    report = import_ratings(db_engine, path, RUBRICS)

    assert report.inserted == 4
    assert [(b.line, b.problem) for b in report.bad] == [
        (5, "unknown interaction `nope`; import the call first"),
        (
            6,
            "unknown criterion `empathy` for rubric `support`; known: verify_identity, "
            "acknowledge_concern, confirm_resolution, follow_process",
        ),
        (7, "level `4` is not 1, 2, 3 or N/A"),
        (8, "the rater is empty; put the person's name or id"),
        (
            9,
            "the rep of interaction `c2` has no role, so no rubric applies; set the rep's role "
            "first",
        ),
        (10, "more fields than the 4 in the header"),
        (
            11,
            "ann rated `verify_identity` on `c1` again with a different level (line 2); keep one",
        ),
    ]
    with Session(db_engine) as session:
        stored = {
            (r.rater, r.criterion_id): (r.level, r.set_name, r.rubric_version)
            for r in session.exec(select(HumanRating)).all()
        }
    assert stored[("ann", "acknowledge_concern")] == (None, "calibration", SUPPORT.version)
    assert stored[("ann", "confirm_resolution")][0] is None

    again = import_ratings(db_engine, path, RUBRICS)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 4)

    path.write_text("rater,interaction,criterion,level\nann,c1,verify_identity,1\n")
    changed = import_ratings(db_engine, path, RUBRICS, set_name="round-2")
    assert (changed.inserted, changed.updated) == (0, 1)


def test_import_rejects_unusable_files(sqlite_engine: Engine, tmp_path: Path) -> None:
    missing_column = tmp_path / "a.csv"
    missing_column.write_text("rater,interaction,level\nann,c1,3\n")
    empty = tmp_path / "b.csv"
    empty.write_text("")
    latin = tmp_path / "c.csv"
    latin.write_bytes("rater,interaction,criterion,level\nJos\xe9,c1,x,1\n".encode("latin-1"))

    with pytest.raises(CalibrationError, match=r"lacks the column\(s\) criterion"):
        import_ratings(sqlite_engine, missing_column, RUBRICS)
    with pytest.raises(CalibrationError, match="is empty"):
        import_ratings(sqlite_engine, empty, RUBRICS)
    with pytest.raises(CalibrationError, match="not UTF-8"):
        import_ratings(sqlite_engine, latin, RUBRICS)
    with pytest.raises(CalibrationError, match="No file"):
        import_ratings(sqlite_engine, tmp_path / "none.csv", RUBRICS)


# -- the gate -------------------------------------------------------------------------------


async def test_gate_passes_when_people_and_judge_agree(db_engine: Engine, tmp_path: Path) -> None:
    calls = _calls(15)  # acknowledge_concern applies to 10 of them, the gate's minimum
    await _scored_org(db_engine, calls)
    path = _write_ratings(tmp_path / "r.csv", calls, ["ann", "bob", "cat"], _as_judge)
    import_ratings(db_engine, path, RUBRICS)

    report = calibration_report(db_engine, RUBRICS, SETTINGS, now=at(20))

    (rubric,) = report.rubrics
    assert rubric.judge == "keyword@1" and rubric.live and rubric.recorded
    verify = _by_criterion(report, "verify_identity")
    assert (verify.calls, verify.raters, verify.humans.n) == (15, ["ann", "bob", "cat"], 15)
    assert verify.humans.exact.value == 1.0 and verify.humans.kappa.value == pytest.approx(1.0)
    assert verify.humans.alpha.value == pytest.approx(1.0)
    assert verify.judge is not None and verify.judge.kappa.value == pytest.approx(1.0)
    assert verify.judge.n == 15 and verify.failures == [] and verify.divergent == []
    acknowledge = _by_criterion(report, "acknowledge_concern")
    assert acknowledge.live and acknowledge.judge is not None and acknowledge.judge.n == 10
    with Session(db_engine) as session:
        version = session.get(RubricVersion, SUPPORT.version)
        gates = session.exec(select(CriterionGate)).all()
    assert version is not None and version.live
    assert sorted(g.criterion_id for g in gates if g.live) == sorted(CRITERIA)
    assert all(g.live_since == at(20) and g.judge == "keyword@1" for g in gates)


def _disagreeing(rater: str, number: int, kind: str, criterion: str) -> int | None:
    level = JUDGE_LEVEL[kind][criterion]
    if criterion == "confirm_resolution" and number % 2 == 0 and rater == "bob":
        return 3 if level == 1 else 1  # ann and bob differ on 8 of 15 calls, by two on 6
    if criterion == "follow_process" and kind == "good":
        return 2  # people agree with each other, not with the judge
    return level


async def test_gate_names_failures_divergent_calls_and_rewrites(
    db_engine: Engine, tmp_path: Path
) -> None:
    calls = _calls(15)
    await _scored_org(db_engine, calls)
    path = _write_ratings(tmp_path / "r.csv", calls, ["ann", "bob"], _disagreeing)
    import_ratings(db_engine, path, RUBRICS)

    report = calibration_report(db_engine, RUBRICS, SETTINGS, now=at(20))

    (rubric,) = report.rubrics
    assert not rubric.live
    assert [c.criterion.id for c in rubric.criteria if c.live] == [
        "verify_identity",
        "acknowledge_concern",
    ]
    confirm = _by_criterion(report, "confirm_resolution")
    assert confirm.humans.exact.value == pytest.approx(7 / 15)
    assert "raters agree exactly on 47% of calls; the gate needs 85%" in confirm.failures
    assert confirm.wide_share == pytest.approx(6 / 15)
    assert confirm.rewrite is not None and "more than one level apart on" in confirm.rewrite
    assert confirm.ties == 8
    widest = confirm.divergent[0]
    assert widest.spread == 2 and widest.levels.keys() == {"ann", "bob"}
    spreads = [d.spread for d in confirm.divergent]
    assert spreads == [2] * 6 + [1] * 2
    process = _by_criterion(report, "follow_process")
    assert process.humans.exact.value == 1.0 and process.rewrite is None
    assert any(
        f.startswith("the judge and the consensus agree exactly on 67%") for f in process.failures
    )
    with Session(db_engine) as session:
        version = session.get(RubricVersion, SUPPORT.version)
        gates = {g.criterion_id: g for g in session.exec(select(CriterionGate)).all()}
    assert version is not None and not version.live
    assert gates["verify_identity"].live and not gates["confirm_resolution"].live
    assert "47%" in (gates["confirm_resolution"].reason or "")


async def test_gate_needs_enough_calls_and_a_judge(db_engine: Engine, tmp_path: Path) -> None:
    calls = _calls(4)
    seed_org(db_engine, calls)
    path = _write_ratings(tmp_path / "r.csv", calls, ["ann", "bob"], _as_judge)
    import_ratings(db_engine, path, RUBRICS)

    report = calibration_report(db_engine, RUBRICS, SETTINGS, role="support")

    (rubric,) = report.rubrics
    assert rubric.judge is None and "run `coachloop score` first" in (rubric.judge_note or "")
    verify = rubric.criteria[0]
    assert verify.failures == [
        "only 4 calls rated by two or more people; the gate needs 10",
        "no judge scores to compare with the consensus",
    ]
    assert not rubric.recorded
    with pytest.raises(CalibrationError, match="No rubric for role `billing`"):
        calibration_report(db_engine, RUBRICS, SETTINGS, role="billing")
    with pytest.raises(CalibrationError, match="No human ratings for rubric `sales`"):
        calibration_report(db_engine, RUBRICS, SETTINGS, role="sales")


# -- drift ----------------------------------------------------------------------------------


def _sample_filled(rate: Callable[[str, str], int | None], sample: Path, out: Path) -> Path:
    """Fill a drawn sample as rater `dan` would, with levels from `rate(call, criterion)`."""
    with sample.open() as handle:
        rows = list(csv.DictReader(handle))
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            level = rate(row["interaction"], row["criterion"])
            writer.writerow(
                {**row, "rater": "dan", "level": "N/A" if level is None else str(level)}
            )
    return out


async def test_drift_sample_rechecks_the_judge_after_go_live(
    db_engine: Engine, tmp_path: Path
) -> None:
    calibration_calls = _calls(15)
    later_calls = _calls(9, first_day=18)
    await _scored_org(db_engine, calibration_calls + later_calls)
    import_ratings(
        db_engine,
        _write_ratings(tmp_path / "r.csv", calibration_calls, ["ann", "bob"], _as_judge),
        RUBRICS,
    )
    calibration_report(db_engine, RUBRICS, SETTINGS, now=at(17))

    sample = draw_sample(
        db_engine, RUBRICS, size=6, out=tmp_path / "sample.csv", seed=3, now=at(28)
    )

    assert (sample.calls, sample.available, sample.rows) == (6, 9, 24)
    assert sample.set_name == "sample-2026-11-28"
    kinds = {external_id: kind for external_id, _, _, kind in later_calls}

    def rate(external_id: str, criterion: str) -> int | None:
        level = JUDGE_LEVEL[kinds[external_id]][criterion]
        if criterion == "confirm_resolution":
            return 1 if level == 3 else 3 if level == 1 else 1
        return level

    filled = _sample_filled(rate, sample.path, tmp_path / "filled.csv")
    imported = import_ratings(db_engine, filled, RUBRICS, set_name=sample.set_name)
    assert imported.inserted == 24 and not imported.bad

    report = calibration_report(db_engine, RUBRICS, SETTINGS, now=at(29))

    drift = {d.criterion_id: d for d in report.rubrics[0].drift}
    assert drift["confirm_resolution"].status == "drifting"
    assert drift["confirm_resolution"].reasons[0].startswith("exact agreement 0%")
    assert drift["verify_identity"].status == "holding"
    assert drift["verify_identity"].calls == 6
    again = draw_sample(db_engine, RUBRICS, size=20, out=tmp_path / "s2.csv", seed=3)
    assert again.available == 3  # rated calls are not drawn twice


async def test_sample_needs_a_live_criterion(sqlite_engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(CalibrationError, match="No criterion of a current rubric is live yet"):
        draw_sample(sqlite_engine, RUBRICS, size=5, out=tmp_path / "s.csv")


# -- command line ---------------------------------------------------------------------------


async def test_cli_imports_reports_and_samples(
    sqlite_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COACHLOOP_CALIBRATION__BOOTSTRAP_RESAMPLES", "100")
    get_settings.cache_clear()
    calls = _calls(12)
    await _scored_org(sqlite_engine, calls + _calls(3, first_day=20))
    ratings = _write_ratings(tmp_path / "r.csv", calls, ["ann", "bob"], _disagreeing)
    with ratings.open("a") as handle:
        handle.write("ann,nope,verify_identity,2\n")
    url = str(sqlite_engine.url)
    runner = CliRunner()

    imported = runner.invoke(app, ["--database-url", url, "calibrate", "import", str(ratings)])
    reported = runner.invoke(
        app, ["--database-url", url, "calibrate", "report", "--rubric", "support"]
    )
    sampled = runner.invoke(
        app,
        [
            "--database-url",
            url,
            "calibrate",
            "sample",
            "--size",
            "2",
            "--since",
            "2026-11-01",
            "--out",
            str(tmp_path / "s.csv"),
        ],
    )

    get_settings.cache_clear()
    assert imported.exit_code == 0, imported.output
    assert "96 ratings stored" in imported.output
    assert "unknown interaction `nope`" in imported.output
    assert reported.exit_code == 0, reported.output
    assert "verify_identity" in reported.output and "live" in reported.output
    assert "rewrite" in reported.output
    assert sampled.exit_code == 0, sampled.output
    assert "calibrate import" in sampled.output
    assert (tmp_path / "s.csv").read_text().startswith("rater,interaction,source,criterion")
