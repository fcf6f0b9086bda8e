"""Remote configuration and device tags: config versions, device tags, the newest config
reply of each device, and the config version a device's state reports.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

IDENT = sa.String(length=64)


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(
            sa.Column(
                "config_version",
                sa.BigInteger(),
                nullable=True,
                comment="The remote config version its state says it runs.",
            )
        )
    op.create_table(
        "config_versions",
        sa.Column(
            "version",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("site_id", IDENT, nullable=True),
        sa.Column("tags", sa.Text(), nullable=True, comment="Tag expression; none = every tag."),
        sa.Column("devices", sa.JSON(), nullable=True, comment="Device ids of site_id; none: all."),
        sa.Column("document", sa.JSON(), nullable=False, comment="The live settings, as sent."),
        sa.Column("created_by", IDENT, nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_config_versions")),
    )
    op.create_table(
        "device_tags",
        sa.Column("site_id", IDENT, nullable=False),
        sa.Column("device_id", IDENT, nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False, comment="Sorted, unique."),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("site_id", "device_id", name=op.f("pk_device_tags")),
    )
    op.create_table(
        "config_replies",
        sa.Column("site_id", IDENT, nullable=False),
        sa.Column("device_id", IDENT, nullable=False),
        sa.Column(
            "version", sa.BigInteger(), nullable=False, comment="The version the command carried."
        ),
        sa.Column("status", sa.String(length=16), nullable=False, comment="ok or error."),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("received_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("site_id", "device_id", name=op.f("pk_config_replies")),
    )


def downgrade() -> None:
    op.drop_table("config_replies")
    op.drop_table("device_tags")
    op.drop_table("config_versions")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("config_version")
