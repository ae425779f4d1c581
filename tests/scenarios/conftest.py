"""Fixtures for practice tests: the shipped library, a real encoder, a fake clock, drivers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from config.company import CompanyProfile, load_company
from config.rubric import RubricLibrary
from evaluators.base import Judge
from evaluators.embeddings import SentenceEncoder
from personas import PersonaLibrary
from scenarios import (
    PersonaEngine,
    PracticeDriver,
    PracticeRecorder,
    ScenarioLibrary,
    ScriptedPersona,
    TurnObserver,
    open_checkpointer,
)
from store.models import (
    Evaluation,
    Interaction,
    InteractionKind,
    Person,
    RubricVersion,
    Score,
    Speaker,
    Team,
    Turn,
)
from tests.evaluators.keyword_judge import KeywordJudge

START = 1_780_000_000.0


class FakeClock:
    """Seconds that move only when a test says so."""

    def __init__(self, start: float = START) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="session")
def company() -> CompanyProfile:
    return load_company()


@pytest.fixture(scope="session")
def personas(company: CompanyProfile) -> PersonaLibrary:
    return PersonaLibrary.from_dir(company)


@pytest.fixture(scope="session")
def library(company: CompanyProfile, personas: PersonaLibrary) -> ScenarioLibrary:
    return ScenarioLibrary.from_dir(company, personas)


@pytest.fixture(scope="session")
def rubrics() -> RubricLibrary:
    return RubricLibrary.from_dir()


@pytest.fixture(scope="session")
def encoder() -> SentenceEncoder:
    return SentenceEncoder()


@pytest.fixture(scope="session")
def observer(encoder: SentenceEncoder) -> TurnObserver:
    return TurnObserver(encoder)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def judge() -> Judge:
    return KeywordJudge(judge_name="keyword@1")


@dataclass
class Practice:
    """Builds drivers on one checkpoint file, as separate processes would."""

    library: ScenarioLibrary
    rubrics: RubricLibrary
    observer: TurnObserver
    judge: Judge
    clock: FakeClock
    checkpoints: Path

    @asynccontextmanager
    async def driver(
        self, *, engine: Engine | None = None, persona: PersonaEngine | None = None
    ) -> AsyncIterator[PracticeDriver]:
        async with open_checkpointer(self.checkpoints) as saver:
            yield PracticeDriver(
                library=self.library,
                rubrics=self.rubrics,
                engine=persona or ScriptedPersona(),
                observer=self.observer,
                recorder=PracticeRecorder(self.judge, self.rubrics, engine),
                checkpointer=saver,
                clock=self.clock,
            )


@pytest.fixture
def practice(
    library: ScenarioLibrary,
    rubrics: RubricLibrary,
    observer: TurnObserver,
    judge: Judge,
    clock: FakeClock,
    tmp_path: Path,
) -> Practice:
    return Practice(library, rubrics, observer, judge, clock, tmp_path / "practice.sqlite")


# -- organisation and real calls --------------------------------------------------------------


def add_rep(engine: Engine, external_id: str, role: str) -> int:
    with Session(engine) as session:
        team = Team(slug=f"team-{external_id}", name=f"Team {external_id}")
        session.add(team)
        session.flush()
        rep = Person(external_id=external_id, name=f"Rep {external_id}", role=role, team_id=team.id)
        session.add(rep)
        session.commit()
        assert rep.id is not None
        return rep.id


def add_scored_call(
    engine: Engine,
    rubrics: RubricLibrary,
    *,
    rep_id: int,
    role: str,
    levels: dict[str, int | None],
    turns: list[tuple[Speaker, str]] | None = None,
    external_id: str,
    checks: dict[str, list[dict[str, Any]]] | None = None,
) -> int:
    """A real call with one scored evaluation, as the scoring pipeline would leave it."""
    rubric = rubrics.for_role(role)
    turns = turns or [(Speaker.customer, "Hello"), (Speaker.agent, "Hi there")]
    with Session(engine) as session:
        if session.get(RubricVersion, rubric.version) is None:
            session.add(
                RubricVersion(
                    version=rubric.version,
                    role=rubric.role,
                    name=rubric.name,
                    content=rubric.model_dump(mode="json"),
                )
            )
        call = Interaction(
            external_id=external_id,
            source="json",
            kind=InteractionKind.call,
            rep_id=rep_id,
            started_at=datetime(2026, 11, 2, 9, 30, tzinfo=UTC),
            content_hash=f"hash-{external_id}",
            turn_count=len(turns),
        )
        session.add(call)
        session.flush()
        assert call.id is not None
        for idx, (speaker, text) in enumerate(turns):
            session.add(
                Turn(interaction_id=call.id, idx=idx, speaker=speaker, text=text, start_s=idx * 5.0)
            )
        evaluation = Evaluation(
            interaction_id=call.id, rubric_version=rubric.version, judge="keyword@1"
        )
        session.add(evaluation)
        session.flush()
        assert evaluation.id is not None
        for criterion_id, level in levels.items():
            session.add(
                Score(
                    evaluation_id=evaluation.id,
                    interaction_id=call.id,
                    rep_id=rep_id,
                    criterion_id=criterion_id,
                    level=level,
                    checks=(checks or {}).get(criterion_id, []),
                    scored_at=call.started_at,
                )
            )
        session.commit()
        return call.id


async def drive(driver: PracticeDriver, session_id: str, turns: list[str]) -> list[Any]:
    """Send each turn in order until the session ends; the persona's answers."""
    answers = []
    for text in turns:
        answer = await driver.send_rep_turn(session_id, text)
        answers.append(answer)
        if answer.ended:
            break
    return answers
