"""Coaching rules: when scores become individual coaching, a cohort response or just feedback.

The defaults follow the coaching method and ship in `config/data/coaching.yaml`. Trigger rules
can be overridden per role; only the keys given for a role change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

SHIPPED_COACHING_FILE = Path(__file__).parent / "data" / "coaching.yaml"

AlertMode = Literal["immediate", "digest"]


class CoachingConfigError(Exception):
    """A coaching rules file that cannot be loaded; the message names the file and the field."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TriggerRules(_Frozen):
    """The trigger rules for one role."""

    individual_below: float = Field(default=1.8, ge=1, le=3)
    """Individual coaching when a rep's mean on a criterion is below this over the window."""
    window_days: int = Field(default=30, ge=1, le=365)
    min_sessions: int = Field(default=5, ge=1)
    """Scored sessions on the criterion within the window before any rule can fire."""
    decline_sessions: int = Field(default=3, ge=2, le=10)
    decline_strict: bool = True
    """Strict: every session lower than the one before; otherwise never rising, lower at the end."""
    cohort_share: float = Field(default=0.4, gt=0, le=1)
    cohort_min_reps: int = Field(default=3, ge=1)
    session_flag_below: float = Field(default=2.0, ge=1, le=3)
    individual_cooldown_days: int = Field(default=7, ge=0)
    decline_cooldown_days: int = Field(default=7, ge=0)
    cohort_cooldown_days: int = Field(default=14, ge=0)


class FeedbackRules(_Frozen):
    sla_hours: float = Field(default=48, gt=0)


class CohortRules(_Frozen):
    auto_approve_hours: float = Field(default=24, gt=0)
    team_session_minutes: int = Field(default=30, ge=5)


class AlertRules(_Frozen):
    default_mode: AlertMode = "immediate"
    session_flags: Literal["immediate", "digest", "off"] = "digest"
    digest_hour_utc: int = Field(default=8, ge=0, le=23)


class OutcomeRules(_Frozen):
    metrics: list[str] = ["csat", "resolution_rate", "qa_score"]


class ReportRules(_Frozen):
    flat_delta: float = Field(default=0.1, ge=0)
    min_correlation_n: int = Field(default=5, ge=2)


class CoachingRules(_Frozen):
    """Everything the coaching engine is configured by."""

    triggers: TriggerRules = TriggerRules()
    feedback: FeedbackRules = FeedbackRules()
    cohort: CohortRules = CohortRules()
    alerts: AlertRules = AlertRules()
    outcomes: OutcomeRules = OutcomeRules()
    reports: ReportRules = ReportRules()
    roles: dict[str, dict[str, Any]] = {}
    """Per-role trigger overrides, e.g. `{"sales": {"window_days": 14}}`."""

    _by_role: dict[str, TriggerRules] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _resolve_roles(self) -> CoachingRules:
        base = self.triggers.model_dump()
        for role, overrides in self.roles.items():
            unknown = sorted(set(overrides) - set(base))
            if unknown:
                known = ", ".join(sorted(base))
                raise ValueError(f"roles.{role}: unknown trigger keys {unknown}; known: {known}")
            try:
                self._by_role[role] = TriggerRules.model_validate({**base, **overrides})
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(part) for part in first["loc"])
                raise ValueError(f"roles.{role}.{where}: {first['msg']}") from None
        return self

    def for_role(self, role: str | None) -> TriggerRules:
        """The trigger rules for `role`: the defaults with that role's overrides applied."""
        if role is None:
            return self.triggers
        return self._by_role.get(role, self.triggers)


def parse_coaching_rules(data: object, *, source: Path | None = None) -> CoachingRules:
    where = str(source) if source else "coaching rules"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise CoachingConfigError(f"{where}: expected a mapping of rule groups")
    try:
        return CoachingRules.model_validate(data)
    except ValidationError as exc:
        lines = [f"{where}: the coaching rules are not valid:"]
        for error in exc.errors():
            loc = ".".join(str(part) for part in error["loc"]) or "(top level)"
            lines.append(f"  - {loc}: {error['msg']}")
        raise CoachingConfigError("\n".join(lines)) from None


def load_coaching_rules(path: Path | None = None) -> CoachingRules:
    """Load the coaching rules from `path`, or the shipped defaults when it is None."""
    path = path or SHIPPED_COACHING_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CoachingConfigError(f"{path}: no such coaching rules file") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CoachingConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_coaching_rules(data, source=path)
