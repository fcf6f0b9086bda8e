"""The alerts' tables, and the device conditions they watch (same ``Base`` as :mod:`.models`).

* ``alert_rule_sets``: the rules set over the API (one row, ``id`` ``current``); absent, the
  settings' rules apply.
* ``alerts``: one row per alert. ``firing_key`` is ``rule/site/device/item`` while it fires and
  NULL once resolved: its unique constraint is what keeps one alert per (rule, subject) firing,
  even with two cloud replicas evaluating at once.
* ``alert_deliveries``: one row per (alert, event, channel), written in the transaction that
  fires or resolves the alert: a notification not yet delivered survives a restart.
* ``device_conditions``: the free-text ``detail`` of each device's newest state (the agent's
  camera source status rides there), which the ``devices`` row does not keep.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from edgecascade.cloud.db.models import IDENT, MSG_ID, Base


class AlertRuleSet(Base):
    """The rules stored by ``PUT /api/alerts/rules``, replacing the settings' defaults."""

    __tablename__ = "alert_rule_sets"

    id: Mapped[str] = mapped_column(IDENT, primary_key=True)
    rules: Mapped[list[Any]] = mapped_column(comment="AlertRule objects as JSON.")
    updated_at: Mapped[float]
    updated_by: Mapped[str] = mapped_column(IDENT, comment="Name of the token that set them.")


class Alert(Base):
    """An alert: firing since ``since``, or resolved at ``resolved_at``."""

    __tablename__ = "alerts"
    __table_args__ = (Index(None, "state", "since"),)

    id: Mapped[str] = mapped_column(MSG_ID, primary_key=True)
    rule: Mapped[str] = mapped_column(IDENT)
    kind: Mapped[str] = mapped_column(String(32))
    site_id: Mapped[str | None] = mapped_column(IDENT)
    device_id: Mapped[str | None] = mapped_column(IDENT)
    item: Mapped[str | None] = mapped_column(
        String(160), comment="What else names the subject: a rollout, a run, a model."
    )
    firing_key: Mapped[str | None] = mapped_column(
        String(400), unique=True, comment="rule/site/device/item while firing, else NULL."
    )
    state: Mapped[str] = mapped_column(String(16), comment="firing or resolved.")
    since: Mapped[float]
    resolved_at: Mapped[float | None]
    value: Mapped[float | None] = mapped_column(comment="The measured value last seen.")
    threshold: Mapped[float | None]
    message: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[float]


class AlertDelivery(Base):
    """One notification of one alert event through one channel, and how sending it went."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (Index(None, "state", "next_at"), Index(None, "alert_id"))

    id: Mapped[str] = mapped_column(MSG_ID, primary_key=True)
    alert_id: Mapped[str] = mapped_column(MSG_ID)
    event: Mapped[str] = mapped_column(String(16), comment="firing or resolved.")
    channel: Mapped[str] = mapped_column(Text, comment="apprise:<n>, webhook:<n> or mqtt.")
    payload: Mapped[dict[str, Any]] = mapped_column(comment="The alert as sent.")
    state: Mapped[str] = mapped_column(String(16), comment="pending, delivered or failed.")
    attempts: Mapped[int]
    next_at: Mapped[float] = mapped_column(comment="When the next attempt is due.")
    last_error: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float]
    delivered_at: Mapped[float | None]


class DeviceCondition(Base):
    """The ``detail`` of a device's newest state message (e.g. ``host; source reconnecting:
    ...``) and the time of that state; kept under the same session rule as ``devices``."""

    __tablename__ = "device_conditions"

    site_id: Mapped[str] = mapped_column(IDENT, primary_key=True)
    device_id: Mapped[str] = mapped_column(IDENT, primary_key=True)
    session: Mapped[int | None] = mapped_column(BigInteger, comment="The state's session epoch.")
    status: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text)
    ts: Mapped[float] = mapped_column(comment="Time of the state message.")
