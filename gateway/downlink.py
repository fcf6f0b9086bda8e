"""Cloud -> site: what the gateway does with each message from the cloud broker.

Verdicts and model offers for the site's devices are committed to the downlink outbox, whose
sender forwards them to the site broker. An offer is first checked by the model cache (a wrongly
signed model stops here, before the devices); model chunks feed the cache; commands to the gateway
itself (``cmd/resync``) are answered on the uplink with a reply. The gateway acknowledges every
message to the cloud broker once :meth:`DownlinkRouter.route` returns or raises.
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
from edgecascade.shared.errors import ContractError
from edgecascade.shared.messages import CommandMessage, ReplyMessage
from edgecascade.shared.model_messages import ModelChunkHeader, ModelOfferMessage
from edgecascade.shared.mqtt import Outgoing, Received
from edgecascade.shared.outbox import Outbox
from edgecascade.shared.topics import Kind, Topic, topic

STATE, REPLY = spec_of(Kind.STATE), spec_of(Kind.REPLY, NAME)  # what the gateway sends up itself


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
    ) -> None:
        self.settings = settings
        self.downlink = downlink
        self.uplink = uplink
        self.cache = cache
        self.site_state = site_state
        self.downlinked = downlinked

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
        handlers: dict[str, Callable[[CommandMessage], object]] = {"resync": self._resync}
        handler = handlers.get(parsed.sub)
        if handler is None:
            error = f"unknown command {parsed.sub!r}; known: {sorted(handlers)}"
            reply = ReplyMessage(correlation=command.correlation, status="error", error=error)
        else:
            data = json.loads(json.dumps(handler(command)))
            reply = ReplyMessage(correlation=command.correlation, status="ok", data=data)
        wire = self._topic(Kind.REPLY, parsed.sub)
        self.uplink.put(REPLY.queue_class, Outgoing(wire, encode(reply)), reply.msg_id)

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
