"""What the listeners are given: the database, the rules, the practice driver, the coaching
pipeline (for approvals) and the web app's address; plus the few Slack chores they share."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from slack_sdk.errors import SlackApiError
from sqlalchemy.engine import Engine

from bot._types import SlackClient
from coaching.access import link_slack_user, person_for_slack
from coaching.graph import CoachingPipeline
from config.coaching import CoachingRules
from scenarios import PracticeDriver
from store.models import Person, utcnow

logger = logging.getLogger(__name__)

APOLOGY = (
    "Sorry, something went wrong on my side and I couldn't do that. Please try again in a "
    "minute; if it keeps happening, tell your coachloop admin (the details are in its log)."
)
NOT_LINKED = (
    "I don't know who you are in coachloop yet: your Slack account isn't linked to a person "
    "there. Ask your coachloop admin to add your Slack user id or your Slack e-mail address "
    "to the organisation file (`coachloop org import`)."
)


@dataclass
class Services:
    """The collaborators every listener receives.

    Args:
        engine: The database.
        rules: The coaching rules (thresholds for team gaps and the Home tab).
        practice: The practice driver, or None when practice is not available here.
        pipeline: The coaching pipeline, for answering cohort decisions; None disables it.
        web_base_url: The web app's public address, for links; None means no links.
        titles: Scenario titles by slug.
        clock: The time now (timezone-aware).
    """

    engine: Engine
    rules: CoachingRules = field(default_factory=CoachingRules)
    practice: PracticeDriver | None = None
    pipeline: CoachingPipeline | None = None
    web_base_url: str | None = None
    titles: Mapping[str, str] = field(default_factory=dict)
    clock: Callable[[], datetime] = utcnow
    chart: bool = True
    """Draw and upload the trend chart for `/team-gaps`."""
    _pipeline_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _seen_events: dict[str, None] = field(default_factory=dict)

    def link(self, path: str, **query: object) -> str | None:
        if not self.web_base_url:
            return None
        url = f"{self.web_base_url.rstrip('/')}/{path.lstrip('/')}"
        params = {k: v for k, v in query.items() if v is not None}
        return f"{url}?{urlencode(params)}" if params else url

    def dashboard_url(self, team_slug: str) -> str | None:
        return self.link(f"teams/{quote(team_slug)}")

    def voice_url(
        self, scenario: str | None = None, assignment_id: int | None = None
    ) -> str | None:
        """The web app's voice practice page for a scenario (and assignment), or its
        practice page when no scenario is named."""
        if scenario is None:
            return self.link("practice")
        return self.link(f"practice/voice/{quote(scenario)}", assignment=assignment_id)

    async def decide_cohort(self, decision_id: int, *, approved: bool, by: int) -> dict[str, Any]:
        """Answer a cohort decision on the pipeline (one at a time: its checkpointer is one
        connection)."""
        if self.pipeline is None:
            raise RuntimeError("the coaching pipeline is not open in this process")
        pipeline = self.pipeline
        async with self._pipeline_lock:
            return await asyncio.to_thread(
                pipeline.decide_cohort, decision_id, approved=approved, by=by, now=self.clock()
            )

    def first_time(self, event_id: str, *, keep: int = 2000) -> bool:
        """False when this event was seen before (Slack retries a delivery it thinks failed)."""
        if not event_id:
            return True
        if event_id in self._seen_events:
            return False
        self._seen_events[event_id] = None
        while len(self._seen_events) > keep:
            self._seen_events.pop(next(iter(self._seen_events)))
        return True


async def who(services: Services, client: SlackClient, slack_user_id: str) -> Person | None:
    """The person behind a Slack user: by the stored Slack id, else by their Slack e-mail
    (which is then stored)."""
    person = await asyncio.to_thread(person_for_slack, services.engine, slack_user_id)
    if person is not None:
        return person
    try:
        info = await client.users_info(user=slack_user_id)
    except SlackApiError as exc:
        logger.warning(
            "slack user lookup failed",
            extra={"slack_user": slack_user_id, "error": exc.response.get("error")},
        )
        return None
    email = ((info.get("user") or {}).get("profile") or {}).get("email")
    if not email:
        return None
    person = await asyncio.to_thread(link_slack_user, services.engine, slack_user_id, email)
    if person is not None:
        logger.info(
            "slack user linked", extra={"person_id": person.id, "slack_user": slack_user_id}
        )
    return person


async def dm_channel(client: SlackClient, slack_user_id: str) -> str:
    opened = await client.conversations_open(users=slack_user_id)
    return str(opened["channel"]["id"])


async def dm(client: SlackClient, slack_user_id: str, text: str, **kwargs: Any) -> None:
    """Post to the user's direct messages with the app."""
    channel = await dm_channel(client, slack_user_id)
    await client.chat_postMessage(channel=channel, text=text, **kwargs)


def session_id_for(channel: str, thread_ts: str) -> str:
    """A practice session lives in one DM thread; its id is derived from the thread."""
    return f"slack-{channel}-{thread_ts}"


def thread_of(session_id: str) -> tuple[str, str] | None:
    """The (channel, thread ts) of a session started in Slack, or None."""
    parts = session_id.split("-", 2)
    if len(parts) != 3 or parts[0] != "slack":
        return None
    return parts[1], parts[2]
