"""Initial schema: sites, devices, results, escalations, telemetry.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MSG_ID = sa.String(length=36)
IDENT = sa.String(length=64)
LABEL = sa.String(length=128)


def upgrade() -> None:
    op.create_table(
        "sites",
        sa.Column("id", IDENT, nullable=False),
        sa.Column("first_seen", sa.Double(), nullable=False),
        sa.Column("last_seen", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sites")),
    )
    op.create_table(
        "devices",
        sa.Column("site_id", IDENT, nullable=False),
        sa.Column("device_id", IDENT, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("session", sa.BigInteger(), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=True),
        sa.Column("model_name", IDENT, nullable=True),
        sa.Column("model_version", IDENT, nullable=True),
        sa.Column("model_sha256", sa.String(length=64), nullable=True),
        sa.Column("software", IDENT, nullable=True),
        sa.Column("first_seen", sa.Double(), nullable=False),
        sa.Column(
            "last_seen", sa.Double(), nullable=False, comment="Newest message time heard from it."
        ),
        sa.Column(
            "last_state_at", sa.Double(), nullable=True, comment="Time of the state applied."
        ),
        sa.PrimaryKeyConstraint("site_id", "device_id", name=op.f("pk_devices")),
    )
    op.create_table(
        "results",
        sa.Column("msg_id", MSG_ID, nullable=False),
        sa.Column("site_id", IDENT, nullable=False),
        sa.Column("device_id", IDENT, nullable=False),
        sa.Column("frame_id", sa.String(length=256), nullable=False),
        sa.Column("captured_at", sa.Double(), nullable=False),
        sa.Column("received_at", sa.Double(), nullable=False),
        sa.Column("model_name", IDENT, nullable=False),
        sa.Column("model_version", IDENT, nullable=False),
        sa.Column("label", LABEL, nullable=False, comment="Top-1 label."),
        sa.Column("label_index", sa.Integer(), nullable=False),
        sa.Column("score", sa.Double(), nullable=False),
        sa.Column(
            "top",
            sa.JSON(),
            nullable=False,
            comment="Top-k predictions: [{index, label, score}].",
        ),
        sa.Column("latency", sa.JSON(), nullable=False, comment="Stage latencies, milliseconds."),
        sa.Column("escalated", sa.Boolean(), nullable=False),
        sa.Column("ground_truth", LABEL, nullable=True),
        sa.PrimaryKeyConstraint("msg_id", name=op.f("pk_results")),
    )
    op.create_index(
        op.f("ix_results_site_id_device_id_captured_at"),
        "results",
        ["site_id", "device_id", "captured_at"],
    )
    op.create_index(op.f("ix_results_captured_at"), "results", ["captured_at"])
    op.create_table(
        "escalations",
        sa.Column("msg_id", MSG_ID, nullable=False),
        sa.Column("result_id", MSG_ID, nullable=False),
        sa.Column("site_id", IDENT, nullable=False),
        sa.Column("device_id", IDENT, nullable=False),
        sa.Column("frame_id", sa.String(length=256), nullable=False),
        sa.Column("captured_at", sa.Double(), nullable=False),
        sa.Column("received_at", sa.Double(), nullable=False),
        sa.Column("model_name", IDENT, nullable=False),
        sa.Column("model_version", IDENT, nullable=False),
        sa.Column("edge_label", LABEL, nullable=False),
        sa.Column("edge_score", sa.Double(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column(
            "blob_path",
            sa.String(length=512),
            nullable=False,
            comment="Relative to the blob store.",
        ),
        sa.Column("content_type", sa.String(length=32), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("roi", sa.JSON(), nullable=True, comment="[x, y, w, h] of a crop, if cropped."),
        sa.Column("ground_truth", LABEL, nullable=True),
        sa.PrimaryKeyConstraint("msg_id", name=op.f("pk_escalations")),
    )
    op.create_index(
        op.f("ix_escalations_site_id_device_id_captured_at"),
        "escalations",
        ["site_id", "device_id", "captured_at"],
    )
    op.create_index(op.f("ix_escalations_result_id"), "escalations", ["result_id"])
    op.create_table(
        "telemetry",
        sa.Column("msg_id", MSG_ID, nullable=False),
        sa.Column("site_id", IDENT, nullable=False),
        sa.Column("device_id", IDENT, nullable=False),
        sa.Column("ts", sa.Double(), nullable=False),
        sa.Column("received_at", sa.Double(), nullable=False),
        sa.Column("cpu_percent", sa.Double(), nullable=False),
        sa.Column("memory_percent", sa.Double(), nullable=False),
        sa.Column("temperature_c", sa.Double(), nullable=True),
        sa.Column("fps", sa.Double(), nullable=False),
        sa.Column("frames", sa.BigInteger(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("msg_id", name=op.f("pk_telemetry")),
    )
    op.create_index(
        op.f("ix_telemetry_site_id_device_id_ts"), "telemetry", ["site_id", "device_id", "ts"]
    )


def downgrade() -> None:
    op.drop_table("telemetry")
    op.drop_table("escalations")
    op.drop_table("results")
    op.drop_table("devices")
    op.drop_table("sites")
