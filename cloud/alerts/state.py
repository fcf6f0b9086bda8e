"""The alert state machine: a breach fires an alert (after ``for_s``), its end resolves it.

One alert per (rule, subject) while it fires: the row's ``firing_key`` is unique, so a second
insert for the same subject (this process or another replica) fails and is skipped. Firing and
resolving write the alert and one pending delivery per channel in one transaction, so a
notification exists exactly when the state change does (:mod:`cloud.alerts.sender` sends them).

``for_s`` is counted in memory: a restart starts the count again (an alert fires later, never
twice).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from edgecascade.cloud.alerts.config import AlertRule
from edgecascade.cloud.alerts.measure import Breach
from edgecascade.cloud.db.alert_models import Alert, AlertDelivery

logger = logging.getLogger(__name__)

FIRING, RESOLVED = "firing", "resolved"


def firing_key(rule: str, breach: Breach) -> str:
    return "/".join((rule, breach.site or "", breach.device or "", breach.item or ""))


def alert_payload(alert: Alert) -> dict[str, Any]:
    """The alert as every channel sends it (and the API shows it)."""
    return {
        "id": alert.id,
        "rule": alert.rule,
        "kind": alert.kind,
        "site": alert.site_id,
        "device": alert.device_id,
        "item": alert.item,
        "state": alert.state,
        "since": alert.since,
        "resolved_at": alert.resolved_at,
        "value": alert.value,
        "threshold": alert.threshold,
        "message": alert.message,
    }


class AlertStates:
    """Applies each evaluation's breaches to the stored alerts."""

    def __init__(self, sessions: sessionmaker[Session], channels: list[str]) -> None:
        self._sessions = sessions
        self.channels = channels
        self._breaching_since: dict[str, float] = {}  # firing_key -> first seen breaching

    def apply(self, rule: AlertRule, breaches: Iterable[Breach], now: float) -> None:
        """Fire what breaches (long enough), refresh what still fires, resolve what stopped."""
        current = {firing_key(rule.name, b): b for b in breaches}
        prefix = f"{rule.name}/"
        for key in [k for k in self._breaching_since if k.startswith(prefix)]:
            if key not in current:
                del self._breaching_since[key]
        with self._sessions() as session:
            firing = {
                a.firing_key: a
                for a in session.scalars(
                    select(Alert).where(Alert.rule == rule.name, Alert.state == FIRING)
                )
            }
            for firing_at, alert in firing.items():
                breach = current.get(firing_at or "")
                if breach is None:
                    self._resolve(session, alert, now, "cleared")
                else:
                    alert.value, alert.message, alert.updated_at = breach.value, breach.message, now
            session.commit()
        for key, breach in current.items():
            if key in firing:
                continue
            first = self._breaching_since.setdefault(key, now)
            if now - first >= rule.for_s:
                self._fire(rule, key, breach, now)

    def resolve_others(self, rules: Iterable[str], now: float) -> None:
        """Resolve the firing alerts of rules no longer in force."""
        names = set(rules)
        with self._sessions() as session:
            for alert in session.scalars(select(Alert).where(Alert.state == FIRING)):
                if alert.rule not in names:
                    self._resolve(session, alert, now, "its rule was removed")
            session.commit()

    def _fire(self, rule: AlertRule, key: str, breach: Breach, now: float) -> None:
        alert = Alert(
            id=str(uuid.uuid4()),
            rule=rule.name,
            kind=rule.kind.value,
            site_id=breach.site,
            device_id=breach.device,
            item=breach.item,
            firing_key=key,
            state=FIRING,
            since=now,
            resolved_at=None,
            value=breach.value,
            threshold=rule.threshold,
            message=breach.message,
            updated_at=now,
        )
        try:
            with self._sessions() as session:
                session.add(alert)
                session.flush()  # the unique firing_key: one alert per subject while firing
                self._enqueue(session, alert, now)
                session.commit()
        except IntegrityError:
            logger.info("alert %s already firing (another evaluator fired it)", key)
            return
        logger.warning("alert firing: %s", breach.message)

    def _resolve(self, session: Session, alert: Alert, now: float, why: str) -> None:
        alert.state, alert.resolved_at, alert.firing_key = RESOLVED, now, None
        alert.updated_at = now
        alert.message = f"{alert.message} (resolved: {why})"
        self._enqueue(session, alert, now)
        logger.info("alert resolved: %s", alert.message)

    def _enqueue(self, session: Session, alert: Alert, now: float) -> None:
        payload = alert_payload(alert)
        for channel in self.channels:
            session.add(
                AlertDelivery(
                    id=str(uuid.uuid4()),
                    alert_id=alert.id,
                    event=alert.state,
                    channel=channel,
                    payload=payload,
                    state="pending",
                    attempts=0,
                    next_at=now,
                    last_error="",
                    created_at=now,
                    delivered_at=None,
                )
            )
