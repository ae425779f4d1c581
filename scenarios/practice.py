"""The practice driver: the small async API every surface uses to run a session.

The terminal, the Slack thread, the web chat and the voice agent all call the same four
methods; only how they show the words differs.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.types import Command
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from config.rubric import RubricLibrary
from personas import Emotion, emotion_for
from scenarios.engines.base import PersonaEngine
from scenarios.library import ScenarioError, ScenarioLibrary
from scenarios.observe import TurnObserver
from scenarios.results import PracticeRecorder, PracticeResult
from scenarios.roleplay import RoleplayContext, RoleplayState, compile_roleplay
from store.models import Assignment, Person

logger = logging.getLogger(__name__)


class SessionNotFoundError(ScenarioError, LookupError):
    def __init__(self, session_id: str) -> None:
        super().__init__(f"No practice session `{session_id}`; start one with `coachloop practice`")
        self.session_id = session_id


class RepNotFoundError(ScenarioError, LookupError):
    def __init__(self, external_id: str) -> None:
        super().__init__(
            f"No rep `{external_id}` in the organisation; import it with `coachloop org import` "
            "or practise without --rep"
        )
        self.external_id = external_id


@dataclass(frozen=True, slots=True)
class SessionStart:
    session_id: str
    opening: str
    """The persona's first words."""
    scenario: str
    title: str
    briefing: str
    persona: str
    """The persona's display name."""
    silence_timeout_s: float
    """How long a surface should wait for the rep before sending a silence."""
    turn_limit: int
    time_box_minutes: float


@dataclass(frozen=True, slots=True)
class PersonaTurn:
    """The persona's answer to one rep turn, or the end of the session."""

    text: str
    ended: bool
    emotion: Emotion
    stage: str
    turns_left: int
    result: PracticeResult | None = None
    """Set when the session has ended: scores, feedback and the comparison."""


@dataclass(frozen=True, slots=True)
class SessionView:
    session_id: str
    scenario: str
    status: str
    """`active` or `ended`."""
    stage: str
    emotion: Emotion
    meter: int
    turns: list[tuple[str, str]]
    """(speaker `rep` or `persona`, text), in order."""
    observed: list[str]
    """Signals observed so far (rubric check ids and anchors)."""
    result: PracticeResult | None


class PracticeDriver:
    """Start, continue and end practice sessions on the checkpointed roleplay graph.

    Args:
        library: Scenarios, with their personas and the company profile.
        rubrics: The organisation's rubrics.
        engine: The persona engine (scripted or LLM).
        observer: Matches rep turns against checks and anchors.
        recorder: Scores, stores and explains finished sessions; its database (if any) is
            also where `--rep` is looked up.
        checkpointer: Where sessions are kept between turns (see `open_checkpointer`).
        clock: Seconds; used for the time box and turn times.
    """

    def __init__(
        self,
        *,
        library: ScenarioLibrary,
        rubrics: RubricLibrary,
        engine: PersonaEngine,
        observer: TurnObserver,
        recorder: PracticeRecorder,
        checkpointer: BaseCheckpointSaver[Any],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.library = library
        self.context = RoleplayContext(
            library=library,
            rubrics=rubrics,
            engine=engine,
            observer=observer,
            recorder=recorder,
            clock=clock,
        )
        self._graph = compile_roleplay(checkpointer)
        self._locks: dict[str, asyncio.Lock] = {}

    def _lock(self, session_id: str) -> asyncio.Lock:
        return self._locks.setdefault(session_id, asyncio.Lock())

    @staticmethod
    def _config(session_id: str) -> Any:
        return {"configurable": {"thread_id": session_id}}

    async def _run(self, session_id: str, payload: Any) -> AsyncIterator[str]:
        async for chunk in self._graph.astream(
            payload,
            self._config(session_id),
            context=self.context,
            stream_mode="custom",
            durability="sync",
        ):
            if isinstance(chunk, dict) and "persona" in chunk:
                yield str(chunk["persona"])

    async def _drain(self, session_id: str, payload: Any) -> None:
        async for _ in self._run(session_id, payload):
            pass

    async def _state(self, session_id: str) -> RoleplayState:
        snapshot = await self._graph.aget_state(self._config(session_id))
        values: RoleplayState = snapshot.values  # type: ignore[assignment]
        if not values:
            raise SessionNotFoundError(session_id)
        if snapshot.next and not snapshot.interrupts:
            # the process stopped between steps: finish the work before going on
            logger.info("practice session resumed", extra={"session_id": session_id})
            await self._drain(session_id, None)
            snapshot = await self._graph.aget_state(self._config(session_id))
            values = snapshot.values  # type: ignore[assignment]
        return values

    def _find_rep(self, external_id: str) -> tuple[int, str | None]:
        engine: Engine | None = self.context.recorder.engine
        if engine is None:
            raise ScenarioError("Practising as a rep needs the database; none is configured")
        with Session(engine) as session:
            person = session.exec(select(Person).where(Person.external_id == external_id)).first()
        if person is None or person.id is None:
            raise RepNotFoundError(external_id)
        return person.id, person.role

    def _check_assignment(self, assignment_id: int, rep_id: int | None, slug: str) -> None:
        engine = self.context.recorder.engine
        if engine is None:
            return
        with Session(engine) as session:
            assignment = session.get(Assignment, assignment_id)
        if assignment is None or (rep_id is not None and assignment.rep_id != rep_id):
            raise ScenarioError(f"No assignment {assignment_id} for this rep")
        if assignment.scenario_slug != slug:
            raise ScenarioError(
                f"Assignment {assignment_id} is for scenario `{assignment.scenario_slug}`, "
                f"not `{slug}`"
            )

    async def start_session(
        self,
        scenario_slug: str,
        *,
        rep_external_id: str | None = None,
        assignment_id: int | None = None,
        channel: str = "chat",
        session_id: str | None = None,
    ) -> SessionStart:
        """Start a session; returns its id and the persona's opening line.

        Raises:
            ScenarioNotFoundError: No scenario with that slug.
            RepNotFoundError: `rep_external_id` is not in the organisation.
            ScenarioError: The assignment does not belong to this rep and scenario.
        """
        scenario = self.library.get(scenario_slug)
        persona = self.library.persona_for(scenario)
        rep_id: int | None = None
        if rep_external_id is not None:
            rep_id, role = await asyncio.to_thread(self._find_rep, rep_external_id)
            if role is not None and role != scenario.role:
                logger.warning(
                    "practice scenario is for another role",
                    extra={"scenario": scenario.slug, "scenario_role": scenario.role},
                )
        if assignment_id is not None:
            await asyncio.to_thread(self._check_assignment, assignment_id, rep_id, scenario.slug)
        session_id = session_id or uuid.uuid4().hex
        initial: RoleplayState = {
            "session_id": session_id,
            "scenario": scenario.slug,
            "channel": channel,
            "rep_id": rep_id,
            "rep_external_id": rep_external_id,
            "assignment_id": assignment_id,
        }
        async with self._lock(session_id):
            snapshot = await self._graph.aget_state(self._config(session_id))
            if snapshot.values:
                raise ScenarioError(f"Practice session `{session_id}` already exists")
            opening = " ".join([piece async for piece in self._run(session_id, initial)])
        return SessionStart(
            session_id=session_id,
            opening=opening,
            scenario=scenario.slug,
            title=scenario.title,
            briefing=scenario.briefing.strip(),
            persona=persona.name,
            silence_timeout_s=scenario.silence_timeout_s,
            turn_limit=scenario.turn_limit,
            time_box_minutes=scenario.time_box_minutes,
        )

    async def stream_rep_turn(self, session_id: str, text: str) -> AsyncIterator[str]:
        """The persona's answer to `text`, piece by piece as the engine produces it.

        An empty `text` reports a silence. After the stream ends, `get_session` shows whether
        the session ended and holds the result.
        """
        async with self._lock(session_id):
            state = await self._state(session_id)
            if state.get("status") == "ended":
                return
            kind = "turn" if text.strip() else "silence"
            async for piece in self._run(session_id, Command(resume={"kind": kind, "text": text})):
                yield piece

    async def send_rep_turn(self, session_id: str, text: str) -> PersonaTurn:
        """The persona's whole answer to `text` (empty `text` reports a silence).

        When the turn ends the session (wrap-up, success, walk-out, limits), the answer is the
        persona's last words and `result` holds the scored feedback.
        """
        pieces = [piece async for piece in self.stream_rep_turn(session_id, text)]
        return await self._persona_turn(session_id, " ".join(pieces))

    async def end_session(self, session_id: str) -> PracticeResult:
        """End the session now (if it is still running) and return its result."""
        async with self._lock(session_id):
            state = await self._state(session_id)
            if state.get("status") != "ended":
                await self._drain(session_id, Command(resume={"kind": "end", "text": ""}))
                state = await self._state(session_id)
        result = state.get("result")
        assert result is not None, "an ended session always has a result"
        return PracticeResult.model_validate(result)

    async def get_session(self, session_id: str) -> SessionView:
        state = await self._state(session_id)
        scenario = self.library.get(state["scenario"])
        stage = scenario.stages[min(state.get("stage", 0), len(scenario.stages) - 1)]
        meter = state.get("meter", 0)
        raw = state.get("result")
        return SessionView(
            session_id=session_id,
            scenario=scenario.slug,
            status=state.get("status", "active"),
            stage=stage.id,
            emotion=emotion_for(meter),
            meter=meter,
            turns=[(t["speaker"], t["text"]) for t in state.get("turns", [])],
            observed=sorted(state.get("observed", {})),
            result=PracticeResult.model_validate(raw) if raw else None,
        )

    async def _persona_turn(self, session_id: str, text: str) -> PersonaTurn:
        state = await self._state(session_id)
        scenario = self.library.get(state["scenario"])
        stage = scenario.stages[min(state.get("stage", 0), len(scenario.stages) - 1)]
        meter = state.get("meter", 0)
        raw = state.get("result")
        ended = state.get("status") == "ended"
        if ended and not text:
            turns = state.get("turns", [])
            text = turns[-1]["text"] if turns and turns[-1]["speaker"] == "persona" else ""
        return PersonaTurn(
            text=text,
            ended=ended,
            emotion=emotion_for(meter),
            stage=stage.id,
            turns_left=max(0, scenario.turn_limit - state.get("rep_turns", 0)),
            result=PracticeResult.model_validate(raw) if raw else None,
        )


@asynccontextmanager
async def open_checkpointer(target: str | Path) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    """A checkpointer for practice sessions: a SQLite file, or a PostgreSQL URL.

    The embedded default is a SQLite file beside the main database; a `postgresql://` URL
    uses the LangGraph Postgres saver (tables are created on first use).
    """
    text = str(target)
    if text.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

        url = "postgresql://" + text.split("://", 1)[1]
        async with AsyncPostgresSaver.from_conn_string(url) as saver:
            await saver.setup()
            yield saver
        return
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    if text != ":memory:":
        Path(text).parent.mkdir(parents=True, exist_ok=True)
    async with AsyncSqliteSaver.from_conn_string(text) as saver:
        yield saver
