"""The fleet's tables: remote config versions, device tags, each device's newest config reply
(:mod:`cloud.fleet`). Registered on :class:`~cloud.db.models.Base` by :mod:`cloud.db.models`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from edgecascade.cloud.db.models import IDENT, Base


class ConfigVersion(Base):
    """A remote config document (the agent's live settings) and the devices it targets: a site,
    a tag expression (fleet-wide or in ``site_id``) or a device list of ``site_id``. A device
    runs the newest version that targets it (:mod:`cloud.fleet.configs`)."""

    __tablename__ = "config_versions"

    version: Mapped[int] = mapped_column(  # SQLite numbers only an INTEGER key by itself
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    site_id: Mapped[str | None] = mapped_column(IDENT)
    tags: Mapped[str | None] = mapped_column(Text, comment="Tag expression; none = every tag.")
    devices: Mapped[list[Any] | None] = mapped_column(comment="Device ids of site_id; none: all.")
    document: Mapped[dict[str, Any]] = mapped_column(comment="The live settings, as sent.")
    created_by: Mapped[str] = mapped_column(IDENT)
    created_at: Mapped[float]


class DeviceTags(Base):
    """The tags of a device (API or provisioning); kept whether or not it was heard from."""

    __tablename__ = "device_tags"

    site_id: Mapped[str] = mapped_column(IDENT, primary_key=True)
    device_id: Mapped[str] = mapped_column(IDENT, primary_key=True)
    tags: Mapped[list[Any]] = mapped_column(comment="Sorted, unique.")
    updated_at: Mapped[float]


class ConfigReply(Base):
    """A device's newest answer to ``cmd/config``: applied, or refused with the reason."""

    __tablename__ = "config_replies"

    site_id: Mapped[str] = mapped_column(IDENT, primary_key=True)
    device_id: Mapped[str] = mapped_column(IDENT, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, comment="The version the command carried.")
    status: Mapped[str] = mapped_column(String(16), comment="ok or error.")
    error: Mapped[str] = mapped_column(Text)
    received_at: Mapped[float]
