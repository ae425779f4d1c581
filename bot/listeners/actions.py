"""Buttons and modals: Practise now, End, Dispute (and its modal), Approve / Decline a team
response, and resolving a dispute."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot import blocks
from bot._types import Ack, Respond, SlackClient
from bot.listeners.commands import refusal
from bot.practice import PracticeUnavailable, post_result, start_in_thread
from bot.services import APOLOGY, NOT_LINKED, Services, dm, thread_of, who
from coaching.access import AccessDenied, check_cohort_decider, check_dispute_resolver
from coaching.disputes import disputable_scores, open_dispute, resolve_dispute
from coaching.errors import ApprovalError, CoachingError
from scenarios import ScenarioError, SessionNotFoundError

logger = logging.getLogger(__name__)


def register(app: AsyncApp, services: Services) -> None:
    async def practise_now(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], client: SlackClient
    ) -> None:
        await handle_practise_now(services, ack=ack, body=body, action=action, client=client)

    async def practice_end(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], client: SlackClient
    ) -> None:
        await handle_practice_end(services, ack=ack, body=body, action=action, client=client)

    async def dispute_open(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], client: SlackClient
    ) -> None:
        await handle_dispute_open(services, ack=ack, body=body, action=action, client=client)

    async def dispute_submit(
        ack: Ack, body: dict[str, Any], view: dict[str, Any], client: SlackClient
    ) -> None:
        await handle_dispute_submit(services, ack=ack, body=body, view=view, client=client)

    async def cohort_answer(
        ack: Ack,
        body: dict[str, Any],
        action: dict[str, Any],
        respond: Respond,
        client: SlackClient,
    ) -> None:
        await handle_cohort_answer(
            services, ack=ack, body=body, action=action, respond=respond, client=client
        )

    async def dispute_resolve(
        ack: Ack,
        body: dict[str, Any],
        action: dict[str, Any],
        respond: Respond,
        client: SlackClient,
    ) -> None:
        await handle_dispute_resolve(
            services, ack=ack, body=body, action=action, respond=respond, client=client
        )

    async def open_link(ack: Ack) -> None:
        await ack()  # a link button: Slack opens the URL, the app only acknowledges

    app.action(blocks.PRACTISE_NOW)(practise_now)
    app.action(blocks.PRACTICE_END)(practice_end)
    app.action(blocks.DISPUTE_OPEN)(dispute_open)
    app.view(blocks.DISPUTE_SUBMIT)(dispute_submit)
    app.action(blocks.COHORT_APPROVE)(cohort_answer)
    app.action(blocks.COHORT_DECLINE)(cohort_answer)
    app.action(blocks.DISPUTE_UPHOLD)(dispute_resolve)
    app.action(blocks.DISPUTE_CHANGE)(dispute_resolve)
    app.action(blocks.OPEN_LINK)(open_link)


def _value(action: dict[str, Any]) -> dict[str, Any]:
    try:
        loaded = json.loads(str(action.get("value") or "{}"))
    except json.JSONDecodeError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _user(body: dict[str, Any]) -> str:
    return str((body.get("user") or {}).get("id", ""))


async def _tell(client: SlackClient, user_id: str, text: str) -> None:
    """Tell the user something in their messages with the app (never raises)."""
    try:
        await dm(client, user_id, text)
    except Exception:
        logger.exception("could not message the user", extra={"slack_user": user_id})


async def handle_practise_now(
    services: Services,
    *,
    ack: Ack,
    body: dict[str, Any],
    action: dict[str, Any],
    client: SlackClient,
) -> None:
    await ack()

    user_id = _user(body)
    value = _value(action)
    scenario = value.get("scenario")
    assignment_id = value.get("assignment_id")
    try:
        rep = await who(services, client, user_id)
        if rep is None:
            await _tell(client, user_id, NOT_LINKED)
            return
        if not isinstance(scenario, str):
            raise ScenarioError("the button names no scenario")
        await start_in_thread(
            services,
            client,
            slack_user_id=user_id,
            rep=rep,
            scenario=scenario,
            assignment_id=int(assignment_id) if assignment_id is not None else None,
        )
    except PracticeUnavailable:
        voice = services.voice_url(scenario, assignment_id) if isinstance(scenario, str) else None
        where = f" You can practise by voice: {voice}" if voice else ""
        await _tell(client, user_id, f"Text practice isn't available in Slack here yet.{where}")
    except ScenarioError:
        logger.warning("practice not started", extra={"slack_user": user_id})
        await _tell(
            client,
            user_id,
            "I couldn't start that practice: it may have been withdrawn or already "
            "completed. `/practice` lists the practice assigned to you.",
        )
    except Exception:
        logger.exception("practise now failed", extra={"slack_user": user_id})
        await _tell(client, user_id, APOLOGY)


async def handle_practice_end(
    services: Services,
    *,
    ack: Ack,
    body: dict[str, Any],
    action: dict[str, Any],
    client: SlackClient,
) -> None:
    await ack()

    user_id = _user(body)
    session_id = str(action.get("value") or "")
    where = thread_of(session_id)
    channel = str((body.get("channel") or {}).get("id", ""))
    if services.practice is None or where is None or where[0] != channel:
        return  # not a practice thread of this conversation
    try:
        result = await services.practice.end_session(session_id)
        await post_result(client, session_id, result)
    except SessionNotFoundError:
        await _tell(client, user_id, "That practice session is no longer there.")
    except Exception:
        logger.exception("practice end failed", extra={"session_id": session_id})
        await _tell(client, user_id, APOLOGY)


async def handle_dispute_open(
    services: Services,
    *,
    ack: Ack,
    body: dict[str, Any],
    action: dict[str, Any],
    client: SlackClient,
) -> None:
    await ack()

    user_id = _user(body)
    interaction_id = _value(action).get("interaction_id")
    try:
        rep = await who(services, client, user_id)
        if rep is None or rep.id is None:
            await _tell(client, user_id, NOT_LINKED)
            return
        if not isinstance(interaction_id, int):
            raise ValueError("the button names no interaction")
        scores = await asyncio.to_thread(disputable_scores, services.engine, interaction_id, rep.id)
        if not any(not s.open_dispute for s in scores):
            await _tell(
                client,
                user_id,
                "There is nothing left to dispute on that call: each score already has a "
                "dispute waiting for your manager.",
            )
            return
        await client.views_open(
            trigger_id=body["trigger_id"], view=blocks.dispute_modal(scores, interaction_id)
        )
    except Exception:
        logger.exception("dispute form failed", extra={"slack_user": user_id})
        await _tell(client, user_id, APOLOGY)


async def handle_dispute_submit(
    services: Services,
    *,
    ack: Ack,
    body: dict[str, Any],
    view: dict[str, Any],
    client: SlackClient,
) -> None:
    values = (view.get("state") or {}).get("values") or {}
    selected = ((values.get("criterion") or {}).get("score") or {}).get("selected_option") or {}
    reason = str(((values.get("reason") or {}).get("text") or {}).get("value") or "").strip()
    errors = {}
    if not selected.get("value"):
        errors["criterion"] = "Choose the score you think is wrong"
    if len(reason) < 5:
        errors["reason"] = "Say what the score missed, in a sentence or two"
    if errors:
        await ack(response_action="errors", errors=errors)
        return
    await ack()

    user_id = _user(body)
    try:
        rep = await who(services, client, user_id)
        if rep is None or rep.id is None:
            await _tell(client, user_id, NOT_LINKED)
            return
        await asyncio.to_thread(
            open_dispute,
            services.engine,
            int(selected["value"]),
            reason,
            services.clock(),
            rep_id=rep.id,
        )
    except CoachingError:
        logger.warning("dispute refused", extra={"slack_user": user_id})
        await _tell(client, user_id, "I couldn't record that dispute: the score is not yours.")
        return
    except Exception:
        logger.exception("dispute failed", extra={"slack_user": user_id, "pii.text": reason})
        await _tell(client, user_id, APOLOGY)
        return
    logger.info("dispute sent", extra={"slack_user": user_id, "pii.text": reason})
    await _tell(
        client,
        user_id,
        "Thanks: your dispute is with your manager, with the moment the judge used and your "
        "reason. You'll hear back here.",
    )


async def handle_cohort_answer(
    services: Services,
    *,
    ack: Ack,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: Respond,
    client: SlackClient,
) -> None:
    await ack()

    user_id = _user(body)
    approved = action.get("action_id") == blocks.COHORT_APPROVE
    original = (body.get("message") or {}).get("blocks") or []
    try:
        decision_id = int(str(action.get("value")))
        person = await who(services, client, user_id)
        if person is None or person.id is None:
            await respond(response_type="ephemeral", replace_original=False, text=NOT_LINKED)
            return
        decision = await asyncio.to_thread(
            check_cohort_decider, services.engine, person, decision_id
        )
        if decision.status != "pending":
            note = f"Already {decision.status.replace('_', ' ')}."
            await respond(replace_original=True, text=note, blocks=blocks.decided(original, note))
            return
        result = await services.decide_cohort(decision_id, approved=approved, by=person.id)
    except AccessDenied as exc:
        await respond(response_type="ephemeral", replace_original=False, text=refusal(exc))
        return
    except ApprovalError:
        note = "Someone answered this team response a moment ago."
        await respond(replace_original=True, text=note, blocks=blocks.decided(original, note))
        return
    except Exception:
        logger.exception("cohort answer failed", extra={"slack_user": user_id})
        await respond(response_type="ephemeral", replace_original=False, text=APOLOGY)
        return
    if approved:
        note = f"<@{user_id}> approved: the shared practice is assigned to each rep below the bar."
    else:
        note = f"<@{user_id}> declined: nothing is assigned; individual coaching goes on."
    logger.info(
        "cohort decision answered",
        extra={"decision_id": decision_id, "status": result.get("status")},
    )
    await respond(replace_original=True, text=note, blocks=blocks.decided(original, note))


async def handle_dispute_resolve(
    services: Services,
    *,
    ack: Ack,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: Respond,
    client: SlackClient,
) -> None:
    await ack()

    user_id = _user(body)
    upheld = action.get("action_id") == blocks.DISPUTE_UPHOLD
    original = (body.get("message") or {}).get("blocks") or []
    try:
        dispute_id = int(str(action.get("value")))
        person = await who(services, client, user_id)
        if person is None or person.id is None:
            await respond(response_type="ephemeral", replace_original=False, text=NOT_LINKED)
            return
        dispute = await asyncio.to_thread(
            check_dispute_resolver, services.engine, person, dispute_id
        )
        if dispute.status != "open":
            note = f"Already resolved ({dispute.status})."
            await respond(replace_original=True, text=note, blocks=blocks.decided(original, note))
            return
        await asyncio.to_thread(
            resolve_dispute,
            services.engine,
            dispute_id,
            by=person.id,
            upheld=upheld,
            resolution="the score stands" if upheld else "the score is to be changed",
            now=services.clock(),
        )
    except AccessDenied as exc:
        await respond(response_type="ephemeral", replace_original=False, text=refusal(exc))
        return
    except Exception:
        logger.exception("dispute resolution failed", extra={"slack_user": user_id})
        await respond(response_type="ephemeral", replace_original=False, text=APOLOGY)
        return
    note = (
        f"<@{user_id}>: the score stands."
        if upheld
        else f"<@{user_id}>: the score is to be changed (re-score the interaction)."
    )
    await respond(replace_original=True, text=note, blocks=blocks.decided(original, note))
