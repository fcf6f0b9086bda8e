"""Devices' reports on applying models.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

IDENT = sa.String(length=64)


def upgrade() -> None:
    op.create_table(
        "model_acks",
        sa.Column("msg_id", sa.String(length=36), nullable=False),
        sa.Column("site_id", IDENT, nullable=False),
        sa.Column("device_id", IDENT, nullable=False),
        sa.Column("rollout_id", IDENT, nullable=False),
        sa.Column("version", IDENT, nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("ts", sa.Double(), nullable=False),
        sa.Column("received_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("msg_id", name=op.f("pk_model_acks")),
    )
    op.create_index(
        op.f("ix_model_acks_rollout_id_site_id_device_id"),
        "model_acks",
        ["rollout_id", "site_id", "device_id"],
    )
    op.create_index(
        op.f("ix_model_acks_site_id_device_id_ts"), "model_acks", ["site_id", "device_id", "ts"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_model_acks_site_id_device_id_ts"), table_name="model_acks")
    op.drop_index(op.f("ix_model_acks_rollout_id_site_id_device_id"), table_name="model_acks")
    op.drop_table("model_acks")
