"""The persona: who the rep talks to in practice, written as YAML and validated here.

A persona is a customer (for support and sales practice) or an advisor (for a team lead
practising feedback). It carries what an actor would need: who they are, how they speak,
what they want, what they hold back until the rep earns it, and how quickly they heat up.

Every model is frozen with `extra="forbid"`, so a typo in a persona file fails at load time
with the field path.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Difficulty = Literal["easy", "medium", "hard"]
DIFFICULTIES: tuple[Difficulty, ...] = ("easy", "medium", "hard")

Emotion = Literal["calm", "frustrated", "angry"]
EMOTIONS: tuple[Emotion, ...] = ("calm", "frustrated", "angry")
METER_MAX = 10
"""The emotional meter runs from 0 (calm) to 10 (ready to hang up)."""

Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9\-]*$", max_length=128)]
SignalId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_\-]*(\.(good|poor))?$")]
"""A rubric check id (`gives_timeframe`) or a scenario anchor (`acknowledge_concern.good`)."""


def emotion_for(meter: int) -> Emotion:
    """The emotional state a meter value reads as: 0-3 calm, 4-7 frustrated, 8-10 angry."""
    if meter <= 3:
        return "calm"
    if meter <= 7:
        return "frustrated"
    return "angry"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class HeldBack(_Frozen):
    """Something the persona knows but says only once the rep has earned it."""

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_\-]*$")]
    fact: str
    """The information itself, as the persona would know it."""
    line: str
    """What the persona says when it is released (the scripted engine says exactly this)."""
    earned_by: list[SignalId] = Field(min_length=1)
    """Signals that release it; any one of them is enough."""
    markers: list[str] = Field(min_length=1)
    """Words or figures that only appear when the fact is told; a reply that contains one
    before the fact is released has leaked it."""


class VoiceSpec(_Frozen):
    """How the persona sounds through text-to-speech (the voice agent's `VoiceStyle`)."""

    piper_voice: str | None = None
    """A Piper voice name or `.onnx` path; unset means the configured voice."""
    speed: float = Field(default=1.0, ge=0.25, le=4.0)
    """Speaking rate; 1.2 is 20% faster."""
    variation: float = Field(default=1.0, ge=0.0, le=2.0)
    """How much pitch and timing vary; 0 is flat."""


class Persona(_Frozen):
    slug: Slug
    name: str
    kind: Literal["customer", "advisor"] = "customer"
    """A customer of the company, or an advisor receiving feedback from a team lead."""
    role: str
    """Who they are in one line, e.g. "retired teacher, Harbor Fibre 150 customer since 2019"."""
    company_context: str
    """Their history with the company: products, past calls, what they were promised."""
    personality: str
    speaking_style: str
    emotional_start: int = Field(ge=0, le=METER_MAX)
    """Where the meter starts: 0-3 calm, 4-7 frustrated, 8-10 angry."""
    volatility: int = Field(default=2, ge=1, le=4)
    """How far one good or poor turn moves the meter."""
    difficulty: Difficulty
    goals: list[str] = Field(min_length=1)
    objections: list[str] = []
    held_back: list[HeldBack] = []
    phrases: list[str] = []
    """Things they say, in their own words; the LLM persona borrows their style."""
    deflections: list[str] = Field(min_length=1)
    """In-character answers to "are you an AI?", requests to drop the act or swap roles."""
    nudges: list[str] = Field(min_length=1)
    """What they say when the rep goes quiet."""
    voice: VoiceSpec = VoiceSpec()

    @model_validator(mode="after")
    def _unique_held_back(self) -> Persona:
        ids = [item.id for item in self.held_back]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"held_back ids must be unique; repeated: {repeated}")
        return self

    @property
    def first_name(self) -> str:
        return self.name.split()[0]
