"""Audit samples and soft targets: which escalations and verdicts are random audit samples, and
the cloud model's whole output distribution kept with each verdict.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("escalations") as batch:
        batch.add_column(
            sa.Column(
                "audit",
                sa.Boolean(),
                server_default=sa.false(),
                nullable=False,
                comment="A random audit sample of a sure frame, not an unsure one.",
            )
        )
    with op.batch_alter_table("verdicts") as batch:
        batch.add_column(
            sa.Column(
                "audit",
                sa.Boolean(),
                server_default=sa.false(),
                nullable=False,
                comment="Of an audit sample: unbiased evidence of edge accuracy.",
            )
        )
        batch.add_column(
            sa.Column(
                "probs",
                sa.JSON(),
                nullable=True,
                comment="The cloud model's whole output distribution, in the order of its labels.",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("verdicts") as batch:
        batch.drop_column("probs")
        batch.drop_column("audit")
    with op.batch_alter_table("escalations") as batch:
        batch.drop_column("audit")
