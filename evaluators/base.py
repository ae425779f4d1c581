"""What every judge takes and returns.

A judge reads a transcript and a rubric and returns, per criterion, a level (or N/A), the
result of every check with its evidence, and a confidence. Levels always follow from checks
through `Criterion.level_from_checks`, never from a free guess.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from config.rubric import Rubric


@dataclass(frozen=True, slots=True)
class TurnView:
    idx: int
    speaker: str
    """`agent`, `customer` or `other`."""
    text: str
    start_s: float | None = None
    end_s: float | None = None


@dataclass(frozen=True, slots=True)
class Transcript:
    """The turns of one interaction, as a judge sees them (no names, no ids beyond its own)."""

    turns: Sequence[TurnView]
    interaction_id: int | None = None
    role: str | None = None
    """The rep's job role, which selects role-specific criteria."""
    target_turn: int | None = None
    """Position in `turns` of the one turn being judged, the turns before it its context;
    None judges the whole interaction."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    check_id: str
    observed: bool
    turn: int | None = None
    """Index of the evidence turn in the transcript."""
    start_s: float | None = None
    quote: str | None = None
    """Exact text from that turn."""
    similarity: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.check_id,
            "observed": self.observed,
            "turn": self.turn,
            "start_s": self.start_s,
            "quote": self.quote,
            "similarity": self.similarity,
        }


@dataclass(frozen=True, slots=True)
class CriterionVerdict:
    criterion_id: str
    level: int | None
    """1-3, or None when the criterion does not apply to this interaction."""
    checks: list[CheckResult] = field(default_factory=list)
    confidence: float = 0.0
    rationale: str = ""

    @property
    def not_applicable(self) -> bool:
        return self.level is None


@dataclass(frozen=True, slots=True)
class Verdict:
    judge: str
    criteria: list[CriterionVerdict]
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def levels(self) -> dict[str, int | None]:
        return {c.criterion_id: c.level for c in self.criteria}


class EvaluatorError(Exception):
    """Base class for evaluator failures."""


class Unscored(EvaluatorError):
    """The judge could not produce a trustworthy verdict; the reason is stored, never a score."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@runtime_checkable
class Judge(Protocol):
    @property
    def name(self) -> str:
        """Judge name and version, e.g. `offline-minilm@1`; stored with every score."""
        ...

    async def evaluate(self, transcript: Transcript, rubric: Rubric) -> Verdict:
        """Score one transcript; raise `Unscored` rather than guess."""
        ...

    async def evaluate_many(
        self, transcripts: Sequence[Transcript], rubric: Rubric
    ) -> list[Verdict | Unscored]:
        """Score a batch; a failed item comes back as its `Unscored`, the rest go through."""
        ...
