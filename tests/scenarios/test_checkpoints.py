"""Practice sessions kept in PostgreSQL, the checkpointer for more than one machine."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver
from sqlalchemy import text

from config.rubric import RubricLibrary
from scenarios import (
    PracticeDriver,
    PracticeRecorder,
    ScenarioLibrary,
    ScriptedPersona,
    TurnObserver,
    open_checkpointer,
)
from store.db import make_engine
from tests.conftest import POSTGRES_URL
from tests.scenarios.conftest import FakeClock, drive

pytestmark = pytest.mark.postgres


@pytest.fixture
def postgres_url() -> Iterator[str]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(POSTGRES_URL)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:
        admin.dispose()
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_URL} ({type(exc).__name__})")
    yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


async def test_session_resumes_from_postgres(
    postgres_url: str,
    library: ScenarioLibrary,
    rubrics: RubricLibrary,
    observer: TurnObserver,
) -> None:
    from tests.evaluators.keyword_judge import KeywordJudge

    def driver(saver: BaseCheckpointSaver[Any]) -> PracticeDriver:
        return PracticeDriver(
            library=library,
            rubrics=rubrics,
            engine=ScriptedPersona(),
            observer=observer,
            recorder=PracticeRecorder(KeywordJudge(), rubrics, None),
            checkpointer=saver,
            clock=FakeClock(),
        )

    async with open_checkpointer(postgres_url) as saver:
        start = await driver(saver).start_session("sales-flat-share-gaming")
        await drive(
            driver(saver),
            start.session_id,
            ["Talk me through a normal evening in the flat: who's online and what are they doing?"],
        )
    async with open_checkpointer(postgres_url) as saver:
        answers = await drive(
            driver(saver),
            start.session_id,
            [
                "So, two of you gaming in the evenings, one working from home on Fridays, and "
                "everyone streaming. Have I got that right?",
                "You said the lag is killing you in the evenings, so I'd go for Harbor Fibre 500: "
                "with four of you online at once it has the headroom, and it's about 8.75 each a "
                "month.",
            ],
        )

    assert answers[-1].ended
    assert answers[-1].result is not None and answers[-1].result.outcome == "resolved"
    # the turn taken before the restart counts
    assert answers[-1].result.rep_turns == 1 + len(answers)
