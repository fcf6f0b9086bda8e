"""Cloud -> site: what the gateway does with each message from the cloud broker.

Verdicts and model offers for the site's devices are committed to the downlink outbox, whose
sender forwards them to the site broker. An offer is first checked by the model cache (a wrongly
signed model stops here, before the devices); model chunks feed the cache; commands to the gateway
itself (``cmd/resync``, ``cmd/diagnostics``) are answered on the uplink with a reply. A command to
a device of the site (``cmd/config``, ``cmd/diagnostics``...) is relayed to the site broker as it
came (never retained; the device's persistent session keeps it while the device is away), and the
device's reply comes back up through the uplink like its other messages: the cloud reaches a
device only through its gateway. The gateway acknowledges every message to the cloud broker once
:meth:`DownlinkRouter.route` returns or raises.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable

from edgecascade.gateway.aggregate import SiteState
from edgecascade.gateway.links import cloud_topic
from edgecascade.gateway.modelcache import ModelCache
from edgecascade.gateway.settings import GatewaySettings
from edgecascade.shared.codec import decode, encode
from edgecascade.shared.contract import NAME, spec_for, spec_of
from edgecascade.shared.diagnostics import (
    effective_settings,
    install_log_ring,
    lines_asked,
    outbox_summary,
)
from edgecascade.shared.errors import ContractError
from edgecascade.shared.messages import CommandMessage, ReplyMessage
from edgecascade.shared.model_messages import ModelChunkHeader, ModelOfferMessage
from edgecascade.shared.mqtt import Outgoing, Received
from edgecascade.shared.outbox import Outbox
from edgecascade.shared.topics import Kind, Topic, topic

STATE, REPLY = spec_of(Kind.STATE), spec_of(Kind.REPLY, NAME)  # what the gateway sends up itself
CMD = spec_of(Kind.CMD, NAME)


class DownlinkRouter:
    def __init__(
        self,
        settings: GatewaySettings,
        *,
        downlink: Outbox,
        uplink: Outbox,
        cache: ModelCache,
        site_state: SiteState,
        downlinked: Counter[str],
        relay: Callable[[Outgoing], object],
    ) -> None:
        self.settings = settings
        self.downlink = downlink
        self.uplink = uplink
        self.cache = cache
        self.site_state = site_state
        self.downlinked = downlinked
        self.relay = relay
        self.ring = install_log_ring()

    def _topic(self, kind: Kind, sub: str | None = None, device: str | None = None) -> str:
        return cloud_topic(self.settings, kind, sub, device)

    def route(self, message: Received) -> None:
        """Route one message from the cloud; raises :class:`ContractError` for an invalid one."""
        s = self.settings
        downlink = self.downlink
        parsed = Topic.parse(message.topic)
        if parsed.site != s.site:
            raise ContractError(f"topic {message.topic!r} is not of site {s.site!r}")
        decoded = decode(parsed, message.payload)
        msg = decoded.message
        if isinstance(msg, ModelChunkHeader):
            self.cache.chunk(msg, decoded.body)
            return
        if isinstance(msg, CommandMessage) and parsed.device != s.gateway_id:
            site_topic = topic(
                parsed.site, parsed.device, parsed.kind, parsed.sub, prefix=s.site_mqtt.prefix
            )
            self.relay(Outgoing(site_topic, message.payload, qos=CMD.qos))
            self.downlinked[f"cmd.{parsed.sub}"] += 1
            return
        if isinstance(msg, CommandMessage):
            self._command(parsed, msg)
            return
        if isinstance(msg, ModelOfferMessage):
            self.cache.offer(msg.manifest)  # refuses a wrongly signed model before the devices
        klass = spec_for(parsed).queue_class  # verdicts and model offers
        site_topic = topic(
            parsed.site, parsed.device, parsed.kind, parsed.sub, prefix=s.site_mqtt.prefix
        )
        if downlink.put(klass, Outgoing(site_topic, message.payload), msg.msg_id) == "queued":
            self.downlinked[klass] += 1

    def _command(self, parsed: Topic, command: CommandMessage) -> None:
        assert parsed.sub is not None  # the topic grammar gives every command a name
        handlers: dict[str, Callable[[CommandMessage], object]] = {
            "resync": self._resync,
            "diagnostics": self._diagnostics,
        }
        handler = handlers.get(parsed.sub)
        try:
            if handler is None:
                raise ValueError(f"unknown command {parsed.sub!r}; known: {sorted(handlers)}")
            data = json.loads(json.dumps(handler(command)))
            reply = ReplyMessage(correlation=command.correlation, status="ok", data=data)
        except ValueError as exc:
            reply = ReplyMessage(
                correlation=command.correlation, status="error", error=str(exc)[:1024]
            )
        wire = self._topic(Kind.REPLY, parsed.sub)
        self.uplink.put(REPLY.queue_class, Outgoing(wire, encode(reply)), reply.msg_id)

    def _diagnostics(self, command: CommandMessage) -> dict[str, object]:
        """The gateway's last log lines, its settings (secrets hidden) and both outboxes."""
        return {
            "logs": self.ring.tail(lines_asked(command.args)),
            "settings": effective_settings(self.settings),
            "outbox": {
                "uplink": outbox_summary(self.uplink),
                "downlink": outbox_summary(self.downlink),
            },
        }

    def _resync(self, command: CommandMessage) -> dict[str, object]:
        """The whole site state; each device's state is also re-published, retained."""
        for device, state in dict(self.site_state.states).items():
            wire = self._topic(Kind.STATE, device=device)
            # A fresh outbox id: the original state message was already forwarded once.
            outgoing = Outgoing(wire, encode(state), qos=STATE.qos, retain=STATE.retain)
            self.uplink.put(STATE.queue_class, outgoing, None)
        depth = self.uplink.depth()
        return {
            "site": self.settings.site,
            "gateway": self.settings.gateway_id,
            "devices": self.site_state.snapshot(),
            "outbox": {"depth": depth, "counters": self.uplink.counters()},
        }
