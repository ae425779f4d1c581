"""The interface both persona engines share, and what the roleplay tells them each turn.

The roleplay graph decides everything that matters for fairness (what the rep has earned,
the stage, the emotional state, whether the conversation ends); an engine only turns that
into the persona's words. Engines stream: `stream` yields the reply in pieces (sentences for
the LLM persona) as soon as each piece has passed the output checks, so a voice agent can
start speaking early.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from config.company import CompanyProfile
from personas import Emotion, HeldBack, Persona
from scenarios.guard import ProbeKind
from scenarios.observe import Observation
from scenarios.schema import Scenario, Stage

ReplyKind = Literal["opening", "reply", "nudge", "closing"]
Outcome = Literal["resolved", "unresolved", "walked_out"]


@dataclass(frozen=True, slots=True)
class DialogueTurn:
    speaker: Literal["rep", "persona"]
    text: str


@dataclass(frozen=True, slots=True)
class PersonaRequest:
    """Everything an engine may use to write the persona's next words."""

    kind: ReplyKind
    scenario: Scenario
    persona: Persona
    company: CompanyProfile
    stage: Stage
    emotion: Emotion
    meter: int
    history: Sequence[DialogueTurn] = ()
    """The conversation so far, oldest first, ending with the rep's latest turn."""
    released: Sequence[HeldBack] = ()
    """Held-back facts the rep has earned, including those earned this turn."""
    newly_released: Sequence[HeldBack] = ()
    unreleased: Sequence[HeldBack] = ()
    """Facts the persona must not tell yet; the output checks look for their markers."""
    observation: Observation | None = None
    """What the rep's latest turn showed."""
    stage_changed: bool = False
    outcome: Outcome | None = None
    """For a closing: how the conversation ended."""
    said: frozenset[str] = field(default_factory=frozenset)
    """Scripted lines already said in this session (the scripted engine avoids repeats)."""

    @property
    def probe(self) -> ProbeKind | None:
        return self.observation.probe if self.observation else None

    @property
    def last_rep_turn(self) -> str:
        for turn in reversed(self.history):
            if turn.speaker == "rep":
                return turn.text
        return ""


@runtime_checkable
class PersonaEngine(Protocol):
    @property
    def name(self) -> str:
        """Engine name, stored with the practice session (`scripted`, `llm:gpt-4o-mini`)."""
        ...

    def stream(self, request: PersonaRequest) -> AsyncIterator[str]:
        """The persona's reply in pieces; every piece has passed the output checks."""
        ...

    async def reply(self, request: PersonaRequest) -> str:
        """The persona's whole reply."""
        ...
