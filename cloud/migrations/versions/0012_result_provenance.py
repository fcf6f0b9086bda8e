"""Result provenance: the sha256 of the model that produced a result and the id of the escalation
policy in force (the remote configuration's version, or the agent's fingerprint of its rules).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("results") as batch:
        batch.add_column(
            sa.Column(
                "model_sha256",
                sa.String(length=64),
                nullable=True,
                comment="sha256 of the model file that produced it (empty: not reported).",
            )
        )
        batch.add_column(
            sa.Column(
                "policy",
                sa.String(length=64),
                nullable=True,
                comment="The escalation policy in force: config version or rules fingerprint.",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("results") as batch:
        batch.drop_column("policy")
        batch.drop_column("model_sha256")
