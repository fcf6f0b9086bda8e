"""Alerts: stored rule sets, alerts, their deliveries, and the devices' state detail.

New tables only, so it can follow any other migration.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

IDENT = sa.String(length=64)
MSG_ID = sa.String(length=36)


def upgrade() -> None:
    op.create_table(
        "alert_rule_sets",
        sa.Column("id", IDENT, nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False, comment="AlertRule objects as JSON."),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("updated_by", IDENT, nullable=False, comment="Name of the token that set them."),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_rule_sets")),
    )
    op.create_table(
        "alerts",
        sa.Column("id", MSG_ID, nullable=False),
        sa.Column("rule", IDENT, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("site_id", IDENT, nullable=True),
        sa.Column("device_id", IDENT, nullable=True),
        sa.Column(
            "item",
            sa.String(length=160),
            nullable=True,
            comment="What else names the subject: a rollout, a run, a model.",
        ),
        sa.Column(
            "firing_key",
            sa.String(length=400),
            nullable=True,
            comment="rule/site/device/item while firing, else NULL.",
        ),
        sa.Column("state", sa.String(length=16), nullable=False, comment="firing or resolved."),
        sa.Column("since", sa.Double(), nullable=False),
        sa.Column("resolved_at", sa.Double(), nullable=True),
        sa.Column("value", sa.Double(), nullable=True, comment="The measured value last seen."),
        sa.Column("threshold", sa.Double(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.UniqueConstraint("firing_key", name=op.f("uq_alerts_firing_key")),
    )
    op.create_index(op.f("ix_alerts_state_since"), "alerts", ["state", "since"])
    op.create_table(
        "alert_deliveries",
        sa.Column("id", MSG_ID, nullable=False),
        sa.Column("alert_id", MSG_ID, nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False, comment="firing or resolved."),
        sa.Column(
            "channel", sa.Text(), nullable=False, comment="apprise:<n>, webhook:<n> or mqtt."
        ),
        sa.Column("payload", sa.JSON(), nullable=False, comment="The alert as sent."),
        sa.Column(
            "state", sa.String(length=16), nullable=False, comment="pending, delivered or failed."
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_at", sa.Double(), nullable=False, comment="When the next attempt is due."),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("delivered_at", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_deliveries")),
    )
    op.create_index(
        op.f("ix_alert_deliveries_state_next_at"), "alert_deliveries", ["state", "next_at"]
    )
    op.create_index(op.f("ix_alert_deliveries_alert_id"), "alert_deliveries", ["alert_id"])
    op.create_table(
        "device_conditions",
        sa.Column("site_id", IDENT, nullable=False),
        sa.Column("device_id", IDENT, nullable=False),
        sa.Column("session", sa.BigInteger(), nullable=True, comment="The state's session epoch."),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("ts", sa.Double(), nullable=False, comment="Time of the state message."),
        sa.PrimaryKeyConstraint("site_id", "device_id", name=op.f("pk_device_conditions")),
    )


def downgrade() -> None:
    op.drop_table("device_conditions")
    op.drop_index(op.f("ix_alert_deliveries_alert_id"), table_name="alert_deliveries")
    op.drop_index(op.f("ix_alert_deliveries_state_next_at"), table_name="alert_deliveries")
    op.drop_table("alert_deliveries")
    op.drop_index(op.f("ix_alerts_state_since"), table_name="alerts")
    op.drop_table("alerts")
    op.drop_table("alert_rule_sets")
