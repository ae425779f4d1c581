"""`coachloop slack` as a process of its own, in HTTP mode and in Socket Mode, and the Slack
app inside the web app's server: it answers signed commands (or Socket Mode envelopes,
acknowledged by envelope id) and delivers the outbox, against the fake Slack API."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.app import BotConfigError, attach
from bot.delivery import EVENT_TYPE
from coaching.catalogue import load_catalogue
from config.rubric import RubricLibrary
from config.settings import Settings, SlackSettings
from store.db import make_engine, migrate
from store.models import OutboxMessage
from tests.bot.conftest import COACHING_SCENARIOS, COHORT_RULES, SECRET, People, seed, sign
from tests.bot.test_delivery import queue
from tests.fakes.slack_api import FakeSlackApi

ROOT = Path(__file__).resolve().parents[2]
BOT_TOKEN = "xoxb-serve-test"
APP_TOKEN = "xapp-1-A0COACH-serve-test"
READY = re.compile(r"coachloop Slack app (listening on (http://[^\s;]+)|connected to Slack)")


def wait_for(check: Any, *, within: float = 60.0, what: str = "the bot") -> Any:
    deadline = time.monotonic() + within
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not get there in time")
        time.sleep(0.05)


@dataclass
class Org:
    engine: Engine
    url: str
    people: People
    queued: list[int] = field(default_factory=list)


@pytest.fixture
def org(tmp_path: Path) -> Iterator[Org]:
    """The `north` team with two feedback DMs waiting in the outbox."""
    url = f"sqlite:///{tmp_path / 'coachloop.db'}"
    engine = make_engine(url)
    migrate(engine)
    people = seed(engine)
    queued = [queue(engine, people.reps[0], "ada-1"), queue(engine, people.reps[1], "ben-1")]
    yield Org(engine, url, people, queued)
    engine.dispose()


@dataclass
class SlackProcess:
    process: subprocess.Popen[str]
    lines: list[str]
    stderr: Path

    def ready_line(self) -> str:
        def found() -> str | None:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"coachloop slack exited ({self.process.returncode}): "
                    f"{self.stderr.read_text()[-3000:]}"
                )
            return next((line for line in self.lines if READY.search(line)), None)

        return str(wait_for(found, within=120, what="coachloop slack start-up"))

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(60)


def start(tmp_path: Path, org: Org, slack: FakeSlackApi, **env: str) -> SlackProcess:
    environ = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "COACHLOOP_DATABASE_URL": org.url,
        "COACHLOOP_DATA_DIR": str(tmp_path / "data"),
        "COACHLOOP_SLACK__BOT_TOKEN": BOT_TOKEN,
        "COACHLOOP_SLACK__API_BASE_URL": slack.base_url,
        "COACHLOOP_SLACK__HOST": "127.0.0.1",
        "COACHLOOP_SLACK__POLL_INTERVAL_S": "0.2",
        "COACHLOOP_SLACK__CHANNEL_INTERVAL_S": "0",
        "COACHLOOP_LOG_LEVEL": "INFO",
        **env,
    }
    stderr = tmp_path / "slack.stderr"
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py"), "slack", "--port", "0", "--no-practice"],
        cwd=tmp_path,  # no developer `.env` is read
        env=environ,
        stdout=subprocess.PIPE,
        stderr=stderr.open("w"),
        text=True,
    )
    lines: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)

    threading.Thread(target=read, daemon=True).start()
    return SlackProcess(process, lines, stderr)


def delivered(slack: FakeSlackApi) -> list[int]:
    return [
        int(m["metadata"]["event_payload"]["outbox_id"])
        for m in slack.all_messages
        if (m.get("metadata") or {}).get("event_type") == EVENT_TYPE
    ]


def statuses(engine: Engine) -> dict[int, str]:
    with Session(engine) as session:
        return {m.id or 0: m.status for m in session.exec(select(OutboxMessage)).all()}


def command_form(slack: FakeSlackApi, user: str, text: str, token: str) -> dict[str, str]:
    return {
        "token": "legacy",
        "team_id": "T0HARBOR",
        "user_id": user,
        "command": "/team-gaps",
        "text": text,
        "channel_id": "C0GENERAL",
        "response_url": slack.response_url(token),
        "trigger_id": "trig-1",
    }


def signed_post(url: str, form: dict[str, str]) -> httpx.Response:
    body = urlencode(form)
    timestamp = int(time.time())
    return httpx.post(
        url,
        content=body.encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": str(timestamp),
            "X-Slack-Signature": sign(body, timestamp),
        },
        timeout=30,
    )


def answer(slack: FakeSlackApi, token: str) -> dict[str, Any] | None:
    return next((body for t, body in slack.responses if t == token), None)


@pytest.fixture
def slack() -> Iterator[FakeSlackApi]:
    with FakeSlackApi() as fake:
        yield fake


def test_http_mode_answers_signed_commands_and_delivers_the_outbox(
    tmp_path: Path, org: Org, slack: FakeSlackApi
) -> None:
    bot = start(tmp_path, org, slack, COACHLOOP_SLACK__SIGNING_SECRET=SECRET)
    try:
        match = READY.search(bot.ready_line())
        assert match is not None and match.group(2)
        url = match.group(2)

        response = signed_post(url, command_form(slack, "UMGR", "north", "gaps"))

        assert response.status_code == 200
        body = wait_for(lambda: answer(slack, "gaps"), what="the /team-gaps answer")
        assert body["response_type"] == "ephemeral"
        assert "North: team gaps" in json.dumps(body["blocks"])
        wait_for(lambda: sorted(delivered(slack)) == sorted(org.queued), what="delivery")
        wait_for(lambda: set(statuses(org.engine).values()) == {"sent"}, what="the outbox")
        tampered = httpx.post(
            url,
            content=b"command=/team-gaps&user_id=UADMIN",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Slack-Request-Timestamp": str(int(time.time())),
                "X-Slack-Signature": "v0=" + "0" * 64,
            },
        )
        assert tampered.status_code == 401
    finally:
        code = bot.stop()
    assert code == 0
    assert [c.token for c in slack.calls_to("chat.postMessage")] == [BOT_TOKEN, BOT_TOKEN]
    assert sorted(delivered(slack)) == sorted(org.queued)  # once each


def test_socket_mode_acknowledges_envelopes_and_answers(
    tmp_path: Path, org: Org, slack: FakeSlackApi
) -> None:
    bot = start(tmp_path, org, slack, COACHLOOP_SLACK__APP_TOKEN=APP_TOKEN)
    try:
        assert "connected to Slack in Socket Mode" in bot.ready_line()
        opened = slack.calls_to("apps.connections.open")
        assert opened and {c.token for c in opened} == {APP_TOKEN}

        envelope = slack.send_envelope(
            "slash_commands", command_form(slack, "UMGR", "north 30d", "gaps")
        )

        ack = wait_for(
            lambda: next((a for a in slack.acks if a.get("envelope_id") == envelope), None),
            what="the acknowledgement",
        )
        assert set(ack) <= {"envelope_id", "payload"}
        body = wait_for(lambda: answer(slack, "gaps"), what="the /team-gaps answer")
        assert "North: team gaps" in json.dumps(body["blocks"])
        wait_for(lambda: sorted(delivered(slack)) == sorted(org.queued), what="delivery")

        slack.refresh_socket()
        wait_for(lambda: slack.socket_connections == 2, what="the reconnection")
        home = slack.send_envelope(
            "events_api",
            {
                "token": "legacy",
                "team_id": "T0HARBOR",
                "api_app_id": "A0COACH",
                "type": "event_callback",
                "event_id": "EvHome1",
                "event_time": int(time.time()),
                "event": {"type": "app_home_opened", "user": "UADA", "tab": "home"},
            },
            accepts_response_payload=False,
        )
        wait_for(lambda: any(a.get("envelope_id") == home for a in slack.acks), what="ack")
        view = wait_for(lambda: slack.views.get("UADA"), what="the Home tab")
        assert view["type"] == "home"
    finally:
        code = bot.stop()
    assert code == 0
    assert slack.calls_to("apps.connections.open")[-1].token == APP_TOKEN
    assert sorted(delivered(slack)) == sorted(org.queued)


@pytest.mark.parametrize(
    ("env", "fault", "expected"),
    [
        ({}, None, "COACHLOOP_SLACK__SIGNING_SECRET"),
        ({"COACHLOOP_SLACK__APP_TOKEN": BOT_TOKEN}, None, "COACHLOOP_SLACK__APP_TOKEN"),
        ({"COACHLOOP_SLACK__SIGNING_SECRET": SECRET}, "invalid_auth", "BOT_TOKEN"),
    ],
)
def test_settings_slack_refuses_are_named(
    tmp_path: Path,
    org: Org,
    slack: FakeSlackApi,
    env: dict[str, str],
    fault: str | None,
    expected: str,
) -> None:
    if fault:
        slack.fail_next("auth.test", fault)
    bot = start(tmp_path, org, slack, **env)

    code = bot.process.wait(120)

    assert code == 1
    error = bot.stderr.read_text()
    assert "error:" in error and expected in error
    assert "Traceback" not in error
    assert delivered(slack) == []


# -- inside the web app's server --------------------------------------------------------


@pytest.fixture
async def web_with_slack(org: Org, slack: FakeSlackApi, tmp_path: Path) -> AsyncIterator[str]:
    """The web app with the Slack app attached, composed and served as `coachloop run` does;
    yields its address."""
    import app as cli
    from web.serving import listen, serve, server_for

    settings = Settings(
        database_url=org.url,
        data_dir=tmp_path / "data",
        slack=SlackSettings(
            bot_token=SecretStr(BOT_TOKEN),
            signing_secret=SecretStr(SECRET),
            api_base_url=slack.base_url,
            poll_interval_s=0.2,
            channel_interval_s=0,
        ),
    )
    context = cli.Context(settings=settings)
    web_app = cli.build_web_app(context, practice=False)
    sock = listen("127.0.0.1", 0)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    assert cli.attach_slack(context, web_app, web_base_url=url + "/")
    server = server_for(web_app)
    task = asyncio.create_task(serve(web_app, sock, server=server))
    while not server.started:
        assert not task.done(), "the web app did not start"
        await asyncio.sleep(0.05)
    yield url
    server.should_exit = True
    await task


async def test_inside_the_web_app_slack_is_answered_on_the_same_server(
    web_with_slack: str, org: Org, slack: FakeSlackApi
) -> None:
    url = f"{web_with_slack}/slack/events"

    response = await asyncio.to_thread(
        signed_post, url, command_form(slack, "UMGR", "north", "gaps")
    )

    assert response.status_code == 200
    body = await asyncio.to_thread(wait_for, lambda: answer(slack, "gaps"))
    links = [
        e.get("url")
        for block in body["blocks"]
        if block["type"] == "actions"
        for e in block["elements"]
    ]
    assert links == [f"{web_with_slack}/teams/north"]
    await asyncio.to_thread(wait_for, lambda: sorted(delivered(slack)) == sorted(org.queued))
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{web_with_slack}/healthz")).status_code == 200
        page = await http.get(f"{web_with_slack}/outbox")
        assert page.status_code in (200, 303)  # the web app's own pages still answer


def test_without_a_bot_token_the_web_app_runs_alone(org: Org, tmp_path: Path) -> None:
    import app as cli

    context = cli.Context(settings=Settings(database_url=org.url, data_dir=tmp_path / "data"))
    web_app = cli.build_web_app(context, practice=False)

    assert cli.attach_slack(context, web_app) is False
    assert "/slack/events" not in {getattr(r, "path", "") for r in web_app.router.routes}


def test_attaching_without_a_signing_secret_names_the_setting(org: Org) -> None:
    settings = Settings(slack=SlackSettings(bot_token=SecretStr(BOT_TOKEN)))

    with pytest.raises(BotConfigError, match="COACHLOOP_SLACK__SIGNING_SECRET"):
        attach(
            FastAPI(),
            engine=org.engine,
            settings=settings,
            rubrics=RubricLibrary.from_dir(),
            rules=COHORT_RULES,
            catalogue=load_catalogue(COACHING_SCENARIOS),
        )


def test_links_from_slack_open_pages_of_the_web_app(org: Org, tmp_path: Path) -> None:
    from starlette.routing import Match

    import app as cli
    from bot import blocks
    from bot.services import Services
    from coaching.home import home_for
    from tests.coaching.conftest import T0

    context = cli.Context(settings=Settings(database_url=org.url, data_dir=tmp_path / "data"))
    web_app = cli.build_web_app(context, practice=False)
    services = Services(engine=org.engine, web_base_url="https://coach.example.com/")
    links = [
        services.dashboard_url("north"),
        services.voice_url(),
        services.voice_url("support-ack-easy", 7),
    ]
    manager_home = home_for(org.engine, org.people.manager, T0.date(), rules=COHORT_RULES)
    home = json.dumps(blocks.home(manager_home, {}, web_base_url="https://coach.example.com/"))
    home_links = re.findall(r'"url": "([^"]+)"', home)
    assert home_links
    links += home_links

    for link in links:
        assert link is not None and link.startswith("https://coach.example.com/")
        path = urlsplit(link).path
        scope = {"type": "http", "path": path, "method": "GET", "root_path": ""}
        matched = [r for r in web_app.router.routes if r.matches(scope)[0] == Match.FULL]
        assert matched, f"{link} is not a page of the web app"


async def test_a_refused_token_leaves_the_web_app_serving(
    org: Org, slack: FakeSlackApi, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import app as cli
    from web.serving import listen, serve, server_for

    slack.fail_next("auth.test", "invalid_auth")
    settings = Settings(
        database_url=org.url,
        data_dir=tmp_path / "data",
        slack=SlackSettings(
            bot_token=SecretStr("xoxb-revoked"),
            signing_secret=SecretStr(SECRET),
            api_base_url=slack.base_url,
        ),
    )
    context = cli.Context(settings=settings)
    web_app = cli.build_web_app(context, practice=False)
    sock = listen("127.0.0.1", 0)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    assert cli.attach_slack(context, web_app, web_base_url=url)
    server = server_for(web_app)
    task = asyncio.create_task(serve(web_app, sock, server=server))
    try:
        while not server.started:
            assert not task.done(), "the web app did not start"
            await asyncio.sleep(0.05)
        async with httpx.AsyncClient() as http:
            health = await http.get(f"{url}/healthz")
            events = await http.post(f"{url}/slack/events", content=b"command=/team-gaps")
    finally:
        server.should_exit = True
        await task

    assert health.status_code == 200
    assert events.status_code == 503
    refused = [r for r in caplog.records if r.getMessage() == "slack app not started"]
    assert refused and "COACHLOOP_SLACK__BOT_TOKEN" in str(refused[0].__dict__.get("reason"))
    assert delivered(slack) == []
