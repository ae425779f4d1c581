"""Every shipped scenario can be practised to a scored end, with either persona engine.

The rep's turns are the scenario's own "good" anchor examples, then "let's wrap up" when the
persona has not ended the session by itself: what a rep who read the briefing would say.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from openai import AsyncOpenAI

from config.company import load_company
from config.rubric import RubricLibrary
from personas import PersonaLibrary
from scenarios import ScenarioLibrary
from scenarios.engines.llm import LlmPersona
from tests.fakes.openai_server import FakeOpenAIServer, Reply
from tests.scenarios.conftest import Practice, drive

_COMPANY = load_company()
SLUGS = [
    s.slug for s in ScenarioLibrary.from_dir(_COMPANY, PersonaLibrary.from_dir(_COMPANY)).all()
]
IN_CHARACTER = "Right. Go on then, what happens now?"


def rep_turns(library: ScenarioLibrary, slug: str) -> list[str]:
    scenario = library.get(slug)
    good = [e.text for anchor in scenario.anchors.values() for e in anchor.good.examples]
    return [*good, "Let's wrap up there."]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    def in_character(_: dict[str, Any]) -> Reply:
        return Reply.text(IN_CHARACTER)

    with FakeOpenAIServer(handler=in_character) as running:
        yield running


@pytest.mark.parametrize("slug", SLUGS)
async def test_every_scenario_ends_scored_with_the_scripted_persona(
    slug: str, practice: Practice, library: ScenarioLibrary, rubrics: RubricLibrary
) -> None:
    scenario = library.get(slug)

    async with practice.driver() as driver:
        start = await driver.start_session(slug)
        answers = await drive(driver, start.session_id, rep_turns(library, slug))

    assert start.opening and start.briefing
    assert answers[-1].ended, f"{slug} did not end"
    result = answers[-1].result
    assert result is not None and result.scored
    criteria = {c.id for c in rubrics.for_role(scenario.role).criteria_for(scenario.role)}
    assert {f.criterion_id for f in result.feedback} == criteria
    assert all(f.good_looks_like for f in result.feedback)
    assert all(a.text for a in answers)


@pytest.mark.parametrize("slug", SLUGS)
async def test_every_scenario_runs_with_the_llm_persona(
    slug: str, practice: Practice, library: ScenarioLibrary, server: FakeOpenAIServer
) -> None:
    client = AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=0)
    persona = LlmPersona(client, "gpt-4o-mini")
    before = len(server.chat_requests)

    async with practice.driver(persona=persona) as driver:
        start = await driver.start_session(slug)
        answers = await drive(driver, start.session_id, rep_turns(library, slug))

    assert answers[-1].ended and answers[-1].result is not None
    assert any(a.text == IN_CHARACTER for a in answers)
    assert len(server.chat_requests) > before
    assert persona.fallbacks == 0
