"""Block Kit builders: what each message shows, escaping, limits and button values."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest

from bot import blocks
from coaching.disputes import DisputableScore
from coaching.home import AssignmentItem, FeedbackItem, Home, TeamGlance
from coaching.reports import CriterionStats, Period, RepCriterion, TeamGaps
from tests.bot.test_delivery import feedback_payload


def all_text(rendered: Any) -> str:
    return json.dumps(rendered, ensure_ascii=False)


def test_feedback_shows_levels_the_moment_and_what_good_looks_like() -> None:
    payload = feedback_payload(1)
    payload["assignment"] = {
        "id": 9,
        "scenario": "support-ack-easy",
        "title": "The double charge",
        "criterion_id": "acknowledge_concern",
        "reason": "mean 1.20 over 5 calls",
    }

    rendered = blocks.rep_feedback(payload)

    text = all_text(rendered)
    assert rendered[0] == {
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": "Feedback on your call of Mon 02 Nov",
            "emoji": True,
        },
    }
    assert "●○○ 1/3" in text
    assert "At 1:15:" in text and "> acknowledge_concern said at level 1" in text
    assert "*What good looks like:*" in text
    [buttons] = [b for b in rendered if b["type"] == "actions"]
    practise, dispute = buttons["elements"]
    assert json.loads(practise["value"]) == {"assignment_id": 9, "scenario": "support-ack-easy"}
    assert json.loads(dispute["value"]) == {"interaction_id": 7}


def test_feedback_at_the_bar_shows_no_quotes() -> None:
    rendered = blocks.rep_feedback(feedback_payload(3))

    text = all_text(rendered)
    assert "●●● 3/3" in text
    assert "What good looks like" not in text and "> " not in text


def test_people_text_is_escaped() -> None:
    payload = feedback_payload(1)
    payload["criteria"][0]["moment"]["quote"] = "<@U123> & <!channel> see <http://x|here>"

    text = all_text(blocks.rep_feedback(payload))

    assert "&lt;@U123&gt; &amp; &lt;!channel&gt;" in text
    assert "<!channel>" not in text


def test_cohort_alert_has_approve_and_decline_for_the_decision() -> None:
    payload = {
        "type": "cohort",
        "title": "Team gap: one response for the team",
        "decision_id": 4,
        "team": {"name": "North", "slug": "north"},
        "criterion": {"name": "Acknowledge"},
        "summary": "3 of 4 reps (75%) average below 1.8 in 30 days",
        "reps": [{"name": "Ada", "slack_user_id": "UADA", "mean": 1.0}],
        "moments": [
            {
                "quote": "Let me get your account",
                "time": "0:42",
                "level": 1,
                "at": "2026-11-02T09:00:00+00:00",
            }
        ],
        "suggestion": {
            "scenario": "support-ack-easy",
            "scenario_title": "The double charge",
            "team_session": {
                "title": "Team session: Acknowledge",
                "minutes": 30,
                "agenda": ["Play back"],
            },
        },
        "auto_approve_at": "2026-11-03T09:00:00+00:00",
    }

    rendered = blocks.cohort_alert(payload)

    text = all_text(rendered)
    assert "<@UADA> (1.00)" in text and "Let me get your account" in text
    assert "Team session: Acknowledge" in text and "The double charge" in text
    [buttons] = [b for b in rendered if b["type"] == "actions"]
    assert [(e["action_id"], e["value"]) for e in buttons["elements"]] == [
        (blocks.COHORT_APPROVE, "4"),
        (blocks.COHORT_DECLINE, "4"),
    ]
    decided = blocks.decided(rendered, "Approved")
    assert not [b for b in decided if b["type"] == "actions"] and decided[-1]["type"] == "context"


def test_manager_alert_quotes_the_evidence() -> None:
    payload = {
        "type": "individual",
        "title": "Individual coaching",
        "rep": {"name": "Ada", "slack_user_id": None},
        "criterion": {"name": "Acknowledge"},
        "summary": "mean 1.20 over 5 sessions",
        "why": {
            "sessions": [{"level": 1}, {"level": 2}],
            "moments": [
                {
                    "quote": "Account number?",
                    "time": "0:10",
                    "level": 1,
                    "at": "2026-11-02T09:00:00",
                }
            ],
        },
        "assignment": {"scenario": "support-ack-easy", "title": "The double charge"},
    }

    text = all_text(blocks.manager_alert(payload))

    assert "Ada on *Acknowledge*: mean 1.20 over 5 sessions" in text
    assert "> Account number?" in text and "at 0:10" in text
    assert "oldest first: 1, 2" in text and "The double charge" in text


@pytest.mark.parametrize("kind", sorted(blocks.RENDERERS))
def test_every_outbox_kind_renders(kind: str) -> None:
    rendered = blocks.outbox_message(kind, {})

    assert rendered and all("type" in b for b in rendered)


def test_an_unknown_kind_is_an_error() -> None:
    with pytest.raises(ValueError, match="`memo`"):
        blocks.outbox_message("memo", {})


def test_long_lists_stay_within_fifty_blocks_and_keep_their_buttons() -> None:
    payload = feedback_payload(1)
    payload["criteria"] = payload["criteria"] * 20

    rendered = blocks.rep_feedback(payload)

    assert len(rendered) == blocks.MAX_BLOCKS
    assert rendered[-1]["type"] == "actions"


def gaps() -> TeamGaps:
    period = Period(date(2026, 11, 1), date(2026, 12, 1))
    stats = CriterionStats(
        "acknowledge_concern",
        "Acknowledge",
        40,
        0,
        1.62,
        {1: 20, 2: 10, 3: 10},
        0.5,
        12,
        10,
        6,
        0.6,
        1.9,
        -0.28,
        True,
    )
    return TeamGaps(
        1,
        "north",
        "North",
        period,
        period.previous(),
        1.8,
        [stats],
        [],
        [{"name": "Ada", "criterion": "Acknowledge", "mean": 1.1, "sessions": 6}],
    )


def test_team_gaps_shows_each_criterion_with_trend_share_and_cohort_flag() -> None:
    rendered = blocks.team_gaps(gaps(), dashboard_url="https://coach.example/teams/north")

    text = all_text(rendered)
    assert "*Mean* 1.62  (▼ -0.28)" in text
    assert "*Below the bar* 6/10 reps (60%)" in text
    assert "Cohort gap" in text
    assert "Ada: Acknowledge 1.10 over 6 calls" in text
    assert rendered[-1]["elements"][0]["url"] == "https://coach.example/teams/north"


def test_dispute_modal_offers_only_scores_not_already_disputed() -> None:
    scores = [
        DisputableScore(1, "acknowledge_concern", "Acknowledge", 1, False),
        DisputableScore(2, "verify_identity", "Verify", 3, True),
    ]

    view = blocks.dispute_modal(scores, 7)

    assert view["callback_id"] == blocks.DISPUTE_SUBMIT
    assert json.loads(view["private_metadata"]) == {"interaction_id": 7}
    select = view["blocks"][1]["element"]
    assert [o["value"] for o in select["options"]] == ["1"]
    assert select["initial_option"]["value"] == "1"


def test_home_for_a_rep_and_for_a_manager() -> None:
    period = Period(date(2026, 11, 1), date(2026, 12, 1))
    names = {"acknowledge_concern": "Acknowledge"}
    rep = Home(
        person_id=1,
        access="rep",
        period=period,
        criterion_names=names,
        progress=[RepCriterion("acknowledge_concern", 6, 1.5, {1: 3, 2: 3, 3: 0}, 1.2, 0.3, True)],
        assignments=[
            AssignmentItem(
                3,
                "support-ack-easy",
                "acknowledge_concern",
                "Acknowledge",
                "easy",
                "why",
                datetime(2026, 11, 2, tzinfo=UTC),
            )
        ],
        feedback=[
            FeedbackItem(
                5,
                7,
                "call",
                datetime(2026, 11, 2, tzinfo=UTC),
                "1 to work on",
                [("Acknowledge", 1)],
            )
        ],
    )
    manager = Home(
        person_id=2,
        access="manager",
        period=period,
        criterion_names=names,
        teams=[TeamGlance(gaps(), 1, 2)],
    )

    rep_view = all_text(blocks.home(rep, {"support-ack-easy": "The double charge"}))
    manager_view = all_text(blocks.home(manager, {}, web_base_url="https://coach.example"))

    assert "*Acknowledge*  1.50 (▲ +0.30), 6 calls" in rep_view and "below the bar" in rep_view
    assert "The double charge" in rep_view and "1 to work on" in rep_view
    assert "1 team response(s) to approve · 2 dispute(s) to resolve" in manager_view
    assert "https://coach.example/teams" in manager_view
