"""The tables. Every change here comes with an Alembic migration in `store/migrations`.

Times are timezone-aware and stored as UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class Access(StrEnum):
    rep = "rep"
    manager = "manager"
    admin = "admin"


class Speaker(StrEnum):
    agent = "agent"
    customer = "customer"
    other = "other"


class InteractionKind(StrEnum):
    call = "call"
    practice = "practice"


class Team(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(unique=True, index=True, max_length=64)
    name: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow)


class Person(SQLModel, table=True):
    """A rep, manager or admin. Reps have a job role (support, sales, team-lead) and a team."""

    id: int | None = Field(default=None, primary_key=True)
    external_id: str = Field(unique=True, index=True, max_length=128)
    """The organisation's own id (employee id or e-mail); what imports and calls refer to."""
    name: str = Field(max_length=200)
    email: str | None = Field(default=None, max_length=320, index=True)
    slack_user_id: str | None = Field(default=None, max_length=32, index=True)
    access: Access = Field(default=Access.rep)
    role: str | None = Field(default=None, max_length=64)
    team_id: int | None = Field(default=None, foreign_key="team.id", index=True)
    manager_id: int | None = Field(default=None, foreign_key="person.id", index=True)
    pilot: bool = False
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)


class TeamManager(SQLModel, table=True):
    """Which managers look after which teams (a manager may have several)."""

    team_id: int = Field(foreign_key="team.id", primary_key=True)
    person_id: int = Field(foreign_key="person.id", primary_key=True)


class Interaction(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("source", "external_id", name="uq_interaction_source_external"),
        Index("ix_interaction_rep_started", "rep_id", "started_at"),
        Index("ix_interaction_team_started", "team_id", "started_at"),
        Index(
            "ix_interaction_team_kind_started",
            "team_id",
            "kind",
            "started_at",
            postgresql_include=["id"],
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    external_id: str = Field(max_length=256)
    source: str = Field(max_length=64)
    """Where it came from: a file format, a call platform, or `practice`."""
    kind: InteractionKind = Field(default=InteractionKind.call)
    channel: str = Field(default="phone", max_length=32)
    rep_id: int = Field(foreign_key="person.id")
    team_id: int | None = Field(default=None, foreign_key="team.id")
    started_at: datetime
    duration_s: float = 0.0
    content_hash: str = Field(unique=True, max_length=64)
    """sha256 of the normalised turns: the same call under another file name is a duplicate."""
    turn_count: int = 0
    meta: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    ingested_at: datetime = Field(default_factory=utcnow)


class Turn(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("interaction_id", "idx", name="uq_turn_interaction_idx"),)

    id: int | None = Field(default=None, primary_key=True)
    interaction_id: int = Field(foreign_key="interaction.id")
    idx: int
    speaker: Speaker
    start_s: float | None = None
    end_s: float | None = None
    text: str


class RubricVersion(SQLModel, table=True):
    """Every rubric version ever used to score, so old scores stay readable after edits."""

    version: str = Field(primary_key=True, max_length=32)
    role: str = Field(max_length=64, index=True)
    name: str = Field(max_length=200)
    content: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    live: bool = False
    """Set once calibration has passed the go-live gate."""
    created_at: datetime = Field(default_factory=utcnow)


class Evaluation(SQLModel, table=True):
    """One judge's verdict on one interaction under one rubric version: written once."""

    __table_args__ = (
        UniqueConstraint("interaction_id", "rubric_version", "judge", name="uq_evaluation_once"),
        Index("ix_evaluation_interaction_status", "interaction_id", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    interaction_id: int = Field(foreign_key="interaction.id", index=True)
    rubric_version: str = Field(foreign_key="rubricversion.version", max_length=32)
    judge: str = Field(max_length=128)
    """Judge name and version, e.g. `offline-minilm@1`."""
    status: str = Field(default="scored", max_length=16)
    """`scored` or `unscored`; an unscored evaluation carries its reason and no scores."""
    reason: str | None = None
    weighted_total: float | None = None
    flagged: bool = False
    compliance_failed: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    created_at: datetime = Field(default_factory=utcnow)


class Score(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("evaluation_id", "criterion_id", name="uq_score_criterion"),
        Index("ix_score_rep_criterion", "rep_id", "criterion_id", "scored_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    evaluation_id: int = Field(foreign_key="evaluation.id", index=True)
    interaction_id: int = Field(foreign_key="interaction.id", index=True)
    rep_id: int = Field(foreign_key="person.id")
    criterion_id: str = Field(max_length=64)
    level: int | None = None
    """1-3, or None when the criterion is N/A for this interaction."""
    confidence: float = 0.0
    checks: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    """Each check's result with its evidence: id, observed, turn, start_s, quote."""
    scored_at: datetime = Field(default_factory=utcnow)
    """When the interaction happened (not when it was scored), for trends by session time."""


class HumanRating(SQLModel, table=True):
    """A person's level for one criterion of one interaction, for calibration."""

    __table_args__ = (
        UniqueConstraint("rater", "interaction_id", "criterion_id", name="uq_rating_once"),
    )

    id: int | None = Field(default=None, primary_key=True)
    rater: str = Field(max_length=128)
    interaction_id: int = Field(foreign_key="interaction.id", index=True)
    criterion_id: str = Field(max_length=64)
    level: int | None = None
    rubric_version: str | None = Field(default=None, max_length=32)
    set_name: str = Field(default="calibration", max_length=64, index=True)
    """The calibration round or post-go-live sample the rating was imported under."""
    created_at: datetime = Field(default_factory=utcnow)


class CriterionGate(SQLModel, table=True):
    """The go-live decision for one criterion of one rubric version, for one judge.

    A criterion is live once humans agree with each other and the judge agrees with the
    human consensus, both above the thresholds; the figures are kept as they were decided.
    """

    __table_args__ = (
        UniqueConstraint("rubric_version", "criterion_id", "judge", name="uq_criterion_gate"),
    )

    id: int | None = Field(default=None, primary_key=True)
    rubric_version: str = Field(foreign_key="rubricversion.version", max_length=32, index=True)
    criterion_id: str = Field(max_length=64)
    judge: str = Field(max_length=128)
    live: bool = False
    reason: str | None = None
    """Why the criterion is not live, when it is not."""
    calls: int = 0
    human_exact: float | None = None
    human_kappa: float | None = None
    judge_exact: float | None = None
    judge_kappa: float | None = None
    decided_at: datetime = Field(default_factory=utcnow)
    live_since: datetime | None = None
    """When the criterion first passed; kept while it stays live."""


class RejectedFile(SQLModel, table=True):
    """A file ingestion set aside, with the reason that names the file, line or field."""

    id: int | None = Field(default=None, primary_key=True)
    path: str
    reason: str
    quarantined_to: str | None = None
    created_at: datetime = Field(default_factory=utcnow)


# -- coaching --------------------------------------------------------------------------------


class CoachingRun(SQLModel, table=True):
    """The coaching pipeline's progress on one scored interaction (its graph thread)."""

    __table_args__ = (Index("ix_coachingrun_status", "status"),)

    interaction_id: int = Field(foreign_key="interaction.id", primary_key=True)
    evaluation_id: int = Field(foreign_key="evaluation.id", index=True)
    """The evaluation the run coached on; the interaction's other evaluations are ignored."""
    thread_id: str = Field(max_length=64)
    status: str = Field(default="running", max_length=24)
    """`running`, `awaiting_approval`, `done` or `failed`."""
    decision: str | None = Field(default=None, max_length=32)
    trends_applied: bool = False
    """Set in the same transaction that added the scores to the rollups, so never twice."""
    attempts: int = 0
    error: str | None = None
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None


class CriterionDaily(SQLModel, table=True):
    """Per rep, criterion, day and interaction kind: how many sessions scored each level."""

    __table_args__ = (
        Index("ix_criteriondaily_team_day", "team_id", "kind", "day"),
        Index("ix_criteriondaily_day", "kind", "day"),
        # on SQLite migration 0006 keeps the counts in the key, as SQLite has no INCLUDE
        Index(
            "ix_criteriondaily_team_counts",
            "team_id",
            "kind",
            "day",
            postgresql_include=["rep_id", "criterion_id", "n1", "n2", "n3", "n_na"],
        ),
    )

    rep_id: int = Field(foreign_key="person.id", primary_key=True)
    criterion_id: str = Field(max_length=64, primary_key=True)
    kind: str = Field(max_length=16, primary_key=True)
    """`call` or `practice`."""
    day: date = Field(primary_key=True)
    team_id: int | None = Field(default=None, foreign_key="team.id")
    n1: int = 0
    n2: int = 0
    n3: int = 0
    n_na: int = 0


class CriterionTrend(SQLModel, table=True):
    """A rep's most recent real-call levels on a criterion, newest last, for the decline rule."""

    rep_id: int = Field(foreign_key="person.id", primary_key=True)
    criterion_id: str = Field(max_length=64, primary_key=True)
    recent: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    """Each: interaction_id, level, at (ISO time)."""
    sessions: int = 0
    updated_at: datetime = Field(default_factory=utcnow)


class CoachingTrigger(SQLModel, table=True):
    """A rule that fired, with why: the sessions, the scores and the transcript moments."""

    __table_args__ = (
        Index("ix_trigger_rep", "rep_id", "criterion_id", "kind", "observed_at"),
        Index("ix_trigger_team", "team_id", "criterion_id", "kind", "observed_at"),
        Index("ix_trigger_interaction", "interaction_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=24)
    """`individual`, `decline`, `cohort` or `session_flag`."""
    rep_id: int | None = Field(default=None, foreign_key="person.id")
    team_id: int | None = Field(default=None, foreign_key="team.id")
    criterion_id: str | None = Field(default=None, max_length=64)
    interaction_id: int | None = Field(default=None, foreign_key="interaction.id")
    """The interaction whose score made the rule fire."""
    observed_at: datetime
    """When that interaction happened; windows and cool-downs run on this clock."""
    window_start: datetime | None = None
    window_end: datetime | None = None
    value: float | None = None
    threshold: float | None = None
    why: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    dedupe_key: str = Field(max_length=200, unique=True)
    status: str = Field(default="open", max_length=16)
    """`open`, `merged` (covered by a cohort response) or `resolved`."""
    cohort_decision_id: int | None = None
    """The cohort response that covers this trigger (no foreign key: the two refer to each other)."""
    created_at: datetime = Field(default_factory=utcnow)


class CohortDecision(SQLModel, table=True):
    """A cohort response waiting for, or given, the manager's approval."""

    __table_args__ = (Index("ix_cohortdecision_status", "status", "expires_at"),)

    id: int | None = Field(default=None, primary_key=True)
    trigger_id: int = Field(foreign_key="coachingtrigger.id", unique=True)
    team_id: int = Field(foreign_key="team.id", index=True)
    criterion_id: str = Field(max_length=64)
    scenario_slug: str | None = Field(default=None, max_length=128)
    rep_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    suggestion: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    """The suggested team session and the shared scenario, as shown to the manager."""
    status: str = Field(default="pending", max_length=16)
    """`pending`, `approved`, `declined` or `auto_approved`."""
    thread_id: str = Field(max_length=64)
    requested_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    decided_at: datetime | None = None
    decided_by: int | None = Field(default=None, foreign_key="person.id")


class Assignment(SQLModel, table=True):
    """A practice scenario given to a rep for a criterion, with the reason."""

    __table_args__ = (Index("ix_assignment_rep", "rep_id", "criterion_id", "status"),)

    id: int | None = Field(default=None, primary_key=True)
    rep_id: int = Field(foreign_key="person.id")
    scenario_slug: str = Field(max_length=128)
    criterion_id: str = Field(max_length=64)
    difficulty: str | None = Field(default=None, max_length=16)
    reason: str
    status: str = Field(default="open", max_length=16)
    """`open`, `completed` or `cancelled`."""
    trigger_id: int | None = Field(default=None, foreign_key="coachingtrigger.id")
    cohort_decision_id: int | None = Field(default=None, foreign_key="cohortdecision.id")
    dedupe_key: str = Field(max_length=200, unique=True)
    practice_interaction_id: int | None = Field(default=None, foreign_key="interaction.id")
    created_at: datetime = Field(default_factory=utcnow)
    completed_at: datetime | None = None


class OutboxMessage(SQLModel, table=True):
    """A message for a rep or manager, delivered by the Slack bot or read from the outbox."""

    __table_args__ = (
        Index("ix_outbox_status", "status", "created_at"),
        Index("ix_outbox_recipient", "recipient_id", "status"),
        Index("ix_outbox_kind_started", "kind", "interaction_started_at"),
        Index("ix_outbox_interaction", "interaction_id", "kind"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=24)
    """`rep_feedback`, `assignment`, `manager_alert`, `cohort_alert`, `digest` or `dispute`."""
    recipient_id: int = Field(foreign_key="person.id")
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    """Structured content that Slack, the web app and the command line each render."""
    dedupe_key: str = Field(max_length=200, unique=True)
    status: str = Field(default="queued", max_length=16)
    """`queued`, `sending`, `sent`, `failed`, `held` (for a digest), `digested`, `cancelled`."""
    attempts: int = 0
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    interaction_id: int | None = Field(default=None, foreign_key="interaction.id")
    interaction_started_at: datetime | None = None
    """When the interaction behind the message happened, for time to feedback."""
    digest_id: int | None = Field(default=None, foreign_key="outboxmessage.id")
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None
    first_attempt_at: datetime | None = None
    """When delivery was first tried: nothing can have been delivered before it."""
    delivery_ref: str | None = Field(default=None, max_length=100)
    """Where the delivered message is, as the channel's own reference (Slack: `channel:ts`)."""


class AlertPreference(SQLModel, table=True):
    """A manager's choice between immediate alerts and a daily digest."""

    person_id: int = Field(foreign_key="person.id", primary_key=True)
    mode: str = Field(default="immediate", max_length=16)
    updated_at: datetime = Field(default_factory=utcnow)


class CoachingNote(SQLModel, table=True):
    """A manager's note on a coaching item, with its score against the note rubric."""

    id: int | None = Field(default=None, primary_key=True)
    author_id: int = Field(foreign_key="person.id", index=True)
    rep_id: int = Field(foreign_key="person.id", index=True)
    trigger_id: int | None = Field(default=None, foreign_key="coachingtrigger.id")
    assignment_id: int | None = Field(default=None, foreign_key="assignment.id")
    interaction_id: int | None = Field(default=None, foreign_key="interaction.id")
    text: str
    quality: int = 0
    """0-3: one point each for naming a behaviour, citing a moment, giving a next step."""
    quality_checks: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    created_at: datetime = Field(default_factory=utcnow)


class Outcome(SQLModel, table=True):
    """A lagging indicator for one rep and period (CSAT, resolution rate, QA score, ...)."""

    __table_args__ = (
        UniqueConstraint("rep_id", "metric", "period_start", "period_end", name="uq_outcome"),
        Index("ix_outcome_metric_end", "metric", "period_end"),
    )

    id: int | None = Field(default=None, primary_key=True)
    rep_id: int = Field(foreign_key="person.id")
    period_start: date
    period_end: date
    """Inclusive."""
    metric: str = Field(max_length=64)
    value: float
    source: str | None = Field(default=None, max_length=256)
    imported_at: datetime = Field(default_factory=utcnow)


class Dispute(SQLModel, table=True):
    """A rep's challenge to a score, for the manager to resolve."""

    id: int | None = Field(default=None, primary_key=True)
    score_id: int = Field(foreign_key="score.id", index=True)
    interaction_id: int = Field(foreign_key="interaction.id")
    rep_id: int = Field(foreign_key="person.id", index=True)
    criterion_id: str = Field(max_length=64)
    reason: str
    status: str = Field(default="open", max_length=16)
    """`open`, `upheld` (score stands) or `changed`."""
    resolution: str | None = None
    resolved_by: int | None = Field(default=None, foreign_key="person.id")
    created_at: datetime = Field(default_factory=utcnow)
    resolved_at: datetime | None = None


# -- web app ---------------------------------------------------------------------------------


class Credential(SQLModel, table=True):
    """A person's password for the web app's built-in sign-in, as a salted scrypt hash."""

    person_id: int = Field(foreign_key="person.id", primary_key=True)
    password_hash: str = Field(max_length=400)
    """`scrypt$n$r$p$salt$hash`, salt and hash base64; never the password itself."""
    failed_attempts: int = 0
    """Failed sign-ins since the last good one; enough of them lock the account for a while."""
    locked_until: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)


class CalibrationItem(SQLModel, table=True):
    """A call in a calibration set, for raters to score in the web app."""

    set_name: str = Field(max_length=64, primary_key=True)
    interaction_id: int = Field(foreign_key="interaction.id", primary_key=True)
    added_by: int | None = Field(default=None, foreign_key="person.id")
    added_at: datetime = Field(default_factory=utcnow)


class CalibrationSubmission(SQLModel, table=True):
    """A rater has finished a calibration set: their levels are final and the report opens."""

    set_name: str = Field(max_length=64, primary_key=True)
    rater: str = Field(max_length=128, primary_key=True)
    """The rater as `HumanRating.rater` names them (the person's external id)."""
    submitted_at: datetime = Field(default_factory=utcnow)
