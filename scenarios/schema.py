"""The scenario: a practice situation with the coaching method's four parts.

1. a context briefing for the rep (`briefing`);
2. the persona they talk to (`persona`, a slug in the persona library), with the situation
   as the persona sees it (`situation`);
3. evaluation criteria mapped to rubric criterion ids (`criteria`);
4. behavioural anchors for good and poor responses per criterion (`anchors`), each with
   example lines and, optionally, how the persona reacts to them.

It also holds what the roleplay runs on: the opening line, the stages with scripted lines per
emotional state, information held back until earned, success and end conditions, a time box
and a turn limit.

Signals are how the roleplay talks about what the rep did: a rubric check id
(`gives_timeframe`) or an anchor of this scenario (`acknowledge_concern.good`).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from personas.schema import Difficulty, Emotion, HeldBack, SignalId, Slug


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


CriterionId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_\-]*$")]


class TargetCriterion(_Frozen):
    id: CriterionId
    """A criterion id of the rubric for the scenario's role."""
    focus: str
    """What this scenario asks of the rep on the criterion, shown in the briefing."""


class AnchorExample(_Frozen):
    text: str
    """Something a rep might say, in the company's words."""
    reaction: str | None = None
    """What the persona says back when the rep's turn matches this example."""
    shows: list[SignalId] = []
    """Rubric checks this line demonstrates; a rep turn that matches the line shows them too.

    Sentence similarity leans on topic words, so a line about "the engineer booking call"
    may not come close to a generic exemplar ("talk me through that call"); saying what the
    line shows keeps the roleplay's observation in step with the author's intent.
    """


class AnchorSide(_Frozen):
    behaviour: str
    """The response in observable terms: what the rep says or does, not a trait."""
    examples: list[AnchorExample] = Field(min_length=1)


class Anchor(_Frozen):
    good: AnchorSide
    poor: AnchorSide


class Stage(_Frozen):
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_\-]*$")]
    goal: str
    """What the persona is after in this stage, for the LLM persona's prompt."""
    advance_when: list[SignalId] = []
    """Signals that move the conversation to the next stage; any one is enough."""
    lines: dict[Emotion, list[str]]
    """Scripted lines per emotional state; a missing state falls back to the nearest one."""

    @model_validator(mode="after")
    def _has_lines(self) -> Stage:
        if not any(self.lines.values()):
            raise ValueError("a stage needs scripted lines for at least one emotional state")
        return self


class Success(_Frozen):
    description: str
    """What a successful session achieves, in observable terms."""
    all_of: list[SignalId] = Field(min_length=1)
    """Signals that must all be observed for the session to count as a success."""


class Closing(_Frozen):
    resolved: list[str] = Field(min_length=1)
    """The persona's last words when the success signals were all observed."""
    unresolved: list[str] = Field(min_length=1)
    """Last words when the session ends without success (wrap-up, turn limit, time box)."""
    walked_out: list[str] = Field(min_length=1)
    """Last words when the meter reaches `walk_out_at` or the rep has gone silent."""


class Scenario(_Frozen):
    slug: Slug
    title: str
    role: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_\-]*$")]
    """The rep role it trains; the rubric for this role scores the session."""
    difficulty: Difficulty
    persona: Slug
    briefing: str
    """Context for the rep before they start: who calls, what the rep can see, the aim."""
    situation: str
    """What has happened, as the persona sees it (never shown to the rep)."""
    opening_line: str
    criteria: list[TargetCriterion] = Field(min_length=1)
    anchors: dict[CriterionId, Anchor]
    held_back: list[HeldBack] = []
    """Facts of this situation the persona holds back, besides the persona's own."""
    stages: list[Stage] = Field(min_length=1)
    success: Success
    closing: Closing
    products: list[str] = []
    """Company product ids the conversation is about; the LLM persona's prompt lists them."""
    walk_out_at: int | None = Field(default=10, ge=1, le=10)
    """Meter value at which the persona ends the conversation; None means never."""
    end_on_success: bool = True
    """End once the success signals are all observed, with a `resolved` closing line."""
    time_box_minutes: float = Field(default=10, gt=0, le=60)
    turn_limit: int = Field(default=16, ge=2, le=60)
    """Rep turns before the persona closes the conversation."""
    silence_timeout_s: float = Field(default=20, gt=0, le=300)
    """How long a surface waits for the rep before reporting silence."""
    max_silences: int = Field(default=2, ge=1, le=10)
    """Silences in a row before the persona gives up."""

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        ids = [c.id for c in self.criteria]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"criteria ids must be unique; repeated: {repeated}")
        missing = [i for i in ids if i not in self.anchors]
        if missing:
            raise ValueError(
                f"criteria {missing} have no anchors; give good and poor anchors for every "
                "criterion the scenario targets"
            )
        extra = sorted(set(self.anchors) - set(ids))
        if extra:
            raise ValueError(f"anchors {extra} are for criteria the scenario does not list")
        stage_ids = [s.id for s in self.stages]
        if len(set(stage_ids)) != len(stage_ids):
            raise ValueError("stage ids must be unique")
        held = [h.id for h in self.held_back]
        if len(set(held)) != len(held):
            raise ValueError("held_back ids must be unique")
        return self

    @property
    def criterion_ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.criteria)

    def anchor_signals(self) -> set[str]:
        return {f"{cid}.{side}" for cid in self.anchors for side in ("good", "poor")}

    def signals_used(self) -> list[tuple[str, str]]:
        """Every (field path, signal) the scenario refers to, for lint."""
        used: list[tuple[str, str]] = []
        for i, stage in enumerate(self.stages):
            used.extend((f"stages.{i}.advance_when", s) for s in stage.advance_when)
        used.extend(("success.all_of", s) for s in self.success.all_of)
        for cid, anchor in self.anchors.items():
            for side in ("good", "poor"):
                spec = anchor.good if side == "good" else anchor.poor
                for j, example in enumerate(spec.examples):
                    where = f"anchors.{cid}.{side}.examples.{j}.shows"
                    used.extend((where, s) for s in example.shows)
        for i, item in enumerate(self.held_back):
            used.extend((f"held_back.{i}.earned_by", s) for s in item.earned_by)
        return used
