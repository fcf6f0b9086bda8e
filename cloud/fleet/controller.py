"""The fleet controller: sends commands to devices and gateways and collects their replies.

One per cloud process, with an MQTT link of its own subscribed to every ``reply/<name>``:

* :meth:`FleetController.request` publishes a command and waits (bounded) for the reply with
  its correlation id: the API's diagnostics. A reply that comes after the wait is dropped.
* :meth:`FleetController.push` sends ``cmd/config`` to every online agent whose state reports
  another version than the one it should run (:func:`cloud.fleet.configs.fleet_configs`), at
  most once per ``fleet.resend_s`` per version, and never again a version the device refused
  (its reply's reason is kept in ``config_replies``). Every ``fleet.interval_s`` a pass does
  this, so a device that was offline, lost the command or rebooted into an older version gets
  its config when it comes back; the API calls it once right after a new version is stored.

Commands go to ``<site>/<device>/cmd/<name>`` on the cloud broker; the site gateway relays those
for a device to the site broker (:mod:`gateway.downlink`).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from edgecascade.cloud.db.fleet_models import ConfigReply, ConfigVersion
from edgecascade.cloud.fleet.configs import fleet_configs
from edgecascade.cloud.periodic import PeriodicPublisher
from edgecascade.cloud.settings import CloudSettings
from edgecascade.shared.codec import decode, encode
from edgecascade.shared.contract import NAME, spec_of
from edgecascade.shared.errors import ContractError
from edgecascade.shared.ids import new_message_id
from edgecascade.shared.messages import CommandMessage, ReplyMessage
from edgecascade.shared.mqtt import MqttLink, Outgoing, Received
from edgecascade.shared.topics import Kind, Topic, topic, topic_filter

logger = logging.getLogger(__name__)

CMD = spec_of(Kind.CMD, NAME)
MAX_UNANSWERED = 10_000  # config commands remembered for their reply


class _Waiter:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.reply: ReplyMessage | None = None


class FleetController(PeriodicPublisher):
    """Commands out, replies in; the remote config's resend loop."""

    def __init__(self, sessions: sessionmaker[Session], settings: CloudSettings) -> None:
        super().__init__("fleet", settings, settings.fleet.interval_s)
        self.sessions = sessions
        self._link = MqttLink(
            settings.mqtt,
            f"{settings.client_id}-fleet",
            on_message=self._on_reply,
            persistent=False,
        )
        self._link.subscribe(topic_filter(Kind.REPLY, prefix=settings.mqtt.prefix))
        self._lock = threading.Lock()
        self._waiting: dict[str, _Waiter] = {}
        self._config_sent: dict[str, tuple[str, str, int]] = {}  # correlation -> device, version
        self._last_send: dict[tuple[str, str], tuple[int, float]] = {}

    @property
    def connected(self) -> bool:
        return self._link.connected

    def tick(self) -> None:
        self.push()

    # -- commands --------------------------------------------------------------------------------
    def send(self, site: str, device: str, name: str, args: dict[str, Any]) -> str:
        """Publish ``cmd/<name>`` to ``site/device``; the correlation id of its reply."""
        command = CommandMessage(correlation=new_message_id(), args=args)
        wire = topic(site, device, Kind.CMD, name, prefix=self.settings.mqtt.prefix)
        self._link.publish(Outgoing(wire, encode(command), qos=CMD.qos))
        self.counts[f"sent.{name}"] += 1
        return command.correlation

    def request(
        self, site: str, device: str, name: str, args: dict[str, Any], timeout: float
    ) -> ReplyMessage | None:
        """Send a command and wait for its reply; None when none came within ``timeout``."""
        waiter = _Waiter()
        correlation = new_message_id()
        with self._lock:
            self._waiting[correlation] = waiter
        try:
            command = CommandMessage(correlation=correlation, args=args)
            wire = topic(site, device, Kind.CMD, name, prefix=self.settings.mqtt.prefix)
            self._link.publish(Outgoing(wire, encode(command), qos=CMD.qos))
            waiter.done.wait(timeout)
            return waiter.reply
        finally:
            with self._lock:
                self._waiting.pop(correlation, None)

    def _on_reply(self, message: Received) -> None:
        """A reply from a device or gateway (paho's thread)."""
        try:
            parsed = Topic.parse(message.topic)
            reply = decode(parsed, message.payload).message
        except ContractError as exc:
            self.counts["replies.rejected"] += 1
            logger.warning("refused reply on %s: %s", message.topic[:200], exc)
            return
        if not isinstance(reply, ReplyMessage):
            return
        with self._lock:
            waiter = self._waiting.get(reply.correlation)
            config = self._config_sent.pop(reply.correlation, None)
        if waiter is not None:
            waiter.reply = reply
            waiter.done.set()
        if config is not None:
            self._record(*config, reply)

    def _record(self, site: str, device: str, version: int, reply: ReplyMessage) -> None:
        if reply.status == "error":
            logger.warning("%s/%s refused config %d: %s", site, device, version, reply.error)
        with self.sessions() as session:
            session.merge(
                ConfigReply(
                    site_id=site,
                    device_id=device,
                    version=version,
                    status=reply.status,
                    error=reply.error or "",
                    received_at=time.time(),
                )
            )
            session.commit()

    # -- remote config ---------------------------------------------------------------------------
    def push(self) -> int:
        """Send each online agent that drifts its desired version (see the module); how many
        commands went out."""
        now = time.monotonic()
        resend_s = self.settings.fleet.resend_s
        sent = 0
        with self.sessions() as session:
            drifting = [c for c in fleet_configs(session) if c.drift and not c.refused]
            documents = {
                c.desired: session.get(ConfigVersion, c.desired) for c in drifting if c.desired
            }
            for config in drifting:
                row = documents.get(config.desired) if config.desired is not None else None
                if config.status != "online" or row is None:
                    continue
                key = (config.site, config.device)
                last = self._last_send.get(key)
                if last is not None and last[0] == row.version and now - last[1] < resend_s:
                    continue
                args = {"version": row.version, "settings": row.document}
                with self._lock:  # registered before the reply can arrive
                    correlation = self.send(config.site, config.device, "config", args)
                    self._config_sent[correlation] = (config.site, config.device, row.version)
                    while len(self._config_sent) > MAX_UNANSWERED:  # devices that never answer
                        del self._config_sent[next(iter(self._config_sent))]
                self._last_send[key] = (row.version, now)
                sent += 1
        return sent
