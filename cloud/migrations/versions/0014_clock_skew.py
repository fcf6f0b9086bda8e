"""Devices: the skew of the device's clock as its last state message showed it.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(
            sa.Column(
                "clock_skew_s",
                sa.Double(),
                nullable=True,
                comment="The cloud's receive time minus the device's send time of its last "
                "state: its clock's error plus the transit (and any queueing) delay.",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("clock_skew_s")
