"""The tables. Every change here comes with an Alembic migration in `store/migrations`.

Times are timezone-aware and stored as UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
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
    manager_id: int | None = Field(default=None, foreign_key="person.id")
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
    created_at: datetime = Field(default_factory=utcnow)


class RejectedFile(SQLModel, table=True):
    """A file ingestion set aside, with the reason that names the file, line or field."""

    id: int | None = Field(default=None, primary_key=True)
    path: str
    reason: str
    quarantined_to: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
