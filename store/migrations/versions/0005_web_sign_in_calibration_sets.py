"""web app: sign-in credentials, calibration sets and submissions; outbox by interaction

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 21:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "credential",
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("password_hash", sqlmodel.sql.sqltypes.AutoString(length=400), nullable=False),
        sa.Column("failed_attempts", sa.Integer(), nullable=False),
        sa.Column("locked_until", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["person_id"], ["person.id"]),
        sa.PrimaryKeyConstraint("person_id"),
    )
    op.create_table(
        "calibrationitem",
        sa.Column("set_name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("interaction_id", sa.Integer(), nullable=False),
        sa.Column("added_by", sa.Integer(), nullable=True),
        sa.Column("added_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["interaction_id"], ["interaction.id"]),
        sa.ForeignKeyConstraint(["added_by"], ["person.id"]),
        sa.PrimaryKeyConstraint("set_name", "interaction_id"),
    )
    op.create_table(
        "calibrationsubmission",
        sa.Column("set_name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("rater", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("submitted_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("set_name", "rater"),
    )
    # reports join feedback messages to the team's interactions; without this index SQLite
    # reads every feedback message for each interaction
    with op.batch_alter_table("outboxmessage", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_interaction", ["interaction_id", "kind"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outboxmessage", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_interaction")
    op.drop_table("calibrationsubmission")
    op.drop_table("calibrationitem")
    op.drop_table("credential")
