"""The rubric: three to five observable criteria per role, each with levels 1-3 decided by checks.

A rubric is data. It is written in YAML, validated by the frozen models below, and versioned
by the hash of its content: every score stored later pins that version.

How levels follow from checks (the rule every judge applies):

- a criterion is N/A when it has an `applies_when` check and that check is not observed;
- level 3 when every required check of level 2 and of level 3 is observed;
- level 2 when every required check of level 2 is observed;
- level 1 otherwise. Level 1 checks describe the poor behaviour; they are evidence, never a gate.

`require: any` on a level relaxes "every check" to "at least one check" for that level.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

logger = logging.getLogger(__name__)

Level = Literal[1, 2, 3]
LEVELS: tuple[Level, ...] = (1, 2, 3)
RECOMMENDED_MAX_CRITERIA = 5
SHIPPED_RUBRIC_DIR = Path(__file__).parent / "data" / "rubrics"


class RubricError(Exception):
    """A rubric file that cannot be loaded; the message names the file and the field."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Check(_Frozen):
    """A yes/no observation a reviewer can verify by reading the transcript."""

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_\-]*$")]
    question: str
    """Phrased so the answer is yes or no, e.g. "Does the rep restate the customer's issue?"."""
    exemplars: list[str] = []
    """Phrases from real calls that show the check being met."""
    counter_examples: list[str] = []
    """Phrases that look close but do not meet the check."""
    speaker: Literal["agent", "customer", "any"] = "agent"


class LevelSpec(_Frozen):
    anchor: str
    """What this level looks like, in observable terms."""
    examples: list[str] = []
    """Language from real calls at this level."""
    checks: list[Check] = []
    require: Literal["all", "any"] = "all"


class Criterion(_Frozen):
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_\-]*$")]
    name: str
    behaviour: str
    """The observable behaviour, e.g. "acknowledges the concern before redirecting to process"."""
    weight: float | None = Field(default=None, ge=0)
    levels: dict[Level, LevelSpec]
    roles: list[str] = []
    """Roles the criterion applies to; empty means every role the rubric serves."""
    applies_when: Check | None = None
    """When this check is not observed, the criterion is N/A for the interaction."""
    compliance: bool = False
    """A level 1 on a compliance criterion fails the whole interaction."""

    @field_validator("levels")
    @classmethod
    def _all_three_levels(cls, levels: dict[Level, LevelSpec]) -> dict[Level, LevelSpec]:
        missing = [lvl for lvl in LEVELS if lvl not in levels]
        if missing:
            raise ValueError(
                f"levels {missing} are missing; every criterion needs levels 1, 2 and 3"
            )
        return levels

    @property
    def checks(self) -> list[Check]:
        return [check for lvl in LEVELS for check in self.levels[lvl].checks]

    def level_from_checks(self, observed: Mapping[str, bool]) -> Level:
        """Apply the rubric's rule: the highest level whose required checks are all observed."""

        def met(lvl: Level) -> bool:
            spec = self.levels[lvl]
            if not spec.checks:
                return False
            results = [observed.get(check.id, False) for check in spec.checks]
            return all(results) if spec.require == "all" else any(results)

        if met(2) and met(3):
            return 3
        if met(2):
            return 2
        return 1

    def is_applicable(self, observed: Mapping[str, bool]) -> bool:
        if self.applies_when is None:
            return True
        return observed.get(self.applies_when.id, False)


class Rubric(_Frozen):
    role: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_\-]*$")]
    name: str
    description: str = ""
    roles: list[str] = []
    """Every role this rubric scores; defaults to `[role]`."""
    flag_below: float = Field(default=2.0, ge=1, le=3)
    """An interaction whose level on any criterion is below this is flagged for review."""
    criteria: list[Criterion]

    @model_validator(mode="after")
    def _check_shape(self) -> Rubric:
        if not self.criteria:
            raise ValueError("a rubric needs at least one criterion (three to five recommended)")
        ids = [c.id for c in self.criteria]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"criterion ids must be unique; repeated: {duplicates}")
        check_ids = [check.id for c in self.criteria for check in c.checks]
        repeated = sorted({i for i in check_ids if check_ids.count(i) > 1})
        if repeated:
            raise ValueError(f"check ids must be unique across the rubric; repeated: {repeated}")
        given = [c.weight for c in self.criteria if c.weight is not None]
        if given and len(given) != len(self.criteria):
            raise ValueError(
                "give a weight to every criterion or to none (none means equal weights)"
            )
        return self

    @property
    def served_roles(self) -> list[str]:
        return self.roles or [self.role]

    @property
    def version(self) -> str:
        """Content hash: the same rubric always has the same version, any edit a new one."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def weights(self) -> dict[str, float]:
        """Weights per criterion as fractions summing to 1 (equal when none are given)."""
        if all(c.weight is None for c in self.criteria):
            return {c.id: 1 / len(self.criteria) for c in self.criteria}
        total = sum(c.weight or 0 for c in self.criteria)
        if total <= 0:
            return {c.id: 1 / len(self.criteria) for c in self.criteria}
        return {c.id: (c.weight or 0) / total for c in self.criteria}

    def criteria_for(self, role: str | None) -> list[Criterion]:
        return [c for c in self.criteria if not c.roles or role is None or role in c.roles]

    def criterion(self, criterion_id: str) -> Criterion:
        for criterion in self.criteria:
            if criterion.id == criterion_id:
                return criterion
        known = ", ".join(c.id for c in self.criteria)
        raise KeyError(f"No criterion `{criterion_id}` in rubric `{self.role}`; known: {known}")

    def weighted_total(self, levels: Mapping[str, int | None]) -> float | None:
        """Weighted mean level over the criteria that were scored (N/A ones re-weighted away)."""
        weights = self.weights()
        scored = {cid: lvl for cid, lvl in levels.items() if lvl is not None and cid in weights}
        mass = sum(weights[cid] for cid in scored)
        if not scored or mass <= 0:
            return None
        return sum(weights[cid] * lvl for cid, lvl in scored.items()) / mass

    def fails_compliance(self, levels: Mapping[str, int | None]) -> bool:
        return any(c.compliance and levels.get(c.id) == 1 for c in self.criteria)


def _format_validation_error(path: Path, exc: ValidationError) -> str:
    lines = [f"{path}: the rubric is not valid:"]
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        lines.append(f"  - {where}: {error['msg']}")
    return "\n".join(lines)


def parse_rubric(data: object, *, source: Path) -> Rubric:
    if not isinstance(data, dict):
        raise RubricError(f"{source}: a rubric file must hold a mapping with `role` and `criteria`")
    try:
        rubric = Rubric.model_validate(data)
    except ValidationError as exc:
        raise RubricError(_format_validation_error(source, exc)) from None
    if len(rubric.criteria) > RECOMMENDED_MAX_CRITERIA:
        logger.warning(
            "rubric has more than five criteria",
            extra={"rubric": rubric.role, "criteria": len(rubric.criteria), "path": str(source)},
        )
    return rubric


def load_rubric(path: Path) -> Rubric:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RubricError(f"{path}: no such rubric file") from None
    except UnicodeDecodeError as exc:
        raise RubricError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RubricError(f"{path}: not valid YAML: {exc}") from None
    return parse_rubric(data, source=path)


class RubricLibrary:
    """The rubrics of one organisation, by role."""

    def __init__(self, rubrics: Iterable[Rubric]) -> None:
        self._by_role: dict[str, Rubric] = {}
        for rubric in rubrics:
            for role in rubric.served_roles:
                self._by_role[role] = rubric

    @classmethod
    def from_dir(cls, directory: Path | None = None) -> RubricLibrary:
        directory = directory or SHIPPED_RUBRIC_DIR
        files = sorted(directory.glob("*.yaml")) + sorted(directory.glob("*.yml"))
        if not files:
            raise RubricError(f"{directory}: no rubric files (*.yaml); set COACHLOOP_RUBRIC_DIR")
        return cls(load_rubric(path) for path in files)

    @property
    def roles(self) -> list[str]:
        return sorted(self._by_role)

    @property
    def rubrics(self) -> list[Rubric]:
        unique = {rubric.version: rubric for rubric in self._by_role.values()}
        return list(unique.values())

    def for_role(self, role: str) -> Rubric:
        try:
            return self._by_role[role]
        except KeyError:
            known = ", ".join(self.roles) or "none"
            raise RubricError(f"No rubric for role `{role}`; rubrics exist for: {known}") from None
