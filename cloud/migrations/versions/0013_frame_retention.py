"""Retention: when the purge deleted an escalation's frame (the row and its verdict stay).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("escalations") as batch:
        batch.add_column(
            sa.Column(
                "frame_purged_at",
                sa.Double(),
                nullable=True,
                comment="When retention deleted the frame (the row and its verdict stay).",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("escalations") as batch:
        batch.drop_column("frame_purged_at")
