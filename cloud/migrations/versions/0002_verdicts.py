"""Verdicts of the re-inference workers.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MSG_ID = sa.String(length=36)
IDENT = sa.String(length=64)
LABEL = sa.String(length=128)


def upgrade() -> None:
    op.create_table(
        "verdicts",
        sa.Column("escalation_id", MSG_ID, nullable=False),
        sa.Column("msg_id", MSG_ID, nullable=False),
        sa.Column("result_id", MSG_ID, nullable=False),
        sa.Column("site_id", IDENT, nullable=False),
        sa.Column("device_id", IDENT, nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("worker_id", IDENT, nullable=False),
        sa.Column("model_name", IDENT, nullable=False, comment="The cloud model."),
        sa.Column("model_version", IDENT, nullable=False),
        sa.Column("model_sha256", sa.String(length=64), nullable=False),
        sa.Column("label", LABEL, nullable=False, comment="The cloud's top-1."),
        sa.Column("label_index", sa.Integer(), nullable=False),
        sa.Column("score", sa.Double(), nullable=False),
        sa.Column(
            "top", sa.JSON(), nullable=False, comment="Top-k predictions: [{index, label, score}]."
        ),
        sa.Column("edge_model_name", IDENT, nullable=False),
        sa.Column("edge_model_version", IDENT, nullable=False),
        sa.Column("edge_label", LABEL, nullable=False),
        sa.Column("edge_score", sa.Double(), nullable=False),
        sa.Column(
            "agrees", sa.Boolean(), nullable=False, comment="Cloud top-1 equals the edge's top-1."
        ),
        sa.Column(
            "inference_ms",
            sa.Double(),
            nullable=False,
            comment="Decode, preprocess, invoke, postprocess.",
        ),
        sa.PrimaryKeyConstraint("escalation_id", name=op.f("pk_verdicts")),
        sa.UniqueConstraint("msg_id", name=op.f("uq_verdicts_msg_id")),
    )
    op.create_index(
        op.f("ix_verdicts_site_id_device_id_created_at"),
        "verdicts",
        ["site_id", "device_id", "created_at"],
    )
    op.create_index(
        op.f("ix_verdicts_edge_model_name_edge_model_version"),
        "verdicts",
        ["edge_model_name", "edge_model_version"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_verdicts_edge_model_name_edge_model_version"), table_name="verdicts")
    op.drop_index(op.f("ix_verdicts_site_id_device_id_created_at"), table_name="verdicts")
    op.drop_table("verdicts")
