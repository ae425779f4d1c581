"""`/team-gaps` and `/practice` over HTTP: acknowledged at once, answered by response URL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import Session, select

import bot.listeners.commands as commands
from bot.services import APOLOGY
from store.models import Person
from tests.bot.conftest import Bot, eventually


def answer(bot: Bot, token: str = "cmd") -> dict[str, Any]:
    found = [body for t, body in bot.slack.responses if t == token]
    return found[-1] if found else {}


def text_of(body: dict[str, Any]) -> str:
    parts = [str(body.get("text", ""))]
    for block in body.get("blocks") or []:
        for key in ("text",):
            if isinstance(block.get(key), dict):
                parts.append(block[key]["text"])
        for f in block.get("fields") or []:
            parts.append(f["text"])
        for e in block.get("elements") or []:
            if isinstance(e, dict) and "text" in e and isinstance(e["text"], str):
                parts.append(e["text"])
    return "\n".join(parts)


async def test_team_gaps_for_the_teams_manager(bot: Bot) -> None:
    response = await bot.command("/team-gaps", "", "UMGR")

    assert response.status_code == 200
    body = await eventually(lambda: answer(bot))
    assert body["response_type"] == "ephemeral"
    shown = text_of(body)
    assert "North: team gaps" in shown
    assert "Acknowledges the concern" in shown or "acknowledge" in shown.lower()
    assert "3/4 reps (75%)" in shown
    assert "Cohort gap" in shown
    assert "Largest gaps" in shown and "Ada" in shown
    upload = await eventually(
        lambda: bot.slack.calls_to("files.completeUploadExternal", ok_only=True)
    )
    assert upload[0].body["channel_id"] == "DUMGR"
    [png] = bot.slack.uploads.values()
    assert png.startswith(b"\x89PNG")


@pytest.mark.parametrize("web_base_url", ["https://coach.example.com"])
async def test_team_gaps_links_the_dashboard_when_the_web_app_runs(bot: Bot) -> None:
    await bot.command("/team-gaps", "north 30d", "UADMIN")

    body = await eventually(lambda: answer(bot))
    urls = [
        e.get("url")
        for block in body["blocks"]
        if block["type"] == "actions"
        for e in block["elements"]
    ]
    assert urls == ["https://coach.example.com/teams/north"]


async def test_without_the_web_app_there_is_no_dashboard_link(bot: Bot) -> None:
    await bot.command("/team-gaps", "north", "UMGR")

    body = await eventually(lambda: answer(bot))
    assert not [b for b in body["blocks"] if b["type"] == "actions"]


@pytest.mark.parametrize(
    ("user", "text", "expected"),
    [
        ("UADA", "north", "team gaps are for a team's managers and for admins"),
        ("USOUTH", "north", "only the managers of `north` and admins can see its figures"),
        ("UADMIN", "nowhere", "There is no team `nowhere`"),
        ("USTRANGER", "north", "your Slack account isn't linked"),
        ("UMGR", "north east", "Use `/team-gaps [team] [period]`"),
    ],
)
async def test_team_gaps_refuses_politely_and_says_why(
    bot: Bot, user: str, text: str, expected: str
) -> None:
    await bot.command("/team-gaps", text, user)

    body = await eventually(lambda: answer(bot))
    assert expected in body["text"]
    assert "blocks" not in body or not body["blocks"]
    assert bot.slack.uploads == {}


async def test_an_admin_with_several_teams_is_asked_to_name_one(bot: Bot) -> None:
    await bot.command("/team-gaps", "30d", "UADMIN")

    body = await eventually(lambda: answer(bot))
    assert "name one: `north`, `south`" in body["text"]


async def test_a_slack_user_is_linked_by_their_email(bot: Bot) -> None:
    await bot.command("/practice", "", "UNEWREP")

    await eventually(lambda: answer(bot))
    with Session(bot.engine) as session:
        eve = session.exec(select(Person).where(Person.external_id == "eve")).one()
    assert eve.slack_user_id == "UNEWREP"


async def test_errors_never_echo_exception_text(bot: Bot, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("xoxb-leaked-token in postgres://user:pw@db")

    monkeypatch.setattr(commands, "team_gaps", broken)

    await bot.command("/team-gaps", "north", "UMGR")

    body = await eventually(lambda: answer(bot))
    assert body["text"] == APOLOGY
    assert "xoxb" not in str(bot.slack.responses)
    assert "postgres" not in str(bot.slack.responses)


async def test_practice_lists_the_reps_assignments(bot: Bot) -> None:
    bot.pipeline.decide_cohort(1, approved=True, by=bot.people.manager.id)

    await bot.command("/practice", "", "UADA")

    body = await eventually(lambda: answer(bot))
    [start] = [
        block["accessory"]
        for block in body["blocks"]
        if block["type"] == "section" and "accessory" in block
    ]
    assert start["action_id"] == "practise_now"
    assert '"scenario": "support-ack-easy"' in start["value"]


async def test_practice_with_nothing_assigned_says_so(bot: Bot) -> None:
    await bot.command("/practice", "list", "UDI")

    body = await eventually(lambda: answer(bot))
    assert "no practice assigned" in text_of(body)


async def test_practice_of_an_unknown_scenario_names_it(bot: Bot) -> None:
    await bot.command("/practice", "no-such-scenario", "UADA")

    body = await eventually(lambda: answer(bot))
    assert "no scenario `no-such-scenario`" in body["text"]
