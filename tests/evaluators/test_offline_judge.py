"""The offline judge on the shipped support rubric: evidence, N/A, the level rule, learning."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from config.rubric import SHIPPED_RUBRIC_DIR, Rubric, load_rubric
from config.settings import Settings
from evaluators.base import Judge, Transcript, TurnView, Unscored, Verdict
from evaluators.judges import make_judge
from evaluators.offline import (
    MODELS_SUBDIR,
    LabelError,
    LabelledExample,
    LevelModel,
    OfflineJudge,
)
from tests.evaluators.minilm import shared_encoder

ACK = "acknowledge_concern"


@pytest.fixture(scope="module")
def rubric() -> Rubric:
    return load_rubric(SHIPPED_RUBRIC_DIR / "support.yaml")


@pytest.fixture
def judge() -> OfflineJudge:
    return OfflineJudge(shared_encoder())


def call(*turns: tuple[str, str], target: int | None = None) -> Transcript:
    views = [TurnView(idx=i, speaker=s, text=t, start_s=i * 5.0) for i, (s, t) in enumerate(turns)]
    return Transcript(turns=views, target_turn=target)


BILLING_CALL = call(
    ("agent", "Thanks for calling Harbor, you're through to Sam."),
    ("customer", "Hi. I've been charged twice for October and it's left me short for rent."),
    (
        "agent",
        "Just so you know, this call is recorded for training and quality purposes. "
        "Can I take the postcode on the account please?",
    ),
    ("customer", "It's BS1 4AB."),
    ("agent", "Thanks. And could you confirm your date of birth as well?"),
    ("customer", "Third of May, 1984."),
    ("agent", "Perfect, both of those match."),
    (
        "agent",
        "So you've been charged twice right before your rent is due, that's really stressful. "
        "I'm sorry about that.",
    ),
    ("agent", "Let me check the bill for this month. Yes, I can see the duplicate charge."),
    ("agent", "I've raised a refund for the duplicate charge of 42 pounds."),
    ("agent", "It will be back on your card within 3 to 5 working days."),
    ("agent", "Your reference number is HB-40213."),
    ("agent", "Does that sort out what you called about today?"),
    ("customer", "Yes, thanks."),
)


async def test_the_judge_follows_the_judge_protocol(judge: OfflineJudge) -> None:
    assert isinstance(judge, Judge)
    assert judge.name == "offline-minilm@1"


async def test_evidence_points_at_the_turn_time_and_sentence(
    judge: OfflineJudge, rubric: Rubric
) -> None:
    verdict = await judge.evaluate(BILLING_CALL, rubric)

    checks = {c.check_id: c for cv in verdict.criteria for c in cv.checks}
    notice = checks["recording_notice"]
    assert notice.observed and notice.turn == 2 and notice.start_s == 10.0
    assert notice.quote == (
        "Just so you know, this call is recorded for training and quality purposes."
    )
    asks = checks["asks_security_detail"]
    assert asks.turn == 2 and asks.quote == "Can I take the postcode on the account please?"
    assert checks["gives_reference"].turn == 11
    assert checks["gives_timeframe"].turn == 10
    for check in checks.values():
        if check.observed:
            assert check.quote is not None and check.turn is not None
            assert check.quote in BILLING_CALL.turns[check.turn].text
            assert check.similarity is not None and check.similarity >= 0.5


async def test_levels_follow_the_rubric_rule_from_the_checks(
    judge: OfflineJudge, rubric: Rubric
) -> None:
    verdict = await judge.evaluate(BILLING_CALL, rubric)

    assert verdict.levels() == {
        "verify_identity": 3,
        ACK: 3,
        "confirm_resolution": 3,
        "follow_process": 3,
    }
    for cv in verdict.criteria:
        observed = {c.check_id: c.observed for c in cv.checks}
        assert cv.level == rubric.criterion(cv.criterion_id).level_from_checks(observed)
        assert 0.5 <= cv.confidence <= 1.0
        assert "check rule" in cv.rationale


@pytest.mark.parametrize(
    ("reply", "level"),
    [
        ("Okay, account number please?", 1),
        ("Sorry to hear that, I understand.", 2),
        (
            "Oh no, so you've had no internet all weekend while working from home, that's a lot "
            "of lost time. I'm really sorry about that.",
            3,
        ),
    ],
)
async def test_acknowledging_the_concern_is_levelled_by_its_checks(
    judge: OfflineJudge, rubric: Rubric, reply: str, level: int
) -> None:
    transcript = call(
        ("customer", "My internet keeps dropping out, I've had nothing all weekend."),
        ("agent", reply),
    )

    verdict = await judge.evaluate(transcript, rubric)

    assert verdict.levels()[ACK] == level


async def test_criterion_is_not_applicable_when_no_concern_is_raised(
    judge: OfflineJudge, rubric: Rubric
) -> None:
    transcript = call(
        ("customer", "Hi, I'd like to add the sports channels to my package please."),
        ("agent", "Of course, I can add those for you today."),
    )

    verdict = await judge.evaluate(transcript, rubric)

    ack = next(cv for cv in verdict.criteria if cv.criterion_id == ACK)
    assert ack.level is None and ack.not_applicable
    assert ack.checks[0].check_id == "customer_raises_concern" and not ack.checks[0].observed
    assert "N/A" in ack.rationale


async def test_a_judged_turn_is_scored_alone_with_earlier_turns_as_context(
    judge: OfflineJudge, rubric: Rubric
) -> None:
    turns = (
        ("agent", "This call is recorded for training and quality purposes."),
        ("customer", "My router isn't working at all."),
        ("agent", "Have you tried turning it off and on again?"),
    )

    whole = await judge.evaluate(call(*turns), rubric)
    judged = await judge.evaluate(call(*turns, target=2), rubric)

    def observed(verdict: Verdict, check_id: str) -> bool:
        return any(
            c.observed for cv in verdict.criteria for c in cv.checks if c.check_id == check_id
        )

    assert observed(whole, "recording_notice")
    assert not observed(judged, "recording_notice")  # turn 0 is context, not the judged turn
    assert observed(judged, "customer_raises_concern")  # the customer's context still counts
    assert observed(judged, "straight_to_process")


async def test_a_bad_transcript_is_set_aside_and_the_rest_are_scored(
    judge: OfflineJudge, rubric: Rubric
) -> None:
    batch = [
        BILLING_CALL,
        Transcript(turns=[]),
        call(("agent", "Hello"), target=5),
        call(("agent", "   ")),
    ]

    results = await judge.evaluate_many(batch, rubric)

    assert not isinstance(results[0], Unscored)
    assert [r.reason for r in results[1:] if isinstance(r, Unscored)] == [
        "the transcript has no turns",
        "target_turn 5 is outside the 1 turns",
        "every turn of the transcript is empty",
    ]
    with pytest.raises(Unscored, match="no turns"):
        await judge.evaluate(Transcript(turns=[]), rubric)


# -- learning from labels -----------------------------------------------------------------------

COMPLAINTS = [
    "My internet keeps dropping out every evening.",
    "I've been charged twice this month.",
    "My router has stopped working again.",
    "The TV box keeps freezing during the football.",
    "My broadband keeps cutting out at night.",
    "I was billed twice for last month, this is the third time I've called.",
]
REPLIES = {
    1: [
        "Okay, account number please.",
        "Can you restart the router first?",
        "What's the postcode?",
        "Right, I need your full name.",
    ],
    2: [
        "Sorry about that.",
        "I understand, sorry.",
        "Oh dear, I apologise.",
        "Sorry to hear that.",
    ],
    3: [
        "So that's happened again and it's cost you time you needed, that's really frustrating.",
        "That has left you out of pocket this month, which must be worrying.",
        "You've had this several times now and still nothing works, that's a lot to put up with.",
        "So it's ruined your evenings again, I can see why you're fed up.",
    ],
}


def labelled(complaints: list[str], replies: dict[int, list[str]]) -> list[LabelledExample]:
    return [
        LabelledExample(call(("customer", c), ("agent", r), target=1), level)
        for level, texts in replies.items()
        for c, r in itertools.product(complaints, texts)
    ]


TRAIN = labelled(COMPLAINTS[:4], {lvl: texts[:3] for lvl, texts in REPLIES.items()})
HELD_OUT = labelled(COMPLAINTS[4:], {lvl: texts[3:] for lvl, texts in REPLIES.items()})


async def test_learning_sets_levels_and_says_how_many_labels(
    judge: OfflineJudge, rubric: Rubric
) -> None:
    assert judge.labels_learnt(rubric)[ACK] == 0

    model = await judge.learn(rubric, ACK, TRAIN, save=False)
    results = await judge.evaluate_many([e.transcript for e in HELD_OUT], rubric)

    assert model.n_labels == len(TRAIN) == 36
    assert model.label_counts == {1: 12, 2: 12, 3: 12}
    assert judge.labels_learnt(rubric) == {
        "verify_identity": 0,
        ACK: 36,
        "confirm_resolution": 0,
        "follow_process": 0,
    }
    levels = []
    for result in results:
        assert not isinstance(result, Unscored)
        ack = next(cv for cv in result.criteria if cv.criterion_id == ACK)
        assert "learnt from 36 human labels" in ack.rationale
        assert ack.checks  # the checks still give the evidence
        levels.append(ack.level)
    right = sum(lvl == e.level for lvl, e in zip(levels, HELD_OUT, strict=True))
    assert right >= 5  # of 6 unseen replies


async def test_learnt_model_round_trips_through_the_models_folder(
    rubric: Rubric, tmp_path: Path
) -> None:
    first = OfflineJudge(shared_encoder(), models_dir=tmp_path)
    await first.learn(rubric, ACK, TRAIN)
    path = tmp_path / MODELS_SUBDIR / rubric.version / f"{ACK}.npz"

    second = OfflineJudge(shared_encoder(), models_dir=tmp_path)
    held_out = [e.transcript for e in HELD_OUT]
    a = await first.evaluate_many(held_out, rubric)
    b = await second.evaluate_many(held_out, rubric)

    assert path.is_file() and path.stat().st_size < 100_000
    assert second.labels_learnt(rubric)[ACK] == 36
    assert [r.levels() for r in a if not isinstance(r, Unscored)] == [
        r.levels() for r in b if not isinstance(r, Unscored)
    ]
    loaded = LevelModel.load(path)
    assert loaded.rubric_version == rubric.version and loaded.criterion_id == ACK
    assert len(loaded.fingerprints) == 36


async def test_the_judge_the_commands_build_uses_the_models_learnt_before(
    rubric: Rubric, tmp_path: Path
) -> None:
    learner = OfflineJudge(shared_encoder(), models_dir=tmp_path)
    await learner.learn(rubric, ACK, TRAIN)

    judge = make_judge("offline", Settings(), tmp_path)

    assert isinstance(judge, OfflineJudge)
    assert judge.labels_learnt(rubric)[ACK] == 36


async def test_a_corrupt_model_file_is_reported_with_its_path(
    rubric: Rubric, tmp_path: Path
) -> None:
    path = tmp_path / MODELS_SUBDIR / rubric.version / f"{ACK}.npz"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a model")
    judge = OfflineJudge(shared_encoder(), models_dir=tmp_path)

    with pytest.raises(Exception, match="not a level model"):
        judge.labels_learnt(rubric)


async def test_a_transcript_it_learnt_from_is_scored_by_the_rule(
    judge: OfflineJudge, rubric: Rubric
) -> None:
    await judge.learn(rubric, ACK, TRAIN, save=False)

    verdict = await judge.evaluate(TRAIN[0].transcript, rubric)

    ack = next(cv for cv in verdict.criteria if cv.criterion_id == ACK)
    assert "check rule" in ack.rationale


async def test_items_about_to_be_scored_are_left_out_of_training(
    judge: OfflineJudge, rubric: Rubric
) -> None:
    model = await judge.learn(
        rubric, ACK, TRAIN, save=False, exclude=[e.transcript for e in TRAIN[:6]]
    )

    assert model.n_labels == 30


async def test_learning_rejects_bad_labels(judge: OfflineJudge, rubric: Rubric) -> None:
    with pytest.raises(LabelError, match="at least 10 labelled examples"):
        await judge.learn(rubric, ACK, TRAIN[:5])
    with pytest.raises(LabelError, match="covering two levels"):
        await judge.learn(rubric, ACK, [e for e in TRAIN if e.level == 1])
    with pytest.raises(LabelError, match="is 4; levels are 1, 2, 3"):
        await judge.learn(rubric, ACK, [*TRAIN, LabelledExample(TRAIN[0].transcript, 4)])
    with pytest.raises(KeyError, match="known: verify_identity, acknowledge_concern"):
        await judge.learn(rubric, "empathy", TRAIN)
