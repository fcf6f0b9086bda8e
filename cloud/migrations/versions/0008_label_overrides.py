"""Label overrides: a person's label for an escalated frame.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "label_overrides",
        sa.Column("escalation_id", sa.String(length=36), nullable=False),
        sa.Column(
            "label",
            sa.String(length=128),
            nullable=False,
            comment="One of the edge model's labels.",
        ),
        sa.Column(
            "created_by",
            sa.String(length=64),
            nullable=False,
            comment="Name of the token that set it.",
        ),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column(
            "note",
            sa.Text(),
            nullable=False,
            comment="Why, in the operator's words; may be empty.",
        ),
        sa.PrimaryKeyConstraint("escalation_id", name=op.f("pk_label_overrides")),
    )


def downgrade() -> None:
    op.drop_table("label_overrides")
