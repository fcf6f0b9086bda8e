"""Detections: one row per box of a detection answer (the edge's and the cloud's), and the task
of results, escalations and verdicts, with the edge's boxes on an escalated frame and the IoU
agreement of a detection verdict.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MSG_ID = sa.String(length=36)
IDENT = sa.String(length=64)
TASK = sa.String(length=16)


def _task(comment: str | None = None) -> sa.Column[str]:
    return sa.Column("task", TASK, server_default="classification", nullable=False, comment=comment)


def upgrade() -> None:
    with op.batch_alter_table("results") as batch:
        batch.add_column(
            _task(
                "classification, or detection (boxes in the detections table; label is the "
                "best box's, empty without boxes)."
            )
        )
    with op.batch_alter_table("escalations") as batch:
        batch.add_column(_task())
        batch.add_column(
            sa.Column(
                "detections",
                sa.JSON(),
                nullable=True,
                comment="Detection: the edge's boxes as sent, in pixels of this frame.",
            )
        )
    with op.batch_alter_table("verdicts") as batch:
        batch.add_column(_task())
        batch.add_column(
            sa.Column(
                "agreement",
                sa.JSON(),
                nullable=True,
                comment="Detection: the edge's boxes against the cloud's (shared.boxes.agreement).",
            )
        )
        batch.add_column(
            sa.Column(
                "edge_precision", sa.Double(), nullable=True, comment="Detection: of the edge."
            )
        )
        batch.add_column(
            sa.Column("edge_recall", sa.Double(), nullable=True, comment="Detection: of the edge.")
        )
    op.create_table(
        "detections",
        sa.Column("result_id", MSG_ID, nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False, comment="edge or cloud."),
        sa.Column("position", sa.Integer(), nullable=False, comment="0: the best box."),
        sa.Column("escalation_id", MSG_ID, nullable=True, comment="The cloud's: judged."),
        sa.Column("site_id", IDENT, nullable=False),
        sa.Column("device_id", IDENT, nullable=False),
        sa.Column("captured_at", sa.Double(), nullable=False),
        sa.Column("model_name", IDENT, nullable=False),
        sa.Column("model_version", IDENT, nullable=False),
        sa.Column("label", sa.String(length=128), nullable=False),
        sa.Column("score", sa.Double(), nullable=False),
        sa.Column("x0", sa.Double(), nullable=False),
        sa.Column("y0", sa.Double(), nullable=False),
        sa.Column("x1", sa.Double(), nullable=False),
        sa.Column("y1", sa.Double(), nullable=False),
        sa.Column("zone", IDENT, nullable=True),
        sa.Column("frame_width", sa.Integer(), nullable=True),
        sa.Column("frame_height", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("result_id", "source", "position", name=op.f("pk_detections")),
    )
    for columns in (
        ["label", "captured_at"],
        ["site_id", "captured_at"],
        ["device_id", "captured_at"],
    ):
        op.create_index(op.f(f"ix_detections_{'_'.join(columns)}"), "detections", columns)


def downgrade() -> None:
    for name in ("device_id_captured_at", "site_id_captured_at", "label_captured_at"):
        op.drop_index(op.f(f"ix_detections_{name}"), table_name="detections")
    op.drop_table("detections")
    with op.batch_alter_table("verdicts") as batch:
        for name in ("edge_recall", "edge_precision", "agreement", "task"):
            batch.drop_column(name)
    with op.batch_alter_table("escalations") as batch:
        batch.drop_column("detections")
        batch.drop_column("task")
    with op.batch_alter_table("results") as batch:
        batch.drop_column("task")
