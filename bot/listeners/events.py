"""Events: the Home tab opening, and replies in a practice thread."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot import blocks
from bot._types import SlackClient
from bot.practice import post_turn
from bot.services import APOLOGY, NOT_LINKED, Services, session_id_for, who
from coaching.home import home_for
from scenarios import SessionNotFoundError

logger = logging.getLogger(__name__)


def register(app: AsyncApp, services: Services) -> None:
    async def app_home_opened(event: dict[str, Any], client: SlackClient) -> None:
        await handle_app_home_opened(services, event=event, client=client)

    async def message(event: dict[str, Any], body: dict[str, Any], client: SlackClient) -> None:
        await handle_message(services, event=event, body=body, client=client)

    app.event("app_home_opened")(app_home_opened)
    app.event("message")(message)


async def handle_app_home_opened(
    services: Services, *, event: dict[str, Any], client: SlackClient
) -> None:
    if event.get("tab", "home") != "home":
        return
    user_id = str(event.get("user", ""))
    try:
        person = await who(services, client, user_id)
        if person is None:
            view: dict[str, Any] = {"type": "home", "blocks": [blocks.section(NOT_LINKED)]}
        else:
            home = await asyncio.to_thread(
                home_for, services.engine, person, services.clock().date(), rules=services.rules
            )
            view = blocks.home(home, services.titles, web_base_url=services.web_base_url)
    except Exception:
        logger.exception("home tab failed", extra={"slack_user": user_id})
        view = {"type": "home", "blocks": [blocks.section(APOLOGY)]}
    await client.views_publish(user_id=user_id, view=view)


async def handle_message(
    services: Services, *, event: dict[str, Any], body: dict[str, Any], client: SlackClient
) -> None:
    """A reply in a practice thread goes to the persona; every other message is left alone."""
    thread_ts = event.get("thread_ts")
    if (
        services.practice is None
        or event.get("channel_type") != "im"
        or event.get("bot_id")
        or event.get("subtype")
        or not thread_ts
        or thread_ts == event.get("ts")
    ):
        return
    if not services.first_time(str(body.get("event_id") or event.get("client_msg_id") or "")):
        return
    driver = services.practice
    session_id = session_id_for(str(event.get("channel")), str(thread_ts))
    text = str(event.get("text") or "")
    try:
        session = await driver.get_session(session_id)
    except SessionNotFoundError:
        return  # a thread that is not a practice session
    if session.status == "ended":
        return
    persona = driver.library.persona_for(driver.library.get(session.scenario)).name
    logger.debug("practice turn", extra={"session_id": session_id, "pii.text": text})
    try:
        turn = await driver.send_rep_turn(session_id, text)
        await post_turn(client, session_id, persona, turn)
    except Exception:
        logger.exception("practice turn failed", extra={"session_id": session_id})
        await client.chat_postMessage(
            channel=str(event.get("channel")), thread_ts=str(thread_ts), text=APOLOGY
        )
