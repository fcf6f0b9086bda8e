"""Staged rollouts.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

IDENT = sa.String(length=64)
SHA = sa.String(length=64)


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("id", IDENT, nullable=False),
        sa.Column("site_id", IDENT, nullable=False),
        sa.Column(
            "targets", sa.JSON(), nullable=False, comment="Device ids in scope, in offer order."
        ),
        sa.Column("model_name", IDENT, nullable=False),
        sa.Column("model_version", IDENT, nullable=False),
        sa.Column("sha256", SHA, nullable=False),
        sa.Column("baseline_name", IDENT, nullable=False),
        sa.Column("baseline_version", IDENT, nullable=False),
        sa.Column("baseline_sha256", SHA, nullable=False),
        sa.Column(
            "stages", sa.JSON(), nullable=False, comment="Percentages of the targets, increasing."
        ),
        sa.Column("stage", sa.Integer(), nullable=False),
        sa.Column("stage_started_at", sa.Double(), nullable=False),
        sa.Column("criteria", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column(
            "reason", sa.Text(), nullable=False, comment="Why it stopped, or what it waits for."
        ),
        sa.Column("evaluation", sa.JSON(), nullable=False, comment="The last quality comparison."),
        sa.Column(
            "offered", sa.JSON(), nullable=False, comment="Device ids offered the model so far."
        ),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("created_by", IDENT, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollouts")),
    )


def downgrade() -> None:
    op.drop_table("rollouts")
