"""calibration: rating sets and the per-criterion go-live gate

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 20:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("humanrating", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "set_name",
                sqlmodel.sql.sqltypes.AutoString(length=64),
                nullable=False,
                server_default="calibration",
            )
        )
        batch_op.create_index(batch_op.f("ix_humanrating_set_name"), ["set_name"], unique=False)

    op.create_table(
        "criteriongate",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rubric_version", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("criterion_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("judge", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("live", sa.Boolean(), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("human_exact", sa.Float(), nullable=True),
        sa.Column("human_kappa", sa.Float(), nullable=True),
        sa.Column("judge_exact", sa.Float(), nullable=True),
        sa.Column("judge_kappa", sa.Float(), nullable=True),
        sa.Column("decided_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("live_since", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["rubric_version"], ["rubricversion.version"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("rubric_version", "criterion_id", "judge", name="uq_criterion_gate"),
    )
    with op.batch_alter_table("criteriongate", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_criteriongate_rubric_version"), ["rubric_version"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("criteriongate", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_criteriongate_rubric_version"))

    op.drop_table("criteriongate")
    with op.batch_alter_table("humanrating", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_humanrating_set_name"))
        batch_op.drop_column("set_name")
