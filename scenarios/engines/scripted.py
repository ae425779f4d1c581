"""The scripted persona: the scenario's own lines, no network, no model beyond the encoder.

What the persona says follows from what the rep's turn showed (the roleplay's observation,
made with the offline judge's similarity to the anchors):

1. an out-of-roleplay attempt gets one of the persona's in-character deflections;
2. a turn that matched an anchor example with a reaction gets that reaction;
3. each held-back fact released this turn is told with its own line;
4. otherwise (or when the stage has just moved on) a line of the current stage for the
   current emotional state, the first not said yet.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from personas import EMOTIONS, Emotion
from scenarios.engines.base import PersonaRequest
from scenarios.schema import Stage


def stage_lines(stage: Stage, emotion: Emotion) -> list[str]:
    """The stage's lines for `emotion`, or for the nearest emotional state that has some."""
    wanted = EMOTIONS.index(emotion)
    order = sorted(EMOTIONS, key=lambda e: (abs(EMOTIONS.index(e) - wanted), EMOTIONS.index(e)))
    for candidate in order:
        lines = stage.lines.get(candidate)
        if lines:
            return list(lines)
    return []


def pick(candidates: Sequence[str], said: frozenset[str]) -> str:
    """The first candidate not said yet; once all are used, cycle through them again."""
    if not candidates:
        return ""
    used = [c for c in candidates if any(c in text for text in said)]
    for candidate in candidates:
        if candidate not in used:
            return candidate
    return candidates[len(said) % len(candidates)]


class ScriptedPersona:
    """Persona engine that speaks the scenario's scripted lines."""

    @property
    def name(self) -> str:
        return "scripted"

    def compose(self, request: PersonaRequest) -> str:
        scenario, persona, said = request.scenario, request.persona, request.said
        if request.kind == "opening":
            return scenario.opening_line
        if request.kind == "nudge":
            return pick(persona.nudges, said)
        if request.kind == "closing":
            outcome = request.outcome or "unresolved"
            return pick(getattr(scenario.closing, outcome), said)

        parts: list[str] = []
        if request.probe is not None:
            parts.append(pick(persona.deflections, said))
        elif request.observation is not None and request.observation.reaction:
            parts.append(request.observation.reaction)
        parts.extend(item.line for item in request.newly_released)
        if not parts or (request.stage_changed and not request.newly_released):
            line = pick(stage_lines(request.stage, request.emotion), said | set(parts))
            if line and line not in parts:
                parts.append(line)
        return " ".join(parts)

    async def reply(self, request: PersonaRequest) -> str:
        return self.compose(request)

    async def stream(self, request: PersonaRequest) -> AsyncIterator[str]:
        text = self.compose(request)
        if text:
            yield text
