"""The roleplay graph: one practice conversation, checkpointed turn by turn.

```
begin ─> speak ─> listen ─> observe ─> decide ─┬─> speak (continue / escalate / soften)
                    ^  (waits for the rep)     └─> close ─> finish ─> END
```

- `speak` asks the persona engine for the next words (opening, reply or, after a silence,
  a nudge) and streams them out as custom stream events `{"persona": piece}`.
- `listen` pauses the graph with `interrupt()` until the rep's input arrives: a turn, a
  silence, or a request to end. The thread id is the practice session id, so with a
  checkpointer a session survives a restart of the process.
- `observe` matches the rep's turn against the scenario's checks and anchors, releases
  held-back facts the rep has earned, and moves the stage on.
- `decide` moves the emotional meter (escalate on poor signals, soften on good ones) and
  ends the conversation on wrap-up, success, walk-out, silence, the turn limit or the time box.
- `close` says the persona's last words; `finish` scores and stores the whole session.

Collaborators come through the graph's run-time context (`RoleplayContext`), never globals.
"""

from __future__ import annotations

import asyncio
import logging
import operator
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypedDict

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import interrupt

from config.rubric import RubricLibrary
from personas import METER_MAX, HeldBack, emotion_for
from scenarios.engines.base import DialogueTurn, Outcome, PersonaEngine, PersonaRequest, ReplyKind
from scenarios.engines.scripted import ScriptedPersona
from scenarios.library import ScenarioLibrary
from scenarios.observe import Observation, TurnObserver
from scenarios.results import FinishedSession, PracticeRecorder
from scenarios.schema import Scenario

logger = logging.getLogger(__name__)

Decision = Literal["continue", "escalate", "soften", "end"]
InputKind = Literal["turn", "silence", "end"]


class RepInput(TypedDict):
    kind: InputKind
    text: str


class TurnRecord(TypedDict):
    speaker: Literal["rep", "persona"]
    text: str
    at: float
    """Seconds from the start of the session."""
    stage: str
    meter: int


def _keep_first(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    """Reducer for observed signals: the first time a signal is seen is the one kept."""
    return {**(right or {}), **(left or {})}


class RoleplayState(TypedDict, total=False):
    session_id: str
    scenario: str
    channel: str
    rep_id: int | None
    rep_external_id: str | None
    assignment_id: int | None
    started_at: float
    """Clock reading at the start, in seconds."""
    started_iso: str
    turns: Annotated[list[TurnRecord], operator.add]
    meter: int
    meter_trace: Annotated[list[int], operator.add]
    stage: int
    observed: Annotated[dict[str, Any], _keep_first]
    """Signal to {turn, quote, similarity} of the first rep turn that showed it."""
    released: Annotated[list[str], operator.add]
    newly_released: list[str]
    stage_changed: bool
    silences: int
    rep_turns: int
    pending: RepInput | None
    observation: dict[str, Any] | None
    decision: Decision
    status: Literal["active", "ended"]
    outcome: Outcome | None
    end_reason: str | None
    engine: str
    result: dict[str, Any] | None


@dataclass(frozen=True)
class RoleplayContext:
    """What the graph's nodes work with, passed to every run of the graph."""

    library: ScenarioLibrary
    rubrics: RubricLibrary
    engine: PersonaEngine
    observer: TurnObserver
    recorder: PracticeRecorder
    clock: Callable[[], float] = time.time
    """Seconds; only differences and the start time are used."""
    fallback: ScriptedPersona = field(default_factory=ScriptedPersona)


# -- helpers --------------------------------------------------------------------------------


def _scenario(state: RoleplayState, ctx: RoleplayContext) -> Scenario:
    return ctx.library.get(state["scenario"])


def _elapsed(state: RoleplayState, ctx: RoleplayContext) -> float:
    return max(0.0, ctx.clock() - state.get("started_at", ctx.clock()))


def _success(scenario: Scenario, observed: dict[str, Any]) -> bool:
    return all(signal in observed for signal in scenario.success.all_of)


def _held_back(ctx: RoleplayContext, scenario: Scenario) -> list[HeldBack]:
    return ctx.library.held_back_for(scenario)


def _request(
    state: RoleplayState, ctx: RoleplayContext, kind: ReplyKind, outcome: Outcome | None = None
) -> PersonaRequest:
    scenario = _scenario(state, ctx)
    persona = ctx.library.persona_for(scenario)
    items = _held_back(ctx, scenario)
    released_ids = set(state.get("released", []))
    newly = set(state.get("newly_released", [])) if kind == "reply" else set()
    observation = state.get("observation") if kind == "reply" else None
    turns = state.get("turns", [])
    meter = state.get("meter", persona.emotional_start)
    stage_index = min(state.get("stage", 0), len(scenario.stages) - 1)
    return PersonaRequest(
        kind=kind,
        scenario=scenario,
        persona=persona,
        company=ctx.library.company,
        stage=scenario.stages[stage_index],
        emotion=emotion_for(meter),
        meter=meter,
        history=[DialogueTurn(t["speaker"], t["text"]) for t in turns],
        released=[h for h in items if h.id in released_ids],
        newly_released=[h for h in items if h.id in newly],
        unreleased=[h for h in items if h.id not in released_ids],
        observation=Observation.from_dict(observation) if observation else None,
        stage_changed=bool(state.get("stage_changed")) and kind == "reply",
        outcome=outcome,
        said=frozenset(t["text"] for t in turns if t["speaker"] == "persona"),
    )


async def _say(request: PersonaRequest, ctx: RoleplayContext, runtime: Runtime[Any]) -> str:
    """Stream the engine's reply out; degrade to the scripted line if the engine fails."""
    pieces: list[str] = []
    try:
        async for piece in ctx.engine.stream(request):
            piece = " ".join(piece.split())
            if piece:
                pieces.append(piece)
                runtime.stream_writer({"persona": piece})
    except Exception:
        logger.exception("persona engine failed; scripted line used", extra={"kind": request.kind})
    text = " ".join(pieces)
    if not text:
        text = " ".join(ctx.fallback.compose(request).split())
        runtime.stream_writer({"persona": text})
    return text


def _persona_turn(state: RoleplayState, ctx: RoleplayContext, text: str) -> TurnRecord:
    scenario = _scenario(state, ctx)
    stage_index = min(state.get("stage", 0), len(scenario.stages) - 1)
    return TurnRecord(
        speaker="persona",
        text=text,
        at=round(_elapsed(state, ctx), 3),
        stage=scenario.stages[stage_index].id,
        meter=state.get("meter", 0),
    )


# -- nodes ----------------------------------------------------------------------------------


async def begin(state: RoleplayState, runtime: Runtime[RoleplayContext]) -> dict[str, Any]:
    ctx = runtime.context
    scenario = _scenario(state, ctx)
    persona = ctx.library.persona_for(scenario)
    now = ctx.clock()
    logger.info(
        "practice session started",
        extra={"session_id": state["session_id"], "scenario": scenario.slug},
    )
    return {
        "started_at": now,
        "started_iso": datetime.fromtimestamp(now, UTC).isoformat(),
        "meter": persona.emotional_start,
        "meter_trace": [persona.emotional_start],
        "stage": 0,
        "silences": 0,
        "rep_turns": 0,
        "status": "active",
        "engine": ctx.engine.name,
        "newly_released": [],
        "stage_changed": False,
        "pending": None,
        "observation": None,
    }


async def speak(state: RoleplayState, runtime: Runtime[RoleplayContext]) -> dict[str, Any]:
    ctx = runtime.context
    pending = state.get("pending")
    if not state.get("turns"):
        kind: ReplyKind = "opening"
    elif pending is not None and pending["kind"] == "silence":
        kind = "nudge"
    else:
        kind = "reply"
    text = await _say(_request(state, ctx, kind), ctx, runtime)
    return {"turns": [_persona_turn(state, ctx, text)]}


async def listen(state: RoleplayState, runtime: Runtime[RoleplayContext]) -> dict[str, Any]:
    value = interrupt({"awaiting": "rep", "session_id": state["session_id"]})
    if not isinstance(value, dict) or value.get("kind") not in ("turn", "silence", "end"):
        value = {"kind": "turn", "text": str(value)}
    text = " ".join(str(value.get("text", "")).split())
    kind: InputKind = value["kind"]
    if kind == "turn" and not text:
        kind = "silence"
    return {"pending": RepInput(kind=kind, text=text)}


async def observe(state: RoleplayState, runtime: Runtime[RoleplayContext]) -> dict[str, Any]:
    ctx = runtime.context
    scenario = _scenario(state, ctx)
    pending = state.get("pending") or RepInput(kind="end", text="")
    update: dict[str, Any] = {"newly_released": [], "stage_changed": False, "observation": None}
    if pending["kind"] == "silence":
        update["silences"] = state.get("silences", 0) + 1
        return update
    if pending["kind"] == "end":
        return update

    rubric = ctx.rubrics.for_role(scenario.role)
    observation = await asyncio.to_thread(ctx.observer.observe, pending["text"], scenario, rubric)
    known = state.get("observed", {})
    # once a criterion's good anchor has been shown, a later look-alike of its poor one is moot
    observation = observation.without(
        {f"{cid}.poor" for cid in scenario.anchors if f"{cid}.good" in known}
    )
    turn_index = len(state.get("turns", []))
    stage_index = state.get("stage", 0)
    fresh = {
        signal: {"turn": turn_index, "quote": hit.quote, "similarity": round(hit.similarity, 4)}
        for signal, hit in observation.hits.items()
        if signal not in known
    }
    observed = {**fresh, **known}

    released = set(state.get("released", []))
    newly = [
        item.id
        for item in _held_back(ctx, scenario)
        if item.id not in released and any(s in observed for s in item.earned_by)
    ]
    stage = scenario.stages[stage_index]
    advanced = stage_index < len(scenario.stages) - 1 and any(
        s in observed for s in stage.advance_when
    )
    update.update(
        {
            "turns": [
                TurnRecord(
                    speaker="rep",
                    text=pending["text"],
                    at=round(_elapsed(state, ctx), 3),
                    stage=stage.id,
                    meter=state.get("meter", 0),
                )
            ],
            "observed": fresh,
            "released": newly,
            "newly_released": newly,
            "stage": stage_index + 1 if advanced else stage_index,
            "stage_changed": advanced,
            "silences": 0,
            "rep_turns": state.get("rep_turns", 0) + 1,
            "observation": observation.as_dict(),
        }
    )
    logger.debug(
        "rep turn observed",
        extra={
            "session_id": state["session_id"],
            "signals": sorted(observation.hits),
            "released": newly,
            "stage": update["stage"],
        },
    )
    return update


def _end(outcome: Outcome, reason: str, meter: int) -> dict[str, Any]:
    return {
        "decision": "end",
        "outcome": outcome,
        "end_reason": reason,
        "meter": meter,
        "meter_trace": [meter],
    }


async def decide(state: RoleplayState, runtime: Runtime[RoleplayContext]) -> dict[str, Any]:
    ctx = runtime.context
    scenario = _scenario(state, ctx)
    persona = ctx.library.persona_for(scenario)
    pending = state.get("pending") or RepInput(kind="end", text="")
    observed = state.get("observed", {})
    raw = state.get("observation")
    observation = Observation.from_dict(raw) if raw else None
    meter = state.get("meter", persona.emotional_start)
    success = _success(scenario, observed)
    settled: Outcome = "resolved" if success else "unresolved"

    if pending["kind"] == "end":
        return _end(settled, "ended by the rep", meter)
    if observation is not None and observation.wrap_up:
        return _end(settled, "wrap-up", meter)
    if _elapsed(state, ctx) >= scenario.time_box_minutes * 60:
        return _end(settled, "time box reached", meter)

    delta = 0
    if pending["kind"] == "silence":
        if state.get("silences", 0) >= scenario.max_silences:
            return _end("walked_out", "the rep went silent", meter)
        delta = 1
    elif observation is not None:
        delta = persona.volatility * (
            (1 if observation.poor else 0) - (1 if observation.good else 0)
        )
    meter = max(0, min(METER_MAX, meter + delta))
    decision: Decision = "escalate" if delta > 0 else "soften" if delta < 0 else "continue"

    if scenario.walk_out_at is not None and meter >= scenario.walk_out_at:
        return _end("walked_out", "the persona walked out", meter)
    if success and scenario.end_on_success:
        return _end("resolved", "success", meter)
    if state.get("rep_turns", 0) >= scenario.turn_limit:
        return _end(settled, "turn limit reached", meter)
    return {"decision": decision, "meter": meter, "meter_trace": [meter]}


def after_decide(state: RoleplayState) -> Literal["speak", "close"]:
    return "close" if state.get("decision") == "end" else "speak"


async def close(state: RoleplayState, runtime: Runtime[RoleplayContext]) -> dict[str, Any]:
    ctx = runtime.context
    outcome: Outcome = state.get("outcome") or "unresolved"
    pending = state.get("pending")
    if pending is not None and pending["kind"] == "end" and not state.get("rep_turns"):
        return {}  # ended before the rep said anything: no closing line
    text = await _say(_request(state, ctx, "closing", outcome), ctx, runtime)
    return {"turns": [_persona_turn(state, ctx, text)]}


async def finish(state: RoleplayState, runtime: Runtime[RoleplayContext]) -> dict[str, Any]:
    ctx = runtime.context
    scenario = _scenario(state, ctx)
    turns = state.get("turns", [])
    duration = max([t["at"] for t in turns] + [_elapsed(state, ctx)])
    finished = FinishedSession(
        session_id=state["session_id"],
        scenario=scenario,
        turns=[(t["speaker"], t["text"], t["at"]) for t in turns],
        started_at=datetime.fromisoformat(state["started_iso"]),
        duration_s=duration,
        outcome=state.get("outcome") or "unresolved",
        end_reason=state.get("end_reason") or "ended",
        engine=state.get("engine", ctx.engine.name),
        channel=state.get("channel", "chat"),
        rep_id=state.get("rep_id"),
        rep_external_id=state.get("rep_external_id"),
        assignment_id=state.get("assignment_id"),
        meta={
            "meter_trace": state.get("meter_trace", []),
            "stages": sorted(
                {t["stage"] for t in turns}, key=[s.id for s in scenario.stages].index
            ),
            "released": state.get("released", []),
        },
    )
    result = await ctx.recorder.record(finished)
    return {"status": "ended", "result": result.model_dump(mode="json")}


def build_graph() -> StateGraph[RoleplayState, RoleplayContext, RoleplayState, RoleplayState]:
    graph = StateGraph(RoleplayState, context_schema=RoleplayContext)
    graph.add_node("begin", begin)
    graph.add_node("speak", speak)
    graph.add_node("listen", listen)
    graph.add_node("observe", observe)
    graph.add_node("decide", decide)
    graph.add_node("close", close)
    graph.add_node("finish", finish)
    graph.add_edge(START, "begin")
    graph.add_edge("begin", "speak")
    graph.add_edge("speak", "listen")
    graph.add_edge("listen", "observe")
    graph.add_edge("observe", "decide")
    graph.add_conditional_edges("decide", after_decide, ["speak", "close"])
    graph.add_edge("close", "finish")
    graph.add_edge("finish", END)
    return graph


def compile_roleplay(
    checkpointer: BaseCheckpointSaver[Any],
) -> CompiledStateGraph[RoleplayState, RoleplayContext, RoleplayState, RoleplayState]:
    """The roleplay graph, checkpointed; the thread id is the practice session id."""
    return build_graph().compile(checkpointer=checkpointer)
