from collections import Counter
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from typer.testing import CliRunner

import evaluators.judges
from app import app
from config.rubric import RubricLibrary
from evaluators.scoring import (
    NO_ROLE_REASON,
    NO_TURNS_REASON,
    ScoringError,
    coverage,
    no_rubric_reason,
    score_pending,
)
from store.models import Evaluation, RubricVersion, Score
from tests.evaluators.keyword_judge import JudgeCrashed, KeywordJudge, at, seed_org

RUBRICS = RubricLibrary.from_dir()
SUPPORT = RUBRICS.for_role("support")
GOOD_SEVEN = [
    (f"c{i}", ("ana", "ben", "cy")[i % 3], at(2 + i), "good" if i % 2 else "poor") for i in range(7)
]


def _counts(engine: Engine) -> tuple[int, int, int]:
    with Session(engine) as session:
        evaluations = session.exec(select(func.count()).select_from(Evaluation)).one()
        scores = session.exec(select(func.count()).select_from(Score)).one()
        distinct = session.exec(select(func.count(func.distinct(Evaluation.interaction_id)))).one()
    return evaluations, scores, distinct


async def test_every_call_is_scored_once_with_evidence(db_engine: Engine) -> None:
    org = seed_org(db_engine, GOOD_SEVEN)
    seen: list[tuple[int, int]] = []

    report = await score_pending(
        db_engine,
        KeywordJudge(),
        RUBRICS,
        batch_size=3,
        progress=lambda done, total: seen.append((done, total)),
    )

    assert (report.pending, report.scored, report.unscored, report.batches) == (7, 7, 0, 3)
    assert seen == [(0, 7), (3, 7), (6, 7), (7, 7)]
    assert report.prompt_tokens == 70
    assert _counts(db_engine) == (7, 7 * len(SUPPORT.criteria), 7)
    with Session(db_engine) as session:
        stored = session.get(RubricVersion, SUPPORT.version)
        assert stored is not None
        assert stored.content == SUPPORT.model_dump(mode="json")
        poor = session.exec(
            select(Evaluation).where(Evaluation.interaction_id == org.calls["c0"])
        ).one()
        good = session.exec(
            select(Evaluation).where(Evaluation.interaction_id == org.calls["c1"])
        ).one()
        scores = {
            s.criterion_id: s
            for s in session.exec(select(Score).where(Score.evaluation_id == good.id)).all()
        }
        poor_levels = {
            s.criterion_id: s.level
            for s in session.exec(select(Score).where(Score.evaluation_id == poor.id)).all()
        }

    assert (good.status, good.weighted_total, good.flagged, good.compliance_failed) == (
        "scored",
        3.0,
        False,
        False,
    )
    assert (poor.weighted_total, poor.flagged, poor.compliance_failed) == (1.0, True, True)
    assert poor_levels["acknowledge_concern"] is None
    assert good.rubric_version == SUPPORT.version and good.judge == "keyword@1"
    verify = scores["verify_identity"]
    assert verify.level == 3 and verify.confidence == 0.9
    assert verify.rep_id == org.reps["ben"]
    assert verify.scored_at == at(3)
    notice = next(c for c in verify.checks if c["id"] == "recording_notice")
    assert notice["observed"] is True and notice["turn"] == 0
    assert "recorded for training" in notice["quote"]


async def test_second_run_writes_nothing(db_engine: Engine) -> None:
    seed_org(db_engine, GOOD_SEVEN)
    await score_pending(db_engine, KeywordJudge(), RUBRICS, batch_size=4)
    before = _counts(db_engine)

    again = await score_pending(db_engine, KeywordJudge(), RUBRICS, batch_size=4)

    assert (again.pending, again.written, again.batches) == (0, 0, 0)
    assert _counts(db_engine) == before


async def test_resume_after_a_crash_mid_run_has_no_duplicates(db_engine: Engine) -> None:
    seed_org(db_engine, GOOD_SEVEN)
    crashing = KeywordJudge(crash_on_batch=3)

    with pytest.raises(JudgeCrashed):
        await score_pending(db_engine, crashing, RUBRICS, batch_size=2)
    assert _counts(db_engine)[0] == 4  # the two batches before the crash were kept

    resumed = await score_pending(db_engine, KeywordJudge(), RUBRICS, batch_size=2)

    assert (resumed.pending, resumed.scored) == (3, 3)
    evaluations, scores, distinct = _counts(db_engine)
    assert evaluations == distinct == 7
    assert scores == 7 * len(SUPPORT.criteria)


async def test_a_second_runner_racing_for_the_same_calls_writes_nothing_twice(
    db_engine: Engine,
) -> None:
    seed_org(db_engine, GOOD_SEVEN)
    other = KeywordJudge()
    other_reports = []

    async def other_runner_gets_there_first(batch: int) -> None:
        if batch == 1:
            other_reports.append(await score_pending(db_engine, other, RUBRICS, batch_size=2))

    first = KeywordJudge(before_batch=other_runner_gets_there_first)
    report = await score_pending(db_engine, first, RUBRICS, batch_size=4)

    assert other_reports[0].scored == 7
    assert (report.pending, report.scored, report.skipped) == (7, 0, 7)
    evaluations, scores, distinct = _counts(db_engine)
    assert evaluations == distinct == 7
    assert scores == 7 * len(SUPPORT.criteria)


async def test_unscored_calls_keep_their_reasons_and_can_be_retried(db_engine: Engine) -> None:
    org = seed_org(
        db_engine,
        [
            ("ok", "ana", at(2), "good"),
            ("muffled", "ana", at(3), "inaudible"),
            ("blank", "cy", at(4), "empty"),
            ("norole", "dee", at(5), "good"),
            ("billing", "eve", at(6), "good"),
        ],
    )

    report = await score_pending(db_engine, KeywordJudge(), RUBRICS, batch_size=10)

    assert (report.scored, report.unscored, report.unscored_written) == (1, 4, 2)
    assert report.reasons == Counter(
        {
            "transcript marked inaudible": 1,
            NO_TURNS_REASON: 1,
            NO_ROLE_REASON: 1,
            no_rubric_reason("billing"): 1,
        }
    )
    with Session(db_engine) as session:
        muffled = session.exec(
            select(Evaluation).where(Evaluation.interaction_id == org.calls["muffled"])
        ).one()
    assert (muffled.status, muffled.reason) == ("unscored", "transcript marked inaudible")

    plain = await score_pending(db_engine, KeywordJudge(), RUBRICS, batch_size=10)
    assert (plain.written, plain.unscored_written) == (0, 0)
    assert plain.reasons == Counter({NO_ROLE_REASON: 1, no_rubric_reason("billing"): 1})

    # the muffled call was transcribed again; a retry replaces its unscored evaluation
    with Session(db_engine) as session:
        from store.models import Turn

        turn = session.exec(select(Turn).where(Turn.interaction_id == org.calls["muffled"])).one()
        turn.text = "Hello, this call is recorded for training and quality purposes."
        session.add(turn)
        session.commit()
    retry = await score_pending(
        db_engine, KeywordJudge(), RUBRICS, batch_size=10, retry_unscored=True
    )

    assert (retry.scored, retry.retried) == (1, 2)
    assert retry.reasons[NO_TURNS_REASON] == 1
    with Session(db_engine) as session:
        rows = session.exec(
            select(Evaluation).where(Evaluation.interaction_id == org.calls["muffled"])
        ).all()
    assert [(r.status, r.reason) for r in rows] == [("scored", None)]


async def test_a_verdict_missing_a_criterion_is_set_aside(db_engine: Engine) -> None:
    seed_org(db_engine, GOOD_SEVEN[:3])

    report = await score_pending(
        db_engine, KeywordJudge(drop_criterion="follow_process"), RUBRICS, batch_size=3
    )

    assert report.scored == 0
    assert report.reasons == Counter({"judge gave no verdict for criteria: follow_process": 3})


async def test_a_judge_returning_too_few_results_is_an_error(sqlite_engine: Engine) -> None:
    seed_org(sqlite_engine, GOOD_SEVEN[:2])

    class Short(KeywordJudge):
        async def evaluate_many(self, transcripts, rubric):
            return (await super().evaluate_many(transcripts, rubric))[:1]

    with pytest.raises(ScoringError, match="one result per transcript"):
        await score_pending(sqlite_engine, Short(), RUBRICS, batch_size=5)


async def test_limit_and_since_narrow_the_run(sqlite_engine: Engine) -> None:
    seed_org(sqlite_engine, GOOD_SEVEN)

    first = await score_pending(sqlite_engine, KeywordJudge(), RUBRICS, batch_size=5, limit=2)
    later = await score_pending(sqlite_engine, KeywordJudge(), RUBRICS, batch_size=5, since=at(7))

    assert first.scored == 2
    assert later.scored == 2  # c5 and c6 start on or after the 7th
    with pytest.raises(ValueError, match="Batch size"):
        await score_pending(sqlite_engine, KeywordJudge(), RUBRICS, batch_size=0)


async def test_coverage_by_team_and_period(db_engine: Engine) -> None:
    seed_org(
        db_engine,
        [
            ("n1", "ana", at(2), "good"),  # week of Mon 2 Nov
            ("n2", "ben", at(3), "poor"),
            ("n3", "ana", at(10), "inaudible"),  # week of Mon 9 Nov
            ("n4", "ben", at(2, month=12), "good"),  # December
            ("s1", "cy", at(4), "poor"),
            ("s2", "dee", at(5), "good"),
            ("s3", "eve", at(5), "good"),
        ],
    )
    await score_pending(db_engine, KeywordJudge(), RUBRICS, batch_size=2)

    weekly = coverage(db_engine, period="week", rubrics=RUBRICS)

    rows = {(r.team, r.period_start): r for r in weekly.rows}
    assert set(rows) == {
        ("north", date(2026, 11, 2)),
        ("north", date(2026, 11, 9)),
        ("north", date(2026, 11, 30)),
        ("south", date(2026, 11, 2)),
    }
    north_first = rows[("north", date(2026, 11, 2))]
    assert (north_first.interactions, north_first.scored, north_first.flagged) == (2, 2, 1)
    assert north_first.not_applicable == Counter({"acknowledge_concern": 1})
    assert rows[("north", date(2026, 11, 9))].unscored_reasons == Counter(
        {"transcript marked inaudible": 1}
    )
    south = rows[("south", date(2026, 11, 2))]
    assert (south.interactions, south.scored, south.unscored) == (3, 1, 2)
    assert south.unscored_reasons == Counter({NO_ROLE_REASON: 1, no_rubric_reason("billing"): 1})
    total = weekly.total
    assert (total.interactions, total.scored, total.unscored, total.pending) == (7, 4, 3, 0)
    assert total.compliance_failed == 2

    monthly = coverage(db_engine, period="month", team="north", rubrics=RUBRICS)
    assert [(r.period_start, r.interactions) for r in monthly.rows] == [
        (date(2026, 11, 1), 3),
        (date(2026, 12, 1), 1),
    ]
    november = coverage(db_engine, period_start=at(1), period_end=at(1, month=12))
    assert november.total.interactions == 6
    other_judge = coverage(db_engine, judge="someone-else@1", rubrics=RUBRICS)
    assert (other_judge.total.scored, other_judge.total.pending) == (0, 5)
    with pytest.raises(ValueError, match="No team `west`; teams: north, south"):
        coverage(db_engine, team="west")


def test_cli_scores_and_reports_coverage(
    sqlite_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_org(sqlite_engine, GOOD_SEVEN)
    made: list[KeywordJudge] = []

    def make_keyword_judge(kind, settings, models_dir):
        assert kind == "offline"
        made.append(KeywordJudge())
        return made[-1]

    monkeypatch.setattr(evaluators.judges, "make_judge", make_keyword_judge)
    url = str(sqlite_engine.url)
    runner = CliRunner()

    scored = runner.invoke(
        app, ["--database-url", url, "score", "--judge", "offline", "--batch-size", "3"]
    )
    covered = runner.invoke(app, ["--database-url", url, "coverage", "--period", "month"])
    bad_team = runner.invoke(app, ["--database-url", url, "coverage", "--team", "west"])

    assert scored.exit_code == 0, scored.output
    assert len(made) == 1 and made[0].closed
    assert "scored 7" in scored.output
    assert covered.exit_code == 0, covered.output
    assert "north" in covered.output and "100%" in covered.output
    assert bad_team.exit_code == 1
    assert "No team `west`" in bad_team.output
    with Session(sqlite_engine) as session:
        assert session.exec(select(func.count(col(Evaluation.id)))).one() == 7


def test_judge_factory_explains_what_is_missing(tmp_path: Path) -> None:
    from config.settings import Settings
    from evaluators.judges import JudgeUnavailableError, _module, make_judge

    with pytest.raises(JudgeUnavailableError, match="No judge kind `gpt`; choose one of"):
        make_judge("gpt", Settings(), tmp_path)
    with pytest.raises(JudgeUnavailableError, match="COACHLOOP_LLM__BASE_URL"):
        make_judge("llm", Settings(), tmp_path)
    with pytest.raises(JudgeUnavailableError, match="no module `evaluators.nowhere`"):
        _module("evaluators.nowhere", "offline")
