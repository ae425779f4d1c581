"""Text practice in a DM thread: the thread's top message holds the briefing, the persona
answers every reply in the thread, and the feedback is posted there when the session ends."""

from __future__ import annotations

import logging

from bot import blocks
from bot._types import SlackClient
from bot.services import Services, dm_channel, session_id_for, thread_of
from scenarios import PersonaTurn, PracticeResult, ScenarioError, SessionStart
from store.models import Person

logger = logging.getLogger(__name__)


class PracticeUnavailable(RuntimeError):
    """Practice is not set up in this process (no judge or persona engine)."""


async def start_in_thread(
    services: Services,
    client: SlackClient,
    *,
    slack_user_id: str,
    rep: Person,
    scenario: str,
    assignment_id: int | None,
) -> SessionStart:
    """Open a DM thread for a practice session and let the persona speak first.

    Raises:
        PracticeUnavailable: No practice driver in this process.
        ScenarioError: Unknown scenario, or an assignment that is not the rep's.
    """
    driver = services.practice
    if driver is None:
        raise PracticeUnavailable()
    found = driver.library.get(scenario)
    persona = driver.library.persona_for(found)
    channel = await dm_channel(client, slack_user_id)
    top = await client.chat_postMessage(
        channel=channel,
        text=f"Practice: {found.title}",
        blocks=blocks.practice_intro(
            found.title, found.briefing.strip(), persona.name, found.turn_limit
        ),
    )
    thread_ts = str(top["ts"])
    session_id = session_id_for(channel, thread_ts)
    try:
        start = await driver.start_session(
            found.slug,
            rep_external_id=rep.external_id,
            assignment_id=assignment_id,
            channel="slack",
            session_id=session_id,
        )
    except ScenarioError:
        await client.chat_update(
            channel=channel,
            ts=thread_ts,
            text="This practice could not start.",
            blocks=[blocks.section(f"*{blocks.escape(found.title)}* could not start.")],
        )
        raise
    await client.chat_postMessage(
        channel=channel,
        thread_ts=thread_ts,
        text=f"{start.persona}: {start.opening}",
        blocks=blocks.persona_turn(start.persona, start.opening, session_id=session_id),
    )
    logger.info(
        "practice started in slack",
        extra={"session_id": session_id, "scenario": found.slug, "assignment_id": assignment_id},
    )
    return start


async def post_turn(client: SlackClient, session_id: str, persona: str, turn: PersonaTurn) -> None:
    """The persona's answer in the thread, and the feedback when the session has ended."""
    where = thread_of(session_id)
    assert where is not None
    channel, thread_ts = where
    if turn.text:
        await client.chat_postMessage(
            channel=channel,
            thread_ts=thread_ts,
            text=f"{persona}: {turn.text}",
            blocks=blocks.persona_turn(persona, turn.text),
        )
    if turn.ended and turn.result is not None:
        await post_result(client, session_id, turn.result)


async def post_result(client: SlackClient, session_id: str, result: PracticeResult) -> None:
    where = thread_of(session_id)
    assert where is not None
    channel, thread_ts = where
    result_blocks = blocks.practice_result(result)
    await client.chat_postMessage(
        channel=channel,
        thread_ts=thread_ts,
        text=blocks.fallback(result_blocks),
        blocks=result_blocks,
    )
