"""Whole practice sessions through the roleplay graph: stages, meter, endings, storage, resume."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from config.rubric import Rubric, RubricLibrary
from evaluators.base import Transcript, Unscored, Verdict
from personas import PersonaLibrary
from scenarios import (
    RepNotFoundError,
    ScenarioLibrary,
    ScenarioNotFoundError,
    SessionNotFoundError,
)
from scenarios.results import FinishedSession
from store.models import Assignment, Evaluation, Interaction, InteractionKind, Score, Speaker, Turn
from tests.scenarios.conftest import Practice, add_rep, add_scored_call, drive


@dataclass(frozen=True)
class Session_:
    scenario: str
    role: str
    turns: list[str]
    first_reaction: str
    """The persona's reaction to the first (poor) rep turn."""
    meter_trace: list[int]
    stages: list[str]
    released: list[str]


SESSIONS = [
    Session_(
        scenario="support-double-charge",
        role="support",
        turns=[
            "Okay, that's all done for you. Is there anything else?",
            "Calls are recorded for training and quality. Before I look at the account, can I "
            "take the postcode and your date of birth, please?",
            "I'm just looking at the charges on your account now.",
            "I've raised a refund of 27.99 for the second payment. It'll be back on your card "
            "within 3 to 5 working days. Does that sort out what you called about today?",
        ],
        first_reaction="Well, hang on. Done how? When do I actually get the money back?",
        meter_trace=[3, 5, 3, 3, 1],
        stages=["explain", "check", "resolve"],
        released=["security-details", "rent-due"],
    ),
    Session_(
        scenario="sales-moving-house-family",
        role="sales",
        turns=[
            "What I can do for you today is the 500 at 34.99.",
            "Tell me a bit about who's online in your house and when.",
            "So what matters most is Raj's video calls not freezing while the kids are gaming. "
            "Have I got that right?",
            "That's 34.99 a month for 24 months. The price goes up by a fixed 3 pounds each April "
            "and we write to you 30 days before. And you've got 14 days from activation to change "
            "your mind at no cost.",
        ],
        first_reaction="Right. Is that the right one, though? You don't know anything about us yet.",
        meter_trace=[2, 4, 2, 0, 0],
        stages=["intro", "recommend", "terms"],
        released=["upload-problem", "mobile-bills"],
    ),
    Session_(
        scenario="feedback-defensive-advisor-rushed-close",
        role="team-lead",
        turns=[
            "You come across as a bit abrupt with customers.",
            "Before I say anything, talk me through that engineer booking call on Tuesday as you "
            "remember it.",
            "So the booking screen hadn't confirmed the slot and you didn't want to give her the "
            "wrong day. That makes sense.",
            "You closed with 'right, anything else?' and no date for the engineer, so she rang "
            "back the next morning to ask when they were coming.",
        ],
        first_reaction="Abrupt? Says who? I'm efficient.",
        meter_trace=[5, 7, 5, 3, 1],
        stages=["open", "dig", "land"],
        released=["unsure-slot", "queue-pressure"],
    ),
]


@pytest.mark.parametrize("case", SESSIONS, ids=[s.role for s in SESSIONS])
async def test_whole_session_per_role(
    case: Session_,
    db_engine: Engine,
    practice: Practice,
    rubrics: RubricLibrary,
    library: ScenarioLibrary,
) -> None:
    scenario = library.get(case.scenario)
    rubric = rubrics.for_role(case.role)
    rep_id = add_rep(db_engine, "e-100", case.role)
    targeted = scenario.criterion_ids[0]
    for n, level in enumerate([1, 2]):
        add_scored_call(
            db_engine,
            rubrics,
            rep_id=rep_id,
            role=case.role,
            levels={targeted: level},
            external_id=f"call-{n}",
        )
    with Session(db_engine) as session:
        assignment = Assignment(
            rep_id=rep_id,
            scenario_slug=scenario.slug,
            criterion_id=targeted,
            reason="mean 1.5 on real calls",
            dedupe_key=f"test-{scenario.slug}",
        )
        session.add(assignment)
        session.commit()
        assignment_id = assignment.id

    async with practice.driver(engine=db_engine) as driver:
        start = await driver.start_session(scenario.slug, rep_external_id="e-100")
        answers = await drive(driver, start.session_id, case.turns)
        view = await driver.get_session(start.session_id)

    assert start.opening == " ".join(scenario.opening_line.split())
    assert start.persona == library.persona_for(scenario).name
    assert answers[0].text.startswith(case.first_reaction)
    assert answers[0].emotion == "frustrated"
    assert [a.ended for a in answers] == [False, False, False, True]
    result = answers[-1].result
    assert result is not None
    assert (result.outcome, result.end_reason) == ("resolved", "success")
    assert answers[-1].text in scenario.closing.resolved
    assert view.status == "ended"
    assert set(scenario.success.all_of) <= set(view.observed)

    # the stored practice interaction
    with Session(db_engine) as session:
        stored = session.exec(
            select(Interaction).where(Interaction.kind == InteractionKind.practice)
        ).one()
        turns = session.exec(
            select(Turn).where(Turn.interaction_id == stored.id).order_by(col(Turn.idx))
        ).all()
        evaluation = session.exec(
            select(Evaluation).where(Evaluation.interaction_id == stored.id)
        ).one()
        scores = {
            s.criterion_id: s.level
            for s in session.exec(select(Score).where(Score.evaluation_id == evaluation.id))
        }
        closed = session.get(Assignment, assignment_id)
    assert (stored.source, stored.external_id, stored.rep_id) == (
        "practice",
        start.session_id,
        rep_id,
    )
    assert stored.meta["meter_trace"] == case.meter_trace
    assert stored.meta["stages"] == case.stages
    assert stored.meta["released"] == case.released
    assert stored.meta["scenario"] == scenario.slug
    assert len(turns) == 2 * len(case.turns) + 1
    assert [t.speaker for t in turns[:3]] == [Speaker.customer, Speaker.agent, Speaker.customer]
    assert [t.text for t in turns if t.speaker == Speaker.agent] == case.turns
    assert all(t.start_s is not None for t in turns)
    assert evaluation.judge == "keyword@1" and evaluation.status == "scored"
    assert set(scores) == {c.id for c in rubric.criteria_for(case.role)}

    # immediate feedback: every criterion, targeted first, the level-3 anchor as the model
    assert result.interaction_id == stored.id
    assert [f.criterion_id for f in result.feedback[:2]] == list(scenario.criterion_ids)
    for item in result.feedback:
        assert item.level == scores[item.criterion_id]
        expected = " ".join(rubric.criterion(item.criterion_id).levels[3].anchor.split())
        assert " ".join(item.good_looks_like.split()) == expected
        if item.moment is not None:
            assert item.moment.quote
    # comparison with the rep's real calls on the targeted criteria
    by_criterion = {c.criterion_id: c for c in result.comparison}
    assert by_criterion[targeted].real_mean == pytest.approx(1.5)
    assert by_criterion[targeted].real_sessions == 2
    assert by_criterion[targeted].practice_level == scores[targeted]
    # the assignment is closed by this session
    assert closed is not None and closed.status == "completed"
    assert closed.practice_interaction_id == stored.id
    assert result.assignment_id == assignment_id


async def test_silence_nudges_then_the_persona_gives_up(
    practice: Practice, personas: PersonaLibrary
) -> None:
    async with practice.driver() as driver:
        start = await driver.start_session("support-double-charge")
        first = await driver.send_rep_turn(start.session_id, "")
        second = await driver.send_rep_turn(start.session_id, "   ")

    margaret = personas.get("margaret-okafor")
    assert not first.ended
    assert first.text in margaret.nudges
    assert second.ended
    assert second.result is not None
    assert (second.result.outcome, second.result.end_reason) == (
        "walked_out",
        "the rep went silent",
    )
    assert second.result.unscored_reason == "the rep said nothing, so there is nothing to score"


async def test_a_rep_turn_resets_the_silence_count(practice: Practice) -> None:
    async with practice.driver() as driver:
        start = await driver.start_session("support-double-charge")
        answers = await drive(driver, start.session_id, ["", "Mm, sorry, one moment.", ""])

    assert [a.ended for a in answers] == [False, False, False]


async def test_wrap_up_ends_cleanly_and_scores(practice: Practice) -> None:
    async with practice.driver() as driver:
        start = await driver.start_session("feedback-new-advisor-reference")
        answers = await drive(
            driver,
            start.session_id,
            [
                "On Wednesday's refund call you sorted the refund but didn't read the reference "
                "number back, so when the customer rang back on Thursday nobody could find the "
                "case.",
                "Let's wrap up there.",
            ],
        )

    last = answers[-1]
    assert last.ended and last.result is not None
    assert (last.result.outcome, last.result.end_reason) == ("unresolved", "wrap-up")
    assert last.result.scored
    assert last.result.note == "not saved: practice without a database"


async def test_time_box_ends_the_session(practice: Practice, library: ScenarioLibrary) -> None:
    async with practice.driver() as driver:
        start = await driver.start_session("support-double-charge")
        practice.clock.advance(library.get("support-double-charge").time_box_minutes * 60 + 1)
        answer = await driver.send_rep_turn(start.session_id, "Sorry to keep you waiting.")

    assert answer.ended and answer.result is not None
    assert answer.result.end_reason == "time box reached"
    assert answer.result.duration_s >= 480


async def test_turn_limit_ends_the_session(
    practice: Practice, library: ScenarioLibrary, personas: PersonaLibrary
) -> None:
    short = library.get("support-double-charge").model_copy(update={"turn_limit": 2})
    practice.library = ScenarioLibrary([short], personas=personas, company=library.company)
    async with practice.driver() as driver:
        start = await driver.start_session(short.slug)
        answers = await drive(driver, start.session_id, ["Sorry, one moment.", "Bear with me."])

    assert [a.ended for a in answers] == [False, True]
    assert answers[-1].turns_left == 0
    assert answers[-1].result is not None
    assert answers[-1].result.end_reason == "turn limit reached"


async def test_poor_turns_make_an_angry_persona_walk_out(
    practice: Practice, library: ScenarioLibrary
) -> None:
    async with practice.driver() as driver:
        start = await driver.start_session("support-missed-engineer-visit")
        answer = await driver.send_rep_turn(
            start.session_id, "I'm sorry about that. Can I take the account number?"
        )

    assert answer.ended and answer.result is not None
    assert answer.result.outcome == "walked_out"
    assert answer.text in library.get("support-missed-engineer-visit").closing.walked_out


async def test_session_survives_a_restart(practice: Practice, library: ScenarioLibrary) -> None:
    async with practice.driver() as first_process:
        start = await first_process.start_session("support-evening-dropouts")
        before = await first_process.send_rep_turn(
            start.session_id,
            "So it's dropping every evening between seven and nine, and this is the second time "
            "you've had to call about it this week. Let's find out what's going on.",
        )
    # a new process: new saver, new driver, same checkpoint file
    async with practice.driver() as second_process:
        view = await second_process.get_session(start.session_id)
        answers = await drive(
            second_process,
            start.session_id,
            [
                "I'm running a line test now while we talk. I can see the line dropping at 7:12 "
                "and at 8:40 last night.",
                "I've logged this as a line fault. Your reference number is HB-51877, that's H B "
                "5 1 8 7 7.",
            ],
        )
        after = await second_process.get_session(start.session_id)

    assert not before.ended
    assert view.status == "active" and len(view.turns) == 3
    assert "acknowledge_concern.good" in view.observed
    assert answers[-1].ended and answers[-1].result is not None
    assert answers[-1].result.outcome == "resolved"
    assert [t[1] for t in after.turns[:3]] == [t[1] for t in view.turns]
    assert len(after.turns) == 7


async def test_end_session_is_idempotent(practice: Practice) -> None:
    async with practice.driver() as driver:
        start = await driver.start_session("sales-flat-share-gaming")
        await driver.send_rep_turn(
            start.session_id, "Talk me through a normal evening in the flat: who's online?"
        )
        first = await driver.end_session(start.session_id)
        again = await driver.end_session(start.session_id)
        late = await driver.send_rep_turn(start.session_id, "Hello?")

    assert first == again
    assert first.end_reason == "ended by the rep"
    assert late.ended and late.result == first


async def test_errors_name_what_is_wrong(practice: Practice, db_engine: Engine) -> None:
    async with practice.driver(engine=db_engine) as driver:
        with pytest.raises(ScenarioNotFoundError, match="support-double-charge"):
            await driver.start_session("no-such-scenario")
        with pytest.raises(RepNotFoundError, match="e-404"):
            await driver.start_session("support-double-charge", rep_external_id="e-404")
        with pytest.raises(SessionNotFoundError, match="nope"):
            await driver.send_rep_turn("nope", "hello")


async def test_recording_again_finds_what_is_stored(practice: Practice, db_engine: Engine) -> None:
    rep_id = add_rep(db_engine, "e-7", "support")
    async with practice.driver(engine=db_engine) as driver:
        start = await driver.start_session("support-double-charge", rep_external_id="e-7")
        await driver.send_rep_turn(start.session_id, "Sorry, can you say that again?")
        result = await driver.end_session(start.session_id)
        view = await driver.get_session(start.session_id)
        again = await driver.context.recorder.record(
            FinishedSession(
                session_id=start.session_id,
                scenario=driver.library.get("support-double-charge"),
                turns=[(speaker, text, 0.0) for speaker, text in view.turns],
                started_at=datetime.now(UTC),
                duration_s=0.0,
                outcome="unresolved",
                end_reason="ended by the rep",
                engine="scripted",
                rep_id=rep_id,
                rep_external_id="e-7",
            )
        )

    with Session(db_engine) as session:
        interactions = session.exec(
            select(Interaction).where(Interaction.kind == InteractionKind.practice)
        ).all()
        evaluations = session.exec(select(Evaluation)).all()
    assert len(interactions) == 1 and len(evaluations) == 1
    assert again.interaction_id == result.interaction_id


class _BrokenJudge:
    """A judge whose endpoint is down: every call raises."""

    name = "keyword@1"

    async def evaluate(self, transcript: Transcript, rubric: Rubric) -> Verdict:
        raise ConnectionError("the judge endpoint is down")

    async def evaluate_many(
        self, transcripts: Sequence[Transcript], rubric: Rubric
    ) -> list[Verdict | Unscored]:
        raise ConnectionError("the judge endpoint is down")


async def test_a_session_that_failed_while_scoring_finishes_on_the_next_call(
    practice: Practice, db_engine: Engine
) -> None:
    add_rep(db_engine, "e-9", "support")
    working = practice.judge
    practice.judge = _BrokenJudge()
    async with practice.driver(engine=db_engine) as first_process:
        start = await first_process.start_session("support-double-charge", rep_external_id="e-9")
        with pytest.raises(ConnectionError):
            await first_process.send_rep_turn(start.session_id, "Let's wrap up.")

    practice.judge = working
    async with practice.driver(engine=db_engine) as second_process:
        view = await second_process.get_session(start.session_id)

    assert view.status == "ended"
    assert view.result is not None and view.result.end_reason == "wrap-up"
    assert view.result.interaction_id is not None
    with Session(db_engine) as session:
        assert len(session.exec(select(Evaluation)).all()) == 1
