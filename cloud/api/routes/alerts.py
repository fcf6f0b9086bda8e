"""``/api/alerts``: the alerts (viewer), one alert with its deliveries (viewer), and the rules in
force (viewer to read, admin to replace)."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from edgecascade.cloud.alerts.channels import redacted
from edgecascade.cloud.alerts.config import AlertRule, AlertsSection, RuleSet
from edgecascade.cloud.alerts.rulestore import current_rules, store_rules
from edgecascade.cloud.alerts.state import alert_payload
from edgecascade.cloud.api.deps import MESSAGE_ID, Admin, SessionDep, SettingsDep, require
from edgecascade.cloud.db.alert_models import Alert, AlertDelivery

router = APIRouter(prefix="/api/alerts", tags=["alerts"])
viewer = [Depends(require("viewer"))]


class AlertOut(BaseModel):
    """An alert: what fired, on what, since when, and whether it still does."""

    id: str
    rule: str
    kind: str
    site: str | None
    device: str | None
    item: str | None = Field(description="A rollout, a training run or a model, if any.")
    state: Literal["firing", "resolved"]
    since: float
    resolved_at: float | None
    value: float | None = Field(description="The value measured last.")
    threshold: float | None
    message: str


class AlertList(BaseModel):
    firing: int = Field(description="How many alerts fire now (whatever the filter).")
    items: list[AlertOut]


class DeliveryOut(BaseModel):
    """One notification of the alert through one channel and how sending it went."""

    event: str
    channel: str
    state: str = Field(description="pending, delivered or failed (given up on).")
    attempts: int
    last_error: str
    created_at: float
    delivered_at: float | None
    next_at: float


class AlertDetail(AlertOut):
    deliveries: list[DeliveryOut]


class RulesOut(BaseModel):
    rules: list[AlertRule]
    source: Literal["api", "settings"] = Field(
        description="api: set by PUT; settings: the defaults from the settings."
    )
    channels: list[str] = Field(description="Where notifications go (URLs without secrets).")
    mqtt_topic: str | None


def _out(alert: Alert) -> AlertOut:
    return AlertOut.model_validate(alert_payload(alert))


@router.get("", dependencies=viewer)
def list_alerts(
    session: SessionDep,
    state: Annotated[Literal["firing", "resolved"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AlertList:
    """Newest first."""
    query = select(Alert).order_by(Alert.since.desc(), Alert.id).limit(limit)
    if state is not None:
        query = query.where(Alert.state == state)
    firing = session.scalar(select(func.count()).where(Alert.state == "firing")) or 0
    return AlertList(firing=firing, items=[_out(a) for a in session.scalars(query)])


@router.get("/rules", dependencies=viewer)
def get_rules(session: SessionDep, settings: SettingsDep) -> RulesOut:
    return _rules_out(session, settings.alerts)


@router.put("/rules")
def put_rules(
    body: RuleSet, principal: Admin, session: SessionDep, settings: SettingsDep
) -> RulesOut:
    """Replace every rule (an empty list: no alerts); the evaluator uses them from its next
    pass. Alerts of a rule no longer in the set are resolved."""
    store_rules(session, body, principal.name, time.time())
    return _rules_out(session, settings.alerts)


@router.get("/{alert_id}", dependencies=viewer)
def get_alert(
    alert_id: Annotated[str, Path(pattern=MESSAGE_ID, description="The alert's id.")],
    session: SessionDep,
) -> AlertDetail:
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert {alert_id!r}")
    deliveries = session.scalars(
        select(AlertDelivery)
        .where(AlertDelivery.alert_id == alert_id)
        .order_by(AlertDelivery.created_at, AlertDelivery.channel)
    )
    items = [DeliveryOut.model_validate(d, from_attributes=True) for d in deliveries]
    return AlertDetail(**_out(alert).model_dump(), deliveries=items)


def _rules_out(session: Session, alerts: AlertsSection) -> RulesOut:
    rules, source = current_rules(session, alerts.rules)
    channels = [redacted(url) for url in (*alerts.apprise, *alerts.webhooks)]
    return RulesOut(
        rules=rules,
        source="api" if source == "api" else "settings",
        channels=channels,
        mqtt_topic=alerts.mqtt_topic,
    )
