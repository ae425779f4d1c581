"""Slash commands: `/team-gaps [team] [period]` for managers, `/practice [scenario]` for reps.

Both acknowledge at once (Slack allows 3 seconds) and answer through the response URL.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot import blocks
from bot._types import Ack, Respond, SlackClient
from bot.charts import trend_chart
from bot.practice import PracticeUnavailable, start_in_thread
from bot.services import APOLOGY, NOT_LINKED, Services, dm_channel, who
from coaching.access import AccessDenied, TeamChoiceNeeded, viewable_team
from coaching.home import open_assignments
from coaching.reports import Period, TeamGaps, parse_period, team_gaps, team_trend
from coaching.rubrics import criterion_names
from scenarios import ScenarioError, ScenarioNotFoundError

logger = logging.getLogger(__name__)

DEFAULT_PERIOD = "30d"
TEAM_GAPS_USAGE = (
    "Use `/team-gaps [team] [period]`, for example `/team-gaps north 30d`; a period is `30d`, "
    "a month like `2026-11`, or `2026-11-01..2026-11-30`."
)


def register(app: AsyncApp, services: Services) -> None:
    async def team_gaps_command(
        ack: Ack, command: dict[str, Any], respond: Respond, client: SlackClient
    ) -> None:
        await handle_team_gaps(services, ack=ack, command=command, respond=respond, client=client)

    async def practice_command(
        ack: Ack, command: dict[str, Any], respond: Respond, client: SlackClient
    ) -> None:
        await handle_practice(services, ack=ack, command=command, respond=respond, client=client)

    app.command("/team-gaps")(team_gaps_command)
    app.command("/practice")(practice_command)


def parse_team_gaps(text: str, services: Services) -> tuple[str | None, Period]:
    """The team slug (if named) and the period (default: the last 30 days).

    Raises:
        ValueError: More than one word that is not a period.
    """
    today = services.clock().date()
    team: str | None = None
    period: Period | None = None
    for word in text.split():
        try:
            period = parse_period(word, today)
            continue
        except ValueError:
            pass
        if team is not None:
            raise ValueError(f"two teams named: {team}, {word}")
        team = word.lower()
    return team, period or parse_period(DEFAULT_PERIOD, today)


def refusal(exc: AccessDenied) -> str:
    """A polite refusal that says why, worded here from the rule that refused."""
    yours = ", ".join(f"`{t}`" for t in exc.teams) or "none yet"
    if exc.rule == "reps_see_own":
        return (
            "Sorry, team gaps are for a team's managers and for admins. Your own criterion "
            "trends, practice and feedback are on your coachloop Home tab."
        )
    if exc.rule == "no_teams":
        return (
            "Sorry, you don't look after any team in coachloop yet, so there is nothing to "
            "show. An admin can add you as a team's manager."
        )
    if exc.rule == "no_such_team":
        return f"There is no team `{exc.team}`. Teams: {yours}."
    if exc.rule == "not_their_team":
        return (
            f"Sorry, only the managers of `{exc.team}` and admins can see its figures. "
            f"The teams you look after: {yours}."
        )
    if exc.rule == "not_team_manager":
        return "Sorry, only this team's managers and admins can answer a team response."
    if exc.rule == "not_reps_manager":
        return "Sorry, only the rep's managers and admins can resolve this dispute."
    return "Sorry, that is no longer there."


async def handle_team_gaps(
    services: Services,
    *,
    ack: Ack,
    command: dict[str, Any],
    respond: Respond,
    client: SlackClient,
) -> None:
    await ack()

    user_id = str(command.get("user_id", ""))
    try:
        team_arg, period = parse_team_gaps(str(command.get("text", "")), services)
    except ValueError:
        await respond(response_type="ephemeral", text=TEAM_GAPS_USAGE)
        return
    try:
        viewer = await who(services, client, user_id)
        if viewer is None:
            await respond(response_type="ephemeral", text=NOT_LINKED)
            return
        team = await asyncio.to_thread(viewable_team, services.engine, viewer, team_arg)
        assert team.id is not None
        gaps = await asyncio.to_thread(
            team_gaps, services.engine, team.id, period, rules=services.rules
        )
    except AccessDenied as exc:
        logger.info("team gaps refused", extra={"slack_user": user_id, "rule": exc.rule})
        await respond(response_type="ephemeral", text=refusal(exc))
        return
    except TeamChoiceNeeded as exc:
        teams = ", ".join(f"`{t}`" for t in exc.teams)
        await respond(
            response_type="ephemeral",
            text=f"You look after several teams; name one: {teams}. {TEAM_GAPS_USAGE}",
        )
        return
    except Exception:
        logger.exception("team gaps failed", extra={"slack_user": user_id})
        await respond(response_type="ephemeral", text=APOLOGY)
        return

    answer = blocks.team_gaps(
        gaps, dashboard_url=services.dashboard_url(gaps.team_slug), chart=services.chart
    )
    await respond(response_type="ephemeral", text=blocks.fallback(answer), blocks=answer)
    logger.info(
        "team gaps answered",
        extra={"slack_user": user_id, "team": gaps.team_slug, "criteria": len(gaps.criteria)},
    )
    if services.chart:
        await send_chart(services, client, user_id, gaps)


async def send_chart(
    services: Services, client: SlackClient, slack_user_id: str, gaps: TeamGaps
) -> None:
    """Upload the criterion trend chart to the manager's messages with the app."""
    try:
        trend = await asyncio.to_thread(team_trend, services.engine, gaps.team_id, gaps.period)
        names = await asyncio.to_thread(criterion_names, services.engine)
        png = await asyncio.to_thread(
            trend_chart,
            trend,
            names,
            title=f"{gaps.team_name}: criterion means by week",
            threshold=gaps.threshold,
        )
        channel = await dm_channel(client, slack_user_id)
        await client.files_upload_v2(
            channel=channel,
            content=png,
            filename=f"team-gaps-{gaps.team_slug}-{gaps.period.start}.png",
            title=f"{gaps.team_name}: criterion trends, {gaps.period.label}",
            initial_comment=f"Criterion trends for {gaps.team_name}, {gaps.period.label}",
        )
    except Exception:
        logger.exception("team gaps chart failed", extra={"slack_user": slack_user_id})


async def handle_practice(
    services: Services,
    *,
    ack: Ack,
    command: dict[str, Any],
    respond: Respond,
    client: SlackClient,
) -> None:
    await ack()

    user_id = str(command.get("user_id", ""))
    wanted = str(command.get("text", "")).strip()
    try:
        rep = await who(services, client, user_id)
        if rep is None or rep.id is None:
            await respond(response_type="ephemeral", text=NOT_LINKED)
            return
        assignments = await asyncio.to_thread(open_assignments, services.engine, rep.id)
        if not wanted or wanted.lower() in ("list", "help"):
            menu = blocks.practice_menu(
                assignments, services.titles, voice_url=services.voice_url()
            )
            await respond(response_type="ephemeral", text=blocks.fallback(menu), blocks=menu)
            return
        assignment = next((a for a in assignments if a.scenario == wanted), None)
        start = await start_in_thread(
            services,
            client,
            slack_user_id=user_id,
            rep=rep,
            scenario=wanted,
            assignment_id=assignment.id if assignment else None,
        )
    except ScenarioNotFoundError:
        await respond(
            response_type="ephemeral",
            text=f"There is no scenario `{blocks.escape(wanted)}`. `/practice` lists yours.",
        )
        return
    except PracticeUnavailable:
        voice = services.voice_url(wanted)
        where = f" You can practise by voice: {voice}" if voice else ""
        await respond(
            response_type="ephemeral",
            text=f"Text practice isn't available in Slack here yet.{where}",
        )
        return
    except ScenarioError:
        logger.warning("practice not started", extra={"slack_user": user_id})
        await respond(
            response_type="ephemeral",
            text="I couldn't start that practice. `/practice` lists the practice assigned to you.",
        )
        return
    except Exception:
        logger.exception("practice command failed", extra={"slack_user": user_id})
        await respond(response_type="ephemeral", text=APOLOGY)
        return
    await respond(response_type="ephemeral", text=blocks.practice_started(start))
