"""Site broker -> disk outbox -> cloud broker.

Every device message is validated against the contract before it is accepted. An accepted message
is committed to the outbox and only then acknowledged to the site broker (manual ack), so a gateway
killed at any point either still has the message on disk or gets it again from the broker's
persistent session. Invalid messages are counted by reason and acknowledged, never forwarded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

from gateway.settings import GatewaySettings
from shared.codec import decode, encode
from shared.errors import ContractError
from shared.messages import StateMessage
from shared.mqtt import MqttLink, Outgoing, Received
from shared.outbox import Outbox, OutboxSender
from shared.systemd import Notifier
from shared.topics import Kind, Topic, topic, topic_filter

logger = logging.getLogger(__name__)

FORWARDED = {
    Kind.RESULT: "result",
    Kind.ESCALATION: "escalation",
    Kind.TELEMETRY: "telemetry",
    Kind.STATE: "state",
}


class Gateway:
    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.session = int(time.time() * 1000)
        self.accepted: Counter[str] = Counter()
        self.duplicates: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self._site_link: MqttLink | None = None

    def _state(self, status: str, prefix: str | None = None) -> Outgoing:
        s = self.settings
        state = StateMessage(
            status="online" if status == "online" else "offline",
            session=self.session,
            role="gateway",
            capabilities=["forward"],
            software="edgecascade-gateway/0.1.0",
        )
        wire = topic(s.site, s.gateway_id, Kind.STATE, prefix=prefix or s.cloud_mqtt.prefix)
        return Outgoing(wire, encode(state), qos=1, retain=True)

    def run(self, stop: threading.Event) -> None:
        s = self.settings
        outbox = Outbox(s.data_dir / "outbox.db", quota_bytes=int(s.outbox_quota_mb * 1024 * 1024))
        cloud = MqttLink(
            s.cloud_mqtt,
            f"{s.site}.{s.gateway_id}.uplink",
            will=self._state("offline"),
            birth=lambda: self._state("online"),
        )
        site = MqttLink(
            s.site_mqtt,
            f"{s.site}.{s.gateway_id}.intake",
            on_message=lambda message: self._intake(message, outbox),
            manual_ack=True,
            # Devices publish only while this retained state says online: it is published after
            # the subscriptions, so "online" means nothing sent to the site broker is lost.
            will=self._state("offline", s.site_mqtt.prefix),
            birth=lambda: self._state("online", s.site_mqtt.prefix),
        )
        self._site_link = site
        for kind in FORWARDED:
            site.subscribe(topic_filter(kind, site=s.site, prefix=s.site_mqtt.prefix))
        sender = OutboxSender(outbox, cloud)
        cloud.start()
        sender.start()
        site.start()
        logger.info(
            "gateway %s: site broker %s:%d -> cloud broker %s:%d, %d queued from before",
            s.site,
            s.site_mqtt.host,
            s.site_mqtt.port,
            s.cloud_mqtt.host,
            s.cloud_mqtt.port,
            sum(outbox.depth().values()),
        )
        notifier = Notifier()
        notifier.ready(f"forwarding site {s.site}")
        try:
            while not stop.wait(1.0):
                notifier.watchdog()
        finally:
            notifier.stopping()
            site.stop(farewell=self._state("offline", s.site_mqtt.prefix))
            sender.stop()
            cloud.stop(farewell=self._state("offline"))
            outbox.close()
            logger.info(
                "gateway stopped: accepted %s, duplicates %s, rejected %s",
                dict(self.accepted),
                dict(self.duplicates),
                dict(self.rejected),
            )

    def _intake(self, message: Received, outbox: Outbox) -> None:
        """Validate, commit to the outbox, then acknowledge (paho's network thread)."""
        assert self._site_link is not None
        try:
            parsed = Topic.parse(message.topic)
            if parsed.site != self.settings.site or parsed.kind not in FORWARDED:
                raise ContractError(f"topic {message.topic!r} is not forwarded by this gateway")
            if parsed.device == self.settings.gateway_id:  # our own state on the site broker
                self._site_link.ack(message)
                return
            decoded = decode(parsed, message.payload)
        except ContractError as exc:
            self.rejected[_reason_key(exc)] += 1
            logger.warning("rejected message on %s: %s", message.topic, exc)
            self._site_link.ack(message)
            return
        klass = FORWARDED[parsed.kind]
        retain = parsed.kind is Kind.STATE
        outgoing = Outgoing(message.topic, message.payload, qos=message.qos, retain=retain)
        outcome = outbox.put(klass, outgoing, decoded.message.msg_id)
        if outcome == "queued":
            self.accepted[klass] += 1
        elif outcome == "duplicate":
            self.duplicates[klass] += 1
        self._site_link.ack(message)


def _reason_key(exc: ContractError) -> str:
    text = str(exc)
    return text.split(":", 1)[0][:80]
