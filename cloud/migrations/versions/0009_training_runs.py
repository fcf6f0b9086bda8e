"""Training runs, and the model card kept with each registered model.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-10
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

IDENT = sa.String(length=64)


def upgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(
            sa.Column(
                "card",
                sa.JSON(),
                nullable=True,
                comment="The model card as uploaded (trainable source, lineage), when there "
                "was one.",
            )
        )
    op.create_table(
        "training_runs",
        sa.Column("id", IDENT, nullable=False),
        sa.Column("site_id", IDENT, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("trigger", sa.Text(), nullable=False, comment="Who or what queued it, and why."),
        sa.Column("parent_name", IDENT, nullable=True),
        sa.Column("parent_version", IDENT, nullable=True),
        sa.Column("child_version", IDENT, nullable=True),
        sa.Column("snapshot_id", IDENT, nullable=True, comment="The dataset trained on."),
        sa.Column("dataset_size", sa.Integer(), nullable=True),
        sa.Column(
            "metrics", sa.JSON(), nullable=False, comment="report.json's result: before/after."
        ),
        sa.Column(
            "reason", sa.Text(), nullable=False, comment="The gates' decision, or why it failed."
        ),
        sa.Column("log", sa.Text(), nullable=False, comment="The run's captured log lines."),
        sa.Column("trainer_id", IDENT, nullable=True, comment="The trainer that claimed it."),
        sa.Column("heartbeat_at", sa.Double(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("started_at", sa.Double(), nullable=True),
        sa.Column("finished_at", sa.Double(), nullable=True),
        sa.Column("rollout_id", IDENT, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_runs")),
    )
    op.create_index(
        op.f("ix_training_runs_state_created_at"), "training_runs", ["state", "created_at"]
    )
    op.create_index(
        op.f("ix_training_runs_site_id_created_at"), "training_runs", ["site_id", "created_at"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_training_runs_site_id_created_at"), table_name="training_runs")
    op.drop_index(op.f("ix_training_runs_state_created_at"), table_name="training_runs")
    op.drop_table("training_runs")
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("card")
