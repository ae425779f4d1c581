import pytest

from coaching.notes import score_note
from tests.coaching.conftest import SUPPORT


@pytest.mark.parametrize(
    ("text", "behaviour", "moment", "next_step"),
    [
        (
            'At 2:10 you went straight to "account number please". Next time, restate the '
            "problem before asking for details.",
            True,
            True,
            True,
        ),
        ("Be more empathetic with customers.", False, False, False),
        ("Great attitude today!", False, False, False),
        ("You asked for the postcode before discussing the bill. Keep it up.", True, False, False),
        (
            "On the call with the double charge you never confirmed the refund date; "
            "practise the closing script before Friday.",
            True,
            True,
            True,
        ),
        ("Acknowledge the customer's concern before redirecting to process.", True, False, False),
    ],
)
def test_note_rubric(text: str, behaviour: bool, moment: bool, next_step: bool) -> None:
    quality = score_note(text, SUPPORT.criteria)

    assert (quality.names_behaviour, quality.cites_moment, quality.gives_next_step) == (
        behaviour,
        moment,
        next_step,
    )
    assert quality.score == behaviour + moment + next_step


def test_trait_words_are_noted() -> None:
    assert score_note("Be more empathetic.").trait_words is True
