"""The voice practice page in LiveKit mode, in headless Chromium: with LiveKit configured, an
assignment's page loads the vendored LiveKit client under the page's security policy, asks
the web app for a join token and joins the LiveKit server with it.

The LiveKit server is the fake (`tests/fakes/livekit_server.py`), which checks and records
the join but has no media to offer, so the page ends on its refusal, shown to the rep.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlmodel import Session, select

from config.company import load_company
from config.settings import LiveKitSettings
from evaluators.embeddings import SentenceEncoder
from personas import PersonaLibrary
from scenarios import PracticeDriver, ScenarioLibrary
from store.models import Assignment, Person
from tests.fakes.livekit_server import ROOMS_REFUSAL, FakeLiveKitServer, fake_livekit_in_thread
from tests.web.browser import chromium, live_server, shoot
from tests.web.conftest import login, make_settings, new_person
from tests.web.seed import NOW, PASSWORD, RUBRICS, Seed
from voice.rooms import parse_room_name
from web import PracticeService, create_app

API_KEY = "APIpagetest"
API_SECRET = "page-test-secret-" + "p" * 24
SCENARIO = "support-bill-went-up"


@pytest.fixture(scope="module")
def encoder() -> SentenceEncoder:
    return SentenceEncoder()


@pytest.fixture
def livekit() -> Iterator[FakeLiveKitServer]:
    with fake_livekit_in_thread(api_key=API_KEY, api_secret=API_SECRET) as server:
        yield server


def practice_app(seed: Seed, encoder: SentenceEncoder, livekit_url: str | None) -> FastAPI:
    """The web app with the text practice driver (scripted persona) and, when given, LiveKit."""
    from tests.voice.calls import practice_driver

    company = load_company(None)
    library = ScenarioLibrary.from_dir(company, PersonaLibrary.from_dir(company))

    @asynccontextmanager
    async def open_driver() -> AsyncIterator[PracticeDriver]:
        checkpoints = seed.data_dir / "practice.sqlite"
        async with practice_driver(checkpoints, library, RUBRICS, encoder, seed.engine) as driver:
            yield driver

    settings = make_settings(seed.data_dir)
    if livekit_url is not None:
        livekit = LiveKitSettings(
            url=livekit_url, api_key=API_KEY, api_secret=SecretStr(API_SECRET)
        )
        settings = settings.model_copy(update={"livekit": livekit})
    return create_app(
        engine=seed.engine,
        settings=settings,
        rubrics=RUBRICS,
        practice=PracticeService(library, open_driver),
        clock=lambda: NOW,
    )


def open_assignment(seed: Seed, rep: str) -> int:
    with Session(seed.engine) as session:
        person = session.exec(select(Person).where(Person.external_id == rep)).one()
        assert person.id is not None
        assignment = Assignment(
            rep_id=person.id,
            scenario_slug=SCENARIO,
            criterion_id="acknowledge_concern",
            reason="practise acknowledging the concern",
            dedupe_key=f"page-test-{rep}",
        )
        session.add(assignment)
        session.commit()
        assert assignment.id is not None
        return assignment.id


def test_assignment_page_joins_the_livekit_room_with_the_reps_token(
    sqlite_seed: Seed, livekit: FakeLiveKitServer, encoder: SentenceEncoder, tmp_path: Path
) -> None:
    rep = new_person(sqlite_seed, team="north")
    assignment_id = open_assignment(sqlite_seed, rep)
    app = practice_app(sqlite_seed, encoder, livekit.url)
    problems: list[str] = []

    with chromium(
        ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
    ) as browser:
        with live_server(app) as url:
            # a phone screen, where reps practise
            context = browser.new_context(base_url=url, viewport={"width": 390, "height": 844})
            context.set_default_timeout(20_000)
            page = context.new_page()
            page.on(
                "console",
                lambda message: (
                    problems.append(message.text)
                    if "Content Security Policy" in message.text
                    else None
                ),
            )
            page.goto("/login")
            page.get_by_label("Employee id or e-mail").fill(rep)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(lambda target: "/login" not in target)

            page.goto(f"/practice/voice/{SCENARIO}?assignment={assignment_id}")
            section = page.locator("#voice-practice")
            token_url = section.get_attribute("data-livekit-token-url")
            client_version = page.evaluate(
                "() => window.LivekitClient && window.LivekitClient.version"
            )
            page.locator("#voice-start").click()
            page.wait_for_function(
                "() => document.getElementById('voice-status').textContent.includes('practice room:')"
            )
            status = page.locator("#voice-status").inner_text()
            shoot(page, "livekit-practice-join-refused-phone")
            start_enabled = page.locator("#voice-start").is_enabled()
            context.close()

    assert token_url == f"/api/practice/assignments/{assignment_id}/livekit-token"
    assert client_version == "2.23.0"
    assert problems == []
    # the page joined with a token for this assignment's room, as this rep
    joined = [attempt for attempt in livekit.joins if attempt.claims is not None]
    assert joined, livekit.joins
    claims = joined[0].claims
    assert claims is not None
    assert joined[0].path.startswith("/rtc")
    assert claims["sub"] == rep
    assert claims["video"]["roomJoin"] is True
    assert (
        parse_room_name(claims["video"]["room"], prefix="practice").assignment_id == assignment_id
    )
    # and the rep is told it did not work, and may try again
    assert "Could not join the practice room:" in status
    assert ROOMS_REFUSAL in status
    assert start_enabled


def test_without_livekit_the_page_keeps_the_websocket(
    sqlite_seed: Seed, encoder: SentenceEncoder
) -> None:
    rep = new_person(sqlite_seed, team="north")
    assignment_id = open_assignment(sqlite_seed, rep)
    app = practice_app(sqlite_seed, encoder, None)

    with TestClient(app) as client:
        login(client, rep)
        html = client.get(f"/practice/voice/{SCENARIO}?assignment={assignment_id}").text

    assert "data-livekit-token-url" not in html
    assert "livekit-client.umd.js" not in html
    assert "voice.js" in html
