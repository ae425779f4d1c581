"""The Slack app manifest: a workspace admin creates the app from it in one step, so it must
ask for every scope, command, event and interactivity setting the app relies on."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from bot.app import MANIFEST, manifest_text

BOT = Path(__file__).resolve().parents[2] / "bot"
# the Web API methods the app calls, with the bot scope each needs
SCOPES = {
    "chat_postMessage": "chat:write",
    "chat_update": "chat:write",
    "conversations_open": "im:write",
    "conversations_history": "im:history",
    "users_info": "users:read",
    "users_lookupByEmail": "users:read.email",
    "files_upload_v2": "files:write",
}


def manifest() -> dict[str, Any]:
    loaded = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def test_every_web_api_method_the_app_calls_has_its_scope() -> None:
    source = "\n".join(p.read_text() for p in BOT.rglob("*.py"))
    called = set(re.findall(r"\.(chat_\w+|conversations_\w+|users_\w+|files_\w+)\b", source))
    scopes = set(manifest()["oauth_config"]["scopes"]["bot"])

    assert called <= set(SCOPES), f"scope unknown for {called - set(SCOPES)}"
    assert {SCOPES[m] for m in called} <= scopes
    assert "commands" in scopes


def test_the_commands_the_app_answers_are_in_the_manifest() -> None:
    source = (BOT / "listeners" / "commands.py").read_text()
    answered = set(re.findall(r'app\.command\("(/[\w-]+)"\)', source))
    commands = manifest()["features"]["slash_commands"]

    assert {c["command"] for c in commands} == answered == {"/team-gaps", "/practice"}
    assert all(c["url"].endswith("/slack/events") for c in commands)


def test_events_interactivity_home_and_socket_mode() -> None:
    settings = manifest()["settings"]
    source = (BOT / "listeners" / "events.py").read_text()
    events = set(re.findall(r'app\.event\("(\w+)"\)', source))

    assert events == {"app_home_opened", "message"}
    assert set(settings["event_subscriptions"]["bot_events"]) == {"app_home_opened", "message.im"}
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["socket_mode_enabled"] is True
    assert manifest()["features"]["app_home"]["home_tab_enabled"] is True
    assert manifest()["features"]["app_home"]["messages_tab_enabled"] is True


def test_coachloop_slack_prints_the_manifest() -> None:
    import app as cli

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        result = CliRunner().invoke(cli.app, ["slack", "--manifest"])
    finally:  # the command sets up logging to the runner's stream, which then closes
        root.handlers[:], root.level = handlers, level

    assert result.exit_code == 0
    assert result.stdout == manifest_text()
