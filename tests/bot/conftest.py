"""The real Bolt app over real HTTP: uvicorn on a random loopback port, requests signed with
the signing secret, and its Web API client pointed at the fake Slack API."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn
from pydantic import SecretStr
from sqlalchemy import update
from sqlalchemy.engine import Engine

from bot.app import build_app
from bot.http import create_asgi_app
from coaching.catalogue import load_catalogue
from coaching.graph import CoachingPipeline, open_pipeline
from config.coaching import parse_coaching_rules
from config.company import load_company
from config.rubric import RubricLibrary
from config.settings import SlackSettings
from evaluators.embeddings import SentenceEncoder
from personas import PersonaLibrary
from scenarios import (
    PracticeDriver,
    PracticeRecorder,
    ScenarioLibrary,
    ScriptedPersona,
    TurnObserver,
    open_checkpointer,
)
from store.db import session_scope
from store.models import Access, Person
from tests.coaching.conftest import CRITERIA, T0, Clock, Org
from tests.evaluators.keyword_judge import KeywordJudge
from tests.fakes.slack_api import FakeSlackApi

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TOKEN = "xoxb-test-token"
ACK = "acknowledge_concern"
COHORT_RULES = parse_coaching_rules(
    {"triggers": {"min_sessions": 2, "cohort_min_reps": 3}, "cohort": {"auto_approve_hours": 24}}
)
COACHING_SCENARIOS = Path(__file__).parents[1] / "coaching" / "fixtures" / "scenarios"
T = TypeVar("T")

SLACK_USERS = {
    "UNEWREP": {"name": "eve", "profile": {"email": "Eve@example.com"}},
    "USTRANGER": {"name": "stranger", "profile": {"email": "nobody@elsewhere.test"}},
}


def sign(body: str, timestamp: int, secret: str = SECRET) -> str:
    """Slack's request signature: `v0=` HMAC-SHA256 over `v0:{timestamp}:{body}`."""
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


async def eventually(check: Callable[[], T | None], *, within: float = 20.0) -> T:
    """Poll until `check` returns something truthy (the bot answers after acknowledging)."""
    deadline = time.monotonic() + within
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError("the bot did not get there in time")
        await asyncio.sleep(0.02)


@dataclass
class People:
    manager: Person
    other_manager: Person
    admin: Person
    reps: list[Person]
    call_ids: list[int] = field(default_factory=list)


def _set_slack(engine: Engine, person: Person, slack_user_id: str) -> None:
    with session_scope(engine) as session:
        session.connection().execute(
            update(Person).where(Person.id == person.id).values(slack_user_id=slack_user_id)
        )
    person.slack_user_id = slack_user_id


def seed(engine: Engine) -> People:
    """Team `north` (Ada, Ben and Cy below the bar on acknowledgement, Di above), its
    manager, the manager of `south`, an admin, and Eve (in `north`, not linked to Slack)."""
    org = Org(engine)
    north = org.team("north")
    org.team("south")
    reps = [org.rep(north, name) for name in ("Ada", "Ben", "Cy", "Di", "Eve")]
    ids = []
    for day in range(2):
        for i, rep in enumerate(reps[:4]):
            level = 3 if i == 3 else 1
            at = T0 + timedelta(days=day, minutes=i)
            ids.append(org.call(rep, at, {**dict.fromkeys(CRITERIA, 3), ACK: level}))
    with session_scope(engine) as session:
        admin = Person(external_id="admin-1", name="Ann Admin", access=Access.admin)
        session.add(admin)
    for rep, slack_id in zip(reps[:4], ("UADA", "UBEN", "UCY", "UDI"), strict=True):
        _set_slack(engine, rep, slack_id)
    _set_slack(engine, org.managers["north"], "UMGR")
    _set_slack(engine, org.managers["south"], "USOUTH")
    _set_slack(engine, admin, "UADMIN")
    return People(org.managers["north"], org.managers["south"], admin, reps, ids)


@pytest.fixture(scope="session")
def rubrics() -> RubricLibrary:
    return RubricLibrary.from_dir()


@pytest.fixture(scope="session")
def library() -> ScenarioLibrary:
    company = load_company()
    return ScenarioLibrary.from_dir(company, PersonaLibrary.from_dir(company))


@pytest.fixture(scope="session")
def observer() -> TurnObserver:
    return TurnObserver(SentenceEncoder())


@pytest.fixture
def slack() -> Iterator[FakeSlackApi]:
    with FakeSlackApi(users=SLACK_USERS) as fake:
        yield fake


@dataclass
class Bot:
    """The running app and what it talks to."""

    url: str
    slack: FakeSlackApi
    engine: Engine
    people: People
    pipeline: CoachingPipeline
    http: httpx.AsyncClient

    async def post(
        self,
        body: str,
        content_type: str,
        *,
        timestamp: int | None = None,
        signature: str | None = None,
    ) -> httpx.Response:
        timestamp = int(time.time()) if timestamp is None else timestamp
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": str(timestamp),
            "X-Slack-Signature": signature or sign(body, timestamp),
        }
        return await self.http.post(self.url, content=body.encode(), headers=headers)

    async def command(self, name: str, text: str, user: str, token: str = "cmd") -> httpx.Response:
        body = urlencode(
            {
                "token": "legacy",
                "team_id": "T0HARBOR",
                "user_id": user,
                "command": name,
                "text": text,
                "channel_id": "C0GENERAL",
                "response_url": self.slack.response_url(token),
                "trigger_id": "trig-1",
            }
        )
        return await self.post(body, "application/x-www-form-urlencoded")

    async def interact(self, payload: dict[str, Any]) -> httpx.Response:
        body = urlencode({"payload": json.dumps(payload)})
        return await self.post(body, "application/x-www-form-urlencoded")

    async def block_action(
        self,
        user: str,
        action_id: str,
        value: str,
        *,
        message: dict[str, Any] | None = None,
        channel: str | None = None,
        token: str = "act",
    ) -> httpx.Response:
        return await self.interact(
            {
                "type": "block_actions",
                "team": {"id": "T0HARBOR"},
                "user": {"id": user},
                "api_app_id": "A0COACH",
                "trigger_id": "trig-2",
                "container": {"type": "message"},
                "channel": {"id": channel or f"D{user}"},
                "message": message or {"ts": "1.0", "blocks": []},
                "response_url": self.slack.response_url(token),
                "actions": [
                    {"action_id": action_id, "block_id": "b", "type": "button", "value": value}
                ],
            }
        )

    async def event(self, event: dict[str, Any], *, event_id: str = "Ev1") -> httpx.Response:
        envelope = {
            "token": "legacy",
            "team_id": "T0HARBOR",
            "api_app_id": "A0COACH",
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "event": event,
        }
        return await self.post(json.dumps(envelope), "application/json")


@pytest.fixture
def web_base_url() -> str | None:
    return None


@pytest.fixture
async def bot(
    sqlite_engine: Engine,
    slack: FakeSlackApi,
    tmp_path: Path,
    rubrics: RubricLibrary,
    library: ScenarioLibrary,
    observer: TurnObserver,
    web_base_url: str | None,
) -> AsyncIterator[Bot]:
    people = seed(sqlite_engine)
    clock = Clock(T0 + timedelta(days=10))
    settings = SlackSettings(
        bot_token=SecretStr(TOKEN),
        signing_secret=SecretStr(SECRET),
        api_base_url=slack.base_url,
        web_base_url=web_base_url,
    )
    catalogue = load_catalogue(COACHING_SCENARIOS)
    with open_pipeline(
        sqlite_engine, tmp_path / "data", rules=COHORT_RULES, catalogue=catalogue, clock=clock
    ) as pipeline:
        pipeline.run()
        async with open_checkpointer(tmp_path / "practice.sqlite") as saver:
            driver = PracticeDriver(
                library=library,
                rubrics=rubrics,
                engine=ScriptedPersona(),
                observer=observer,
                recorder=PracticeRecorder(KeywordJudge(), rubrics, sqlite_engine),
                checkpointer=saver,
            )
            app = build_app(
                engine=sqlite_engine,
                settings=settings,
                rubrics=rubrics,
                rules=COHORT_RULES,
                practice=driver,
                pipeline=pipeline,
                clock=clock,
            )
            config = uvicorn.Config(
                create_asgi_app(app),
                host="127.0.0.1",
                port=0,
                log_level="warning",
                lifespan="off",
            )
            server = uvicorn.Server(config)
            task = asyncio.create_task(server.serve())
            await eventually(lambda: server.started)
            port = server.servers[0].sockets[0].getsockname()[1]
            async with httpx.AsyncClient(timeout=30) as http:
                yield Bot(
                    url=f"http://127.0.0.1:{port}/slack/events",
                    slack=slack,
                    engine=sqlite_engine,
                    people=people,
                    pipeline=pipeline,
                    http=http,
                )
            server.should_exit = True
            await task
