"""Request verification: url_verification, bad signatures and stale timestamps."""

from __future__ import annotations

import json
import logging
import time

import pytest
from pydantic import SecretStr

from bot.app import web_client
from config.settings import SlackSettings
from tests.bot.conftest import Bot, sign
from tests.fakes.slack_api import FakeSlackApi


async def test_url_verification_answers_the_challenge(bot: Bot) -> None:
    body = json.dumps({"token": "legacy", "challenge": "c-42", "type": "url_verification"})

    response = await bot.post(body, "application/json")

    assert response.status_code == 200
    assert response.json() == {"challenge": "c-42"}


async def test_a_bad_signature_is_refused(bot: Bot) -> None:
    body = json.dumps({"token": "legacy", "challenge": "c-42", "type": "url_verification"})
    timestamp = int(time.time())

    response = await bot.post(
        body, "application/json", timestamp=timestamp, signature=sign(body, timestamp, "wrong")
    )

    assert response.status_code == 401


async def test_a_stale_timestamp_is_refused(bot: Bot) -> None:
    body = json.dumps({"token": "legacy", "challenge": "c-42", "type": "url_verification"})
    stale = int(time.time()) - 10 * 60

    response = await bot.post(body, "application/json", timestamp=stale)

    assert response.status_code == 401


async def test_a_signed_command_with_a_tampered_body_is_refused(bot: Bot) -> None:
    timestamp = int(time.time())
    signature = sign("command=/team-gaps&user_id=UMGR", timestamp)

    response = await bot.post(
        "command=/team-gaps&user_id=UADMIN",
        "application/x-www-form-urlencoded",
        timestamp=timestamp,
        signature=signature,
    )

    assert response.status_code == 401
    assert bot.slack.responses == []


async def test_a_refused_request_is_logged_without_its_text(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    body = "command=/team-gaps&user_id=UMGR&user_name=ada.lovelace&text=north+private+words"
    stale = int(time.time()) - 10 * 60

    with caplog.at_level(logging.INFO):
        response = await bot.post(body, "application/x-www-form-urlencoded", timestamp=stale)

    assert response.status_code == 401
    refused = [r for r in caplog.records if r.name.startswith("slack_bolt")]
    assert refused, "Bolt logs the refusal"
    for record in caplog.records:
        assert "private" not in record.getMessage() and "ada.lovelace" not in record.getMessage()
    # the body is kept under `pii.detail` (which the log handler redacts unless told not to)
    assert any("pii.detail" in r.__dict__ for r in refused)


async def test_web_api_calls_are_logged_without_their_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with FakeSlackApi() as slack:
        client = web_client(
            SlackSettings(bot_token=SecretStr("xoxb-log-test"), api_base_url=slack.base_url)
        )
        with caplog.at_level(logging.DEBUG):
            await client.chat_postMessage(channel="DUADA", text="Ada, your private feedback")

    assert any(r.name.startswith("slack_sdk") for r in caplog.records)
    for record in caplog.records:
        assert "private feedback" not in record.getMessage()
        assert "xoxb-log-test" not in record.getMessage()
