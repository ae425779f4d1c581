"""dashboard: covering indexes for a team's calls, their evaluations and daily counts

The team dashboard and the coaching report count a team's calls in a window, the scored
ones among them, and sum the team's daily criterion counts. These indexes hold every column
those queries read, so they are answered from the index alone: without them PostgreSQL could
scan every evaluation in the organisation to find a team's scored calls. Every signed-in
request also looks up a manager's direct reports, which read the whole person table.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 22:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DAILY_COUNTS = ["rep_id", "criterion_id", "n1", "n2", "n3", "n_na"]


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    # SQLite keeps the row id (the interaction id) in every index entry; PostgreSQL needs it
    # included to join from the index alone
    op.create_index(
        "ix_interaction_team_kind_started",
        "interaction",
        ["team_id", "kind", "started_at"],
        postgresql_include=["id"],
    )
    op.create_index("ix_evaluation_interaction_status", "evaluation", ["interaction_id", "status"])
    op.create_index("ix_person_manager_id", "person", ["manager_id"])
    if postgres:
        op.create_index(
            "ix_criteriondaily_team_counts",
            "criteriondaily",
            ["team_id", "kind", "day"],
            postgresql_include=_DAILY_COUNTS,
        )
    else:
        op.create_index(
            "ix_criteriondaily_team_counts",
            "criteriondaily",
            ["team_id", "kind", "day", *_DAILY_COUNTS],
        )


def downgrade() -> None:
    op.drop_index("ix_criteriondaily_team_counts", table_name="criteriondaily")
    op.drop_index("ix_person_manager_id", table_name="person")
    op.drop_index("ix_evaluation_interaction_status", table_name="evaluation")
    op.drop_index("ix_interaction_team_kind_started", table_name="interaction")
