"""The site gateway: site broker <-> disk outboxes <-> cloud broker.

Uplink: every device message is first checked against its device's rate limits
(:mod:`gateway.ratelimit`, before any decoding; what exceeds them is counted, dead-lettered once per
device, class and interval, acknowledged and never forwarded; the rest of the excess acknowledged
at once, out of turn, so a flood neither waits behind its neighbours' commits nor fills the broker's
in-flight window ahead of them), then validated against the contract
and de-duplicated by message id before it is accepted. An accepted message is committed to the
uplink outbox (in groups, by :class:`gateway.intake.Intake`) and only then acknowledged to the site
broker (manual ack), so a gateway killed at any point either still has the message on disk or gets
it again from the broker's persistent session. Messages that fail validation go to the dead-letter
topic with the reason, counted, and are acknowledged. Results leave in batches
(:class:`gateway.aggregate.ResultBatcher`), telemetry as per-window rollups, escalations first of
all, audit samples (escalations whose header says ``audit``) last.

Downlink (:mod:`gateway.downlink`): verdicts and model offers from the cloud for the site's devices
are committed to a second outbox and forwarded to the site broker the same way. Model artifacts are
fetched once per site (:mod:`gateway.modelcache`) and served to the devices from disk. A
``cmd/resync`` from the cloud is answered with the whole site state; commands to a device are
relayed to the site broker and its replies go up with the uplink.

Every ``telemetry_interval_s`` the gateway publishes its own telemetry on
``<site>/<gateway>/telemetry``: CPU and memory, the depth of both outboxes per class, and its
counters (accepted, duplicates, rejected and downlinked per kind; rate-limited in all and for the
most limited devices per class; sent, expired and dropped per outbox class; the model cache's).

Start-up reads top to bottom in ``Gateway.__init__``: outboxes and links
(:mod:`gateway.links`), the intake, the model cache, the downlink router, the subscriptions, the
senders. ``Gateway.run`` only starts them, loops until the stop event and stops them; the order
of both is spelled out in ``_start`` and ``_stop``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

import psutil

from edgecascade.gateway.aggregate import ResultBatcher, SiteState, TelemetryRollup
from edgecascade.gateway.confirm import DeviceConfirmations
from edgecascade.gateway.downlink import DownlinkRouter
from edgecascade.gateway.intake import Entry, Intake, Pending
from edgecascade.gateway.links import cloud_topic, open_links, open_outboxes, open_senders
from edgecascade.gateway.modelcache import ModelCache
from edgecascade.gateway.ratelimit import (
    TOP_COUNTED,
    Excess,
    RateLimiter,
    absent_for,
    mark_alive,
)
from edgecascade.gateway.settings import GatewaySettings
from edgecascade.shared.codec import Decoded, decode, encode
from edgecascade.shared.contract import queue_class_of, spec_for, spec_of
from edgecascade.shared.errors import ContractError
from edgecascade.shared.manifest import load_public_key
from edgecascade.shared.messages import (
    AckMessage,
    DeadLetterMessage,
    Message,
    StateMessage,
    TelemetryMessage,
)
from edgecascade.shared.model_messages import ModelChunkRequestMessage
from edgecascade.shared.mqtt import MqttLink, Outgoing, Received
from edgecascade.shared.outbox import CONFIRMED_CLASSES, Outbox, PutOutcome
from edgecascade.shared.systemd import Notifier
from edgecascade.shared.topics import Kind, ModelSub, Topic, topic, topic_filter

logger = logging.getLogger(__name__)

SOFTWARE = "edgecascade-gateway/0.1.0"
# Device -> cloud, besides model acks and requests; each is queued under its row's outbox class.
UPLINK = (Kind.RESULT, Kind.ESCALATION, Kind.TELEMETRY, Kind.STATE, Kind.REPLY)
STATE, TELEMETRY = spec_of(Kind.STATE), spec_of(Kind.TELEMETRY)
ROLLUP, DEAD_LETTER = spec_of(Kind.TELEMETRY_ROLLUP), spec_of(Kind.DEAD_LETTER)
PAYLOAD_HEAD = 64  # bytes of a rejected payload kept (hex) in its dead letter


class Gateway:
    """One site's gateway, every part built here; :meth:`run` starts them, loops and stops them."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        s = settings
        self.session = int(time.time() * 1000)
        self.accepted: Counter[str] = Counter()
        self.duplicates: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.downlinked: Counter[str] = Counter()
        self.site_state = SiteState()
        self.alive_mark = s.data_dir / "alive"
        self.limiter = RateLimiter(s.rate_limits, absent_for=absent_for(self.alive_mark))
        self.rollup = TelemetryRollup(settings.telemetry_window_s)
        self.batcher = ResultBatcher(
            s.site,
            s.gateway_id,
            s.cloud_mqtt.prefix,
            s.batch.max_results,
            s.batch.max_bytes,
            compress=s.batch.compress,
        )
        key = load_public_key(s.model_public_key) if s.model_public_key else None
        uplink, downlink = open_outboxes(s)
        site, cloud = open_links(
            s, from_site=self._from_site, from_cloud=self._from_cloud, state=self._state
        )
        self.uplink, self.downlink = uplink, downlink
        self.site_link, self.cloud_link = site, cloud
        self.confirms = DeviceConfirmations(
            s.site, s.site_mqtt.prefix, lambda message: self._publish(site, message)
        )
        self.intake = Intake(uplink, site, after_commit=self.confirms.flush)
        self.cache = ModelCache(
            s.data_dir / "models",
            key,
            lambda request: self._publish(
                cloud, Outgoing(self._topic(Kind.MODEL, ModelSub.REQUEST), encode(request))
            ),
            quota_bytes=int(s.model_cache_mb * 1024 * 1024),
        )
        self.router = DownlinkRouter(
            s,
            downlink=downlink,
            uplink=uplink,
            cache=self.cache,
            site_state=self.site_state,
            downlinked=self.downlinked,
            relay=site.publish,
        )
        self._subscribe(site, cloud)
        self.senders = open_senders(s, uplink, downlink, site, cloud, self.batcher)
        self.notifier = Notifier()

    def _subscribe(self, site: MqttLink, cloud: MqttLink) -> None:
        """What each link listens to (subscribed on every connect, the first one included)."""
        s = self.settings
        for kind in UPLINK:
            site.subscribe(topic_filter(kind, site=s.site, prefix=s.site_mqtt.prefix))
        for sub in (ModelSub.ACK, ModelSub.REQUEST):
            site.subscribe(
                topic_filter(Kind.MODEL, site=s.site, sub=sub, prefix=s.site_mqtt.prefix)
            )
        prefix = s.cloud_mqtt.prefix
        cloud.subscribe(topic_filter(Kind.VERDICT, site=s.site, prefix=prefix))
        cloud.subscribe(topic_filter(Kind.MODEL, site=s.site, sub=ModelSub.OFFER, prefix=prefix))
        cloud.subscribe(self._topic(Kind.MODEL, ModelSub.CHUNK))
        # Commands to the gateway itself and, relayed, to every device of the site.
        cloud.subscribe(topic_filter(Kind.CMD, site=s.site, prefix=prefix))
        cloud.subscribe(topic_filter(Kind.ACK, site=s.site, prefix=prefix))

    # -- topics ------------------------------------------------------------------------------------
    def _topic(self, kind: Kind, sub: str | None = None, device: str | None = None) -> str:
        return cloud_topic(self.settings, kind, sub, device)

    def _state(self, status: str) -> Outgoing:
        state = StateMessage(
            status="online" if status == "online" else "offline",
            session=self.session,
            role="gateway",
            capabilities=["forward", "batch", "rollup", "model-cache", "resync", "diagnostics"],
            software=SOFTWARE,
        )
        return Outgoing(self._topic(Kind.STATE), encode(state), qos=STATE.qos, retain=STATE.retain)

    def telemetry(self) -> TelemetryMessage:
        """The gateway's own health: resources, queue depths and every counter it keeps."""
        uplink, downlink = self.uplink, self.downlink
        counters: dict[str, int] = {}
        for name, counter in (
            ("accepted", self.accepted),
            ("duplicates", self.duplicates),
            ("downlinked", self.downlinked),
        ):
            counters.update({f"{name}.{key}": value for key, value in counter.items()})
        counters["rejected"] = sum(self.rejected.values())  # reasons are in the dead letters
        counters["rate_limited"] = self.limiter.total()
        limited = self.limiter.counts(top=TOP_COUNTED)
        counters.update({f"rate_limited.{k}": v for k, v in limited.items()})
        counters.update({f"uplink.{k}": v for k, v in uplink.counters().items()})
        counters.update({f"downlink.{k}": v for k, v in downlink.counters().items()})
        counters.update({f"cache.{k}": v for k, v in self.cache.counts.items()})
        queues = {f"uplink.{k}": v for k, v in uplink.depth().items()}
        queues.update({f"downlink.{k}": v for k, v in downlink.depth().items()})
        # The uplink fills while the cloud is away: what the cloud's outbox alert compares.
        queues.update(outbox_bytes=uplink.size_bytes, outbox_quota_bytes=uplink.quota_bytes)
        return TelemetryMessage(
            cpu_percent=psutil.cpu_percent(interval=None),
            memory_percent=psutil.virtual_memory().percent,
            memory_rss_mb=psutil.Process().memory_info().rss / 1e6,
            fps=0.0,
            queues=queues,
            counters=counters,
        )

    def _queue_telemetry(self) -> None:
        message = self.telemetry()
        wire = Outgoing(self._topic(Kind.TELEMETRY), encode(message), qos=TELEMETRY.qos)
        self.uplink.put(TELEMETRY.queue_class, wire, message.msg_id)

    # -- main --------------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Start every part, forward until ``stop`` is set, then stop them (see :meth:`_stop`)."""
        self._start()
        try:
            next_telemetry = time.monotonic() + self.settings.telemetry_interval_s
            while not stop.wait(0.5):
                self.notifier.watchdog()
                self._flush_rollups(time.time())
                if time.monotonic() >= next_telemetry:
                    next_telemetry += self.settings.telemetry_interval_s
                    self._queue_telemetry()
                    mark_alive(self.alive_mark)  # a restart credits its devices the time away
        finally:
            self._stop()
            mark_alive(self.alive_mark)

    def _start(self) -> None:
        """Consumers first, the site link last: nothing is received before it can be committed."""
        s = self.settings
        self.cache.start()
        self.intake.start()
        self.cloud_link.start()
        for sender in self.senders:
            sender.start()
        self.site_link.start()
        logger.info(
            "gateway %s: site broker %s:%d -> cloud broker %s:%d, %d up and %d down queued",
            s.site,
            s.site_mqtt.host,
            s.site_mqtt.port,
            s.cloud_mqtt.host,
            s.cloud_mqtt.port,
            sum(self.uplink.depth().values()),
            sum(self.downlink.depth().values()),
        )
        self.notifier.ready(f"forwarding site {s.site}")

    def _stop(self) -> None:
        """The site side first, then what forwards to the cloud, then the disk."""
        self.notifier.stopping()
        # Drain the intake while the site link can still carry its acknowledgements; what
        # arrives after that is left unacknowledged: the broker delivers it to the next session.
        self.intake.stop()
        self.site_link.stop(farewell=self._state("offline"))
        self._flush_rollups(time.time(), everything=True)
        for sender in self.senders:
            sender.stop()
        self.cache.stop()
        self.cloud_link.stop(farewell=self._state("offline"))
        self.uplink.close()
        self.downlink.close()
        logger.info(
            "gateway stopped: accepted %s, duplicates %s, rejected %s, downlinked %s",
            dict(self.accepted),
            dict(self.duplicates),
            dict(self.rejected),
            dict(self.downlinked),
        )

    # -- uplink: site -> cloud ---------------------------------------------------------------------
    def _from_site(self, message: Received) -> None:
        """Validate, then hand to the intake, which commits and acknowledges (paho's thread)."""
        s = self.settings
        try:
            parsed = Topic.parse(message.topic)
            if parsed.device == s.gateway_id:  # our own retained state on the site broker
                self.intake.submit(Pending(message))
                return
            if parsed.site != s.site:
                raise ContractError(f"topic {message.topic!r} is not of site {s.site!r}")
            # Before any decoding: a flood costs a lookup per message, not a validation.
            excess = self.limiter.check(parsed.device, parsed.kind, len(message.payload))
            if excess is not None:
                self._refuse(message, excess)
                return
            decoded = decode(parsed, message.payload)
        except ContractError as exc:
            self.intake.submit(Pending(message, self._dead_letter(message, exc)))
            return
        self.site_state.saw(parsed.device, time.time())
        self.intake.submit(self._accept(parsed, decoded, message))

    def _accept(self, parsed: Topic, decoded: Decoded, message: Received) -> Pending:
        """What to commit for a valid device message (and the site state it updates)."""
        msg, spec = decoded.message, spec_for(parsed)
        if parsed.kind is Kind.MODEL:
            if isinstance(msg, ModelChunkRequestMessage):
                self._serve_chunks(parsed, msg)
                return Pending(message)
            # acks go up to the cloud's rollout
            outgoing = Outgoing(message.topic, message.payload, qos=spec.qos)
            return self._pending(parsed, message, spec.queue_class, outgoing, msg)
        if isinstance(msg, StateMessage):
            self.site_state.state(parsed.device, msg)
        if isinstance(msg, TelemetryMessage):
            self.site_state.telemetry(parsed.device, msg)
            if self.rollup.window_s > 0:
                self.rollup.add(parsed.device, msg, time.time())
                return Pending(message)
        qos = message.qos if spec.qos == 0 else spec.qos  # best effort keeps the sender's QoS
        outgoing = Outgoing(message.topic, message.payload, qos=qos, retain=spec.retain)
        return self._pending(parsed, message, queue_class_of(spec, msg), outgoing, msg)

    def _pending(
        self, parsed: Topic, message: Received, klass: str, outgoing: Outgoing, msg: Message
    ) -> Pending:
        def outcome(result: PutOutcome) -> None:
            self._tally(klass, result)
            # On disk here: the device may forget it, whatever this gateway's own uplink does
            # (with outbox_confirm_s = 0 it does not wait for the cloud, but devices still may).
            if result != "dropped" and klass in CONFIRMED_CLASSES:
                self.confirms.add(parsed.device, msg.msg_id)

        return Pending(message, (klass, outgoing, msg.msg_id), outcome)

    def _tally(self, klass: str, outcome: PutOutcome) -> None:
        if outcome == "queued":
            self.accepted[klass] += 1
        elif outcome == "duplicate":
            self.duplicates[klass] += 1

    def _queue(self, outbox: Outbox, klass: str, outgoing: Outgoing, msg: Message) -> None:
        self._tally(klass, outbox.put(klass, outgoing, msg.msg_id))

    def _dead_letter(self, message: Received, exc: ContractError) -> Entry:
        reason = str(exc)
        self.rejected[reason.split(":", 1)[0][:80]] += 1
        logger.warning("dead letter from %s: %s", message.topic[:200], reason)
        return self._letter(message, reason)

    def _refuse(self, message: Received, excess: Excess) -> None:
        """A message over its device's budget: never forwarded. The interval's first is
        dead-lettered (committed, then acknowledged in its turn); the rest, which the limiter
        only counts, are acknowledged at once, out of turn, so a flood waits behind nothing and
        nothing waits behind it (:meth:`gateway.intake.Intake.refuse`)."""
        if excess.reason is None:
            self.intake.refuse(message)
            return
        logger.warning("rate limited on %s: %s", message.topic[:200], excess.reason)
        self.intake.submit(Pending(message, self._letter(message, excess.reason)))

    def _letter(self, message: Received, reason: str) -> Entry:
        letter = DeadLetterMessage(
            topic=message.topic[:1024],
            reason=reason[:1024],
            payload_size=len(message.payload),
            payload_head=message.payload[:PAYLOAD_HEAD].hex(),
        )
        wire = Outgoing(self._topic(Kind.DEAD_LETTER), encode(letter), qos=DEAD_LETTER.qos)
        return DEAD_LETTER.queue_class, wire, letter.msg_id

    def _flush_rollups(self, now: float, everything: bool = False) -> None:
        for device, rollup in self.rollup.due(now, everything):
            wire = self._topic(Kind.TELEMETRY_ROLLUP, device=device)
            outgoing = Outgoing(wire, encode(rollup), qos=ROLLUP.qos)
            self._queue(self.uplink, ROLLUP.queue_class, outgoing, rollup)

    @staticmethod
    def _publish(link: MqttLink, message: Outgoing) -> None:
        link.publish(message)

    def _serve_chunks(self, parsed: Topic, request: ModelChunkRequestMessage) -> None:
        wire = topic(parsed.site, parsed.device, Kind.MODEL, ModelSub.CHUNK, prefix=parsed.prefix)
        for header, body in self.cache.serve(request):
            self.site_link.publish(Outgoing(wire, encode(header, body)))

    # -- downlink: cloud -> site -------------------------------------------------------------------
    def _from_cloud(self, message: Received) -> None:
        try:
            parsed = Topic.parse(message.topic)
            if parsed.kind is Kind.ACK:  # the cloud has stored these: the outbox forgets them
                ack = decode(parsed, message.payload).message
                if isinstance(ack, AckMessage):
                    self.uplink.confirm(ack.msg_ids)
                return
            self.router.route(message)
        except ContractError as exc:
            self.rejected[f"downlink {str(exc).split(':', 1)[0][:70]}"] += 1
            logger.warning("refused from the cloud on %s: %s", message.topic[:200], exc)
        finally:
            self.cloud_link.ack(message)
