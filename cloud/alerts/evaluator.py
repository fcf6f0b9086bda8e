"""The alert evaluator: every ``alerts.interval_s`` each rule is measured and the alerts updated.

A thread of the cloud process with the rollout controller's life
(:class:`cloud.periodic.PeriodicPublisher`): its MQTT link publishes the MQTT channel's messages,
and it owns the :class:`~cloud.alerts.sender.DeliverySender` that sends every channel's
notifications, so a slow channel never delays an evaluation. One rule that fails to evaluate is
logged and counted; the others still are.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import Engine

from edgecascade.cloud.alerts.channels import Channels, channel_names
from edgecascade.cloud.alerts.measure import measure
from edgecascade.cloud.alerts.rulestore import current_rules
from edgecascade.cloud.alerts.sender import DeliverySender
from edgecascade.cloud.alerts.state import AlertStates
from edgecascade.cloud.db.engine import make_session_factory
from edgecascade.cloud.errors import DeliveryError
from edgecascade.cloud.periodic import PeriodicPublisher
from edgecascade.cloud.settings import CloudSettings
from edgecascade.shared.errors import BrokerError
from edgecascade.shared.mqtt import Outgoing

logger = logging.getLogger(__name__)


class AlertEvaluator(PeriodicPublisher):
    """Evaluates the rules; :meth:`begin` also starts the sender, :meth:`stop` stops both."""

    def __init__(self, engine: Engine, settings: CloudSettings) -> None:
        super().__init__("alerts", settings, settings.alerts.interval_s)
        self.engine = engine
        self.sessions = make_session_factory(engine)
        alerts = settings.alerts
        self.states = AlertStates(self.sessions, channel_names(alerts))
        self.sender = DeliverySender(engine, alerts, Channels(alerts, self._publish))

    def begin(self, *, loop: bool = True) -> None:
        super().begin(loop=loop)
        if loop:
            self.sender.start()

    def stop(self) -> None:
        self.sender.stop()
        super().stop()

    def tick(self) -> None:
        self.evaluate(time.time())
        self.sender.wake()

    def evaluate(self, now: float) -> None:
        """Measure every rule in force at ``now`` and apply the results."""
        with self.sessions() as session:
            rules, _source = current_rules(session, self.settings.alerts.rules)
        for rule in rules:
            try:
                with self.sessions() as session:
                    breaches = measure(session, rule, now)
                self.states.apply(rule, breaches, now)
            except Exception:  # one bad rule must not stop the others being evaluated
                self.counts["errors"] += 1
                logger.exception("alert rule %s: evaluation failed", rule.name)
        self.states.resolve_others([rule.name for rule in rules], now)

    def _publish(self, message: Outgoing, timeout: float) -> None:
        if not self._link.connected:
            raise DeliveryError("MQTT: not connected to the broker")
        try:
            confirmed = self._link.confirm(self._link.publish(message), timeout)
        except BrokerError as exc:
            raise DeliveryError(f"MQTT {message.topic}: {exc}") from exc
        if not confirmed:
            raise DeliveryError(f"MQTT {message.topic}: no acknowledgement within {timeout:g} s")
