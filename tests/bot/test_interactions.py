"""Buttons, modals and events over HTTP: practice in a DM thread, disputes, team responses
and the Home tab."""

from __future__ import annotations

import json
import time
from typing import Any

from sqlmodel import Session, select

from bot import blocks
from coaching.disputes import open_dispute
from store.db import session_scope
from store.models import (
    Assignment,
    CohortDecision,
    Dispute,
    Interaction,
    InteractionKind,
    OutboxMessage,
    Score,
)
from tests.bot.conftest import Bot, eventually
from tests.coaching.conftest import T0


def thread(bot: Bot, channel: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    messages = bot.slack.messages(channel)
    top = [m for m in messages if not m.get("thread_ts")]
    if not top:
        return {}, []
    return top[-1], [m for m in messages if m.get("thread_ts") == top[-1]["ts"]]


async def wait_for_thread(
    bot: Bot, channel: str, replies: int = 1
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    def ready() -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        top, found = thread(bot, channel)
        return (top, found) if len(found) >= replies else None

    return await eventually(ready)


def add_assignment(bot: Bot, scenario: str = "support-double-charge") -> int:
    ada = bot.people.reps[0]
    with session_scope(bot.engine) as session:
        assignment = Assignment(
            rep_id=ada.id,
            scenario_slug=scenario,
            criterion_id="acknowledge_concern",
            reason="mean 1.00 over 2 calls",
            dedupe_key="test:practice",
            created_at=T0,
        )
        session.add(assignment)
        session.flush()
        assert assignment.id is not None
        return assignment.id


def texts(message: dict[str, Any]) -> str:
    return json.dumps(message.get("blocks", [])) + str(message.get("text", ""))


async def test_practise_now_runs_a_roleplay_in_a_dm_thread_and_scores_it(bot: Bot) -> None:
    assignment_id = add_assignment(bot)

    value = json.dumps({"assignment_id": assignment_id, "scenario": "support-double-charge"})
    response = await bot.block_action("UADA", blocks.PRACTISE_NOW, value)

    assert response.status_code == 200
    top, replies = await wait_for_thread(bot, "DUADA")
    assert "Practice:" in texts(top)
    [opening] = replies
    end_button = [e for b in opening["blocks"] if b["type"] == "actions" for e in b["elements"]][0]
    session_id = end_button["value"]
    assert session_id == f"slack-DUADA-{top['ts']}"

    await bot.event(
        {
            "type": "message",
            "channel": "DUADA",
            "channel_type": "im",
            "user": "UADA",
            "text": "Calls are recorded for training and quality. Before I look at the "
            "account, can I take the postcode and your date of birth, please?",
            "ts": f"{time.time():.6f}",
            "thread_ts": top["ts"],
        },
        event_id="EvTurn1",
    )
    await eventually(lambda: len(thread(bot, "DUADA")[1]) == 2)

    await bot.block_action("UADA", blocks.PRACTICE_END, session_id)

    result = await eventually(
        lambda: [m for m in thread(bot, "DUADA")[1] if "Your feedback" in texts(m)]
    )
    assert "What good looks like" in texts(result[0]) or "●" in texts(result[0])
    with Session(bot.engine) as session:
        practice = session.exec(
            select(Interaction).where(Interaction.kind == InteractionKind.practice)
        ).one()
        assignment = session.get(Assignment, assignment_id)
    assert practice.external_id == session_id
    assert practice.rep_id == bot.people.reps[0].id
    assert assignment.status == "completed"


async def test_a_retried_event_is_answered_once(bot: Bot) -> None:
    add_assignment(bot)
    await bot.command("/practice", "support-double-charge", "UADA")
    top, _ = await wait_for_thread(bot, "DUADA")
    event = {
        "type": "message",
        "channel": "DUADA",
        "channel_type": "im",
        "user": "UADA",
        "text": "Hello, I can see the two payments on your account.",
        "ts": f"{time.time():.6f}",
        "thread_ts": top["ts"],
    }

    await bot.event(event, event_id="EvSame")
    await bot.event(event, event_id="EvSame")

    await eventually(lambda: len(thread(bot, "DUADA")[1]) >= 2)
    await bot.event({**event, "ts": f"{time.time():.6f}", "text": "ok"}, event_id="EvNext")
    await eventually(lambda: len(thread(bot, "DUADA")[1]) >= 3)
    assert len(thread(bot, "DUADA")[1]) == 3


async def test_messages_outside_practice_threads_are_left_alone(bot: Bot) -> None:
    await bot.event(
        {
            "type": "message",
            "channel": "DUADA",
            "channel_type": "im",
            "user": "UADA",
            "text": "hello there",
            "ts": "1780000000.000100",
            "thread_ts": "1780000000.000001",
        }
    )
    await bot.event({"type": "app_home_opened", "user": "UADA", "tab": "home"}, event_id="Ev2")

    await eventually(lambda: "UADA" in bot.slack.views)
    assert bot.slack.calls_to("chat.postMessage") == []


async def test_dispute_button_opens_a_modal_and_the_reason_reaches_the_manager(bot: Bot) -> None:
    call = bot.people.call_ids[0]

    await bot.block_action("UADA", blocks.DISPUTE_OPEN, json.dumps({"interaction_id": call}))

    [opened] = await eventually(lambda: bot.slack.calls_to("views.open", ok_only=True))
    view = opened.body["view"]
    assert view["callback_id"] == blocks.DISPUTE_SUBMIT
    options = view["blocks"][1]["element"]["options"]
    assert len(options) == 4
    with Session(bot.engine) as session:
        score = session.exec(
            select(Score).where(
                Score.interaction_id == call, Score.criterion_id == "acknowledge_concern"
            )
        ).one()
    assert str(score.id) in [o["value"] for o in options]

    response = await bot.interact(submission("UADA", view, score.id, "I said sorry first, at 0:40"))

    assert response.status_code == 200
    confirmation = await eventually(lambda: bot.slack.messages("DUADA"))
    with Session(bot.engine) as session:
        [dispute] = session.exec(select(Dispute)).all()
        [sent] = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "dispute")).all()
    assert dispute.score_id == score.id and dispute.reason == "I said sorry first, at 0:40"
    assert sent.recipient_id == bot.people.manager.id
    assert "your dispute is with your manager" in confirmation[-1]["text"]


def submission(
    user: str, view: dict[str, Any], score_id: int | None, reason: str
) -> dict[str, Any]:
    selected = {"selected_option": {"value": str(score_id)}} if score_id else {}
    return {
        "type": "view_submission",
        "team": {"id": "T0HARBOR"},
        "user": {"id": user},
        "api_app_id": "A0COACH",
        "view": {
            **view,
            "id": "V2",
            "state": {
                "values": {
                    "criterion": {"score": {"type": "static_select", **selected}},
                    "reason": {"text": {"type": "plain_text_input", "value": reason}},
                }
            },
        },
    }


async def test_an_empty_dispute_reason_is_sent_back_to_the_form(bot: Bot) -> None:
    view = blocks.dispute_modal([], bot.people.call_ids[0])

    response = await bot.interact(submission("UADA", view, None, "  "))

    assert response.json() == {
        "response_action": "errors",
        "errors": {
            "criterion": "Choose the score you think is wrong",
            "reason": "Say what the score missed, in a sentence or two",
        },
    }


async def test_a_rep_cannot_dispute_someone_elses_score(bot: Bot) -> None:
    with Session(bot.engine) as session:
        adas = session.exec(
            select(Score).where(Score.interaction_id == bot.people.call_ids[0])
        ).first()
    view = blocks.dispute_modal([], bot.people.call_ids[0])

    await bot.interact(submission("UBEN", view, adas.id, "that was not me at all"))

    refusal = await eventually(lambda: bot.slack.messages("DUBEN"))
    assert "not yours" in refusal[-1]["text"]
    with Session(bot.engine) as session:
        assert session.exec(select(Dispute)).all() == []


def cohort_message(bot: Bot) -> dict[str, Any]:
    with Session(bot.engine) as session:
        alert = session.exec(
            select(OutboxMessage).where(OutboxMessage.kind == "cohort_alert")
        ).one()
    return {"ts": "1780000000.000200", "blocks": blocks.cohort_alert(alert.payload)}


def decision(bot: Bot) -> CohortDecision:
    with Session(bot.engine) as session:
        return session.exec(select(CohortDecision)).one()


async def test_approve_resumes_the_coaching_graph_and_updates_the_alert(bot: Bot) -> None:
    pending = decision(bot)
    assert pending.status == "pending"

    await bot.block_action(
        "UMGR", blocks.COHORT_APPROVE, str(pending.id), message=cohort_message(bot)
    )

    body = await eventually(lambda: [b for t, b in bot.slack.responses if t == "act"])
    assert body[0]["replace_original"] is True
    assert not [b for b in body[0]["blocks"] if b["type"] == "actions"]
    assert "approved" in body[0]["text"]
    assert decision(bot).status == "approved"
    assert decision(bot).decided_by == bot.people.manager.id
    with Session(bot.engine) as session:
        assigned = session.exec(select(Assignment).where(Assignment.status == "open")).all()
    # reps already practising the criterion keep their practice; the others get the shared one
    assert {a.rep_id for a in assigned} == {r.id for r in bot.people.reps[:3]}
    assert [a for a in assigned if a.cohort_decision_id == pending.id]


async def test_decline_assigns_nothing(bot: Bot) -> None:
    await bot.block_action(
        "UADMIN", blocks.COHORT_DECLINE, str(decision(bot).id), message=cohort_message(bot)
    )

    await eventually(lambda: decision(bot).status == "declined")
    body = await eventually(lambda: [b for t, b in bot.slack.responses if t == "act"])
    assert "declined" in body[0]["text"]
    with Session(bot.engine) as session:
        shared = select(Assignment).where(Assignment.cohort_decision_id == decision(bot).id)
        assert session.exec(shared).all() == []


async def test_only_the_teams_managers_may_answer_a_team_response(bot: Bot) -> None:
    await bot.block_action(
        "USOUTH", blocks.COHORT_APPROVE, str(decision(bot).id), message=cohort_message(bot)
    )

    [body] = await eventually(lambda: [b for t, b in bot.slack.responses if t == "act"])
    assert body["response_type"] == "ephemeral" and body["replace_original"] is False
    assert "only this team's managers and admins" in body["text"]
    assert decision(bot).status == "pending"


async def test_the_manager_resolves_a_dispute(bot: Bot) -> None:
    with Session(bot.engine) as session:
        score = session.exec(
            select(Score).where(Score.interaction_id == bot.people.call_ids[0])
        ).first()
    dispute = open_dispute(bot.engine, score.id, "I did ask", T0, rep_id=score.rep_id)

    await bot.block_action("UBEN", blocks.DISPUTE_UPHOLD, str(dispute.id), token="ben")
    await bot.block_action("UMGR", blocks.DISPUTE_UPHOLD, str(dispute.id), token="mgr")

    refused = await eventually(lambda: [b for t, b in bot.slack.responses if t == "ben"])
    assert "only the rep's managers and admins" in refused[0]["text"]
    resolved = await eventually(lambda: [b for t, b in bot.slack.responses if t == "mgr"])
    assert "the score stands" in resolved[0]["text"]
    with Session(bot.engine) as session:
        closed = session.get(Dispute, dispute.id)
    assert closed.status == "upheld" and closed.resolved_by == bot.people.manager.id


async def test_home_tab_for_a_rep_and_for_a_manager(bot: Bot) -> None:
    add_assignment(bot)

    await bot.event({"type": "app_home_opened", "user": "UADA", "tab": "home"}, event_id="E1")
    await bot.event({"type": "app_home_opened", "user": "UMGR", "tab": "home"}, event_id="E2")

    def both() -> dict[str, dict[str, Any]] | None:
        return bot.slack.views if len(bot.slack.views) == 2 else None

    views = await eventually(both)
    rep_home = json.dumps(views["UADA"])
    assert views["UADA"]["type"] == "home"
    assert "Your criteria" in rep_home and "below the bar" in rep_home
    assert "practise_now" in rep_home and "Recent feedback" in rep_home
    manager_home = json.dumps(views["UMGR"])
    assert "North" in manager_home and "1 team response(s) to approve" in manager_home
    assert "cohort gap" in manager_home
